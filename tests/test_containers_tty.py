"""Acceptance: TTY containers with the real ``docker`` CLI under a pseudo-terminal.

``docker run -it`` typed into, resized (the CLI sends ``resize`` on SIGWINCH),
``docker run -t`` without stdin, raw logs, ``docker attach``, the detach keys, the
resize endpoint's answers, and a daemon that stays responsive while a client floods
a container that never reads its stdin.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockertw.streams.stdcopy import StdcopyDecoder
from tests.cli import cli, inspect, ok
from tests.support import Daemon, unix_get
from tests.terminal import Terminal

pytestmark = pytest.mark.integration


@pytest.fixture
def tty_daemon(running_daemon: Daemon) -> Iterator[Daemon]:
    """``running_daemon``; afterwards no console socket is left behind either."""
    before = _console_sockets()
    try:
        yield running_daemon
    finally:
        running_daemon.stop()
        assert _console_sockets() - before == set()


def _console_sockets() -> set[str]:
    return {name for name in os.listdir(tempfile.gettempdir())
            if name.startswith("dtw-console-")}


def _open(terminals: list[Terminal], daemon: Daemon, *args: str) -> Terminal:
    terminal = Terminal(daemon, *args)
    terminals.append(terminal)
    return terminal


def test_run_it_types_resizes_and_exits(tty_daemon: Daemon,
                                        terminals: list[Terminal]):
    daemon = tty_daemon
    shell = _open(terminals, daemon, "run", "-it", "--rm", "bb:1", "sh")
    shell.expect(r"# ")
    shell.type("stty size\r")
    shell.expect(r"30 100\r\n")
    shell.resize_and_see(40, 120)
    shell.type('echo hel""lo; exit 3\r')
    shell.expect(r"\r\nhello\r\n")
    assert shell.wait() == 3, shell.output
    assert ok(daemon, "ps", "-aq") == ""  # --rm


def test_run_t_without_stdin_and_raw_logs(tty_daemon: Daemon):
    daemon = tty_daemon
    done = cli(daemon, "run", "-t", "--rm", "bb:1", "sh", "-c", "tty; echo x")
    # (text mode reads the terminal's \r\n as \n; the raw bytes are checked below)
    assert (done.returncode, done.stdout) == (0, "/dev/pts/0\nx\n"), done.stderr
    done = cli(daemon, "run", "-t", "--name", "t1", "bb:1", "sh", "-c",
               "echo tty-out; echo tty-err >&2; exit 4")
    assert (done.returncode, done.stdout) == (4, "tty-out\ntty-err\n")
    logs = cli(daemon, "logs", "t1")
    assert (logs.stdout, logs.stderr) == ("tty-out\ntty-err\n", "")
    log_lines = Path(inspect(daemon, "t1")["LogPath"]).read_text().splitlines()
    assert all('"stream":"stdout"' in line for line in log_lines)
    status, _, body = unix_get(daemon.socket or "", "/containers/t1/logs?stdout=1")
    assert (status, body) == (200, b"tty-out\r\ntty-err\r\n")  # no stdcopy framing
    ok(daemon, "rm", "t1")


def test_attach_to_running_it_container(tty_daemon: Daemon,
                                        terminals: list[Terminal]):
    daemon = tty_daemon
    ok(daemon, "run", "-dit", "--name", "a1", "bb:1", "sh")
    attached = _open(terminals, daemon, "attach", "a1")
    time.sleep(0.5)  # the attach connection is up before typing
    attached.type('echo at""tached\r')
    attached.expect(r"attached\r\n")
    attached.type("exit 7\r")
    assert attached.wait() == 7, attached.output
    assert inspect(daemon, "a1")["State"]["ExitCode"] == 7
    ok(daemon, "rm", "a1")


def test_detach_keys_leave_the_container_running(tty_daemon: Daemon,
                                                 terminals: list[Terminal]):
    daemon = tty_daemon
    shell = _open(terminals, daemon, "run", "-it", "--name", "d1", "bb:1", "sh")
    shell.expect(r"# ")
    shell.type("\x10\x11")  # ctrl-p ctrl-q
    assert shell.wait() == 0, shell.output  # the CLI itself spots the keys
    assert inspect(daemon, "d1")["State"]["Running"] is True
    again = _open(terminals, daemon, "attach", "d1")
    time.sleep(0.5)
    again.type("echo st""ill; exit 0\r")
    again.expect(r"still\r\n")
    assert again.wait() == 0, again.output
    ok(daemon, "rm", "d1")


def _raw_attach(path: str, query: str) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX)
    connection.settimeout(10)
    connection.connect(path)
    connection.sendall(f"POST /containers/{query} HTTP/1.1\r\nHost: x\r\n"
                       "Upgrade: tcp\r\nConnection: Upgrade\r\n\r\n".encode())
    return connection


def _read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_server_side_detach_keys(tty_daemon: Daemon):
    daemon = tty_daemon
    path = daemon.socket or ""
    ok(daemon, "run", "-dit", "--name", "k1", "bb:1", "sh")
    status, _, body = unix_get(path, "/containers/k1/attach?stream=1&detachKeys=ctrl-1",
                               "POST")
    assert (status, body) == (400, b'{"message":"Invalid detach keys (ctrl-1) '
                                   b'provided"}\n')
    for query, keys in (("&detachKeys=ctrl-x,x", b"\x18x"), ("", b"\x10\x11")):
        connection = _raw_attach(path, f"k1/attach?stdin=1&stdout=1&stream=1{query}")
        with connection:
            connection.sendall(b'echo mark""er\r')
            received = b""
            while b"marker\r\n" not in received:
                chunk = connection.recv(65536)
                assert chunk, received
                received += chunk
            assert received.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
            connection.sendall(keys + b"echo after\r")
            received = _read_until_closed(connection)  # the server ends the session
        assert b"after" not in received
        assert inspect(daemon, "k1")["State"]["Running"] is True
    events = ok(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                "--filter", "container=k1", "--format", "{{.Action}}").split()
    assert events.count("detach") == 2
    ok(daemon, "rm", "-f", "k1")


@pytest.mark.parametrize("flags", ["-dit", "-di"], ids=["tty", "pipe"])
def test_client_end_of_input_ends_only_its_session(tty_daemon: Daemon, flags: str):
    """Without StdinOnce (or with a TTY) Docker leaves the container's stdin open
    when an attached client half-closes, and ends that client's session."""
    daemon = tty_daemon
    path = daemon.socket or ""
    ok(daemon, "run", flags, "--name", "e1", "bb:1", "cat")
    with _raw_attach(path, "e1/attach?stdin=1&stdout=1&stream=1") as connection:
        connection.sendall(b"ping\n")
        received = b""
        while b"ping" not in received:
            chunk = connection.recv(65536)
            assert chunk, received
            received += chunk
        connection.shutdown(socket.SHUT_WR)
        _read_until_closed(connection)
    assert inspect(daemon, "e1")["State"]["Running"] is True
    ok(daemon, "rm", "-f", "e1")


def test_resize_answers(tty_daemon: Daemon):
    daemon = tty_daemon
    path = daemon.socket or ""
    assert unix_get(path, "/containers/nope/resize?h=1&w=1", "POST")[0] == 404
    ok(daemon, "create", "--name", "r1", "bb:1", "sleep", "100")
    container_id = inspect(daemon, "r1")["Id"]
    status, _, body = unix_get(path, "/containers/r1/resize?h=a&w=1", "POST")
    assert (status, body) == (400, b'{"message":"strconv.Atoi: parsing \\"a\\": '
                                   b'invalid syntax"}\n')
    status, _, body = unix_get(path, "/containers/r1/resize?h=10&w=20", "POST")
    assert status == 409 and f"Container {container_id} is not running" in body.decode()
    ok(daemon, "start", "r1")  # no TTY: accepted and ignored, as Docker
    status, headers, body = unix_get(path, "/containers/r1/resize?h=10&w=20", "POST")
    assert (status, headers.get("Content-Length"), body) == (200, "0", b"")
    ok(daemon, "run", "-dt", "--name", "r2", "bb:1", "sh", "-c",
       "trap 'stty size' WINCH; while true; do sleep 0.1; done")
    assert unix_get(path, "/containers/r2/resize?h=12&w=34", "POST")[0] == 200
    deadline = time.monotonic() + 10
    while "12 34" not in ok(daemon, "logs", "r2"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ok(daemon, "rm", "-f", "r1", "r2")


def _flood(path: str, container: str, stop: threading.Event) -> int:
    """Attach with stdin and write until ``stop``; returns the bytes sent."""
    sent = 0
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(path)
        connection.sendall(f"POST /containers/{container}/attach?stdin=1&stream=1 "
                           "HTTP/1.1\r\nHost: x\r\nUpgrade: tcp\r\n"
                           "Connection: Upgrade\r\n\r\n".encode())
        connection.settimeout(0.2)
        chunk = b"y" * 65536
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                sent += connection.send(chunk)
    return sent


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
def test_flooded_stdin_never_stalls_the_daemon(tty_daemon: Daemon, tty: bool):
    daemon = tty_daemon
    path = daemon.socket or ""
    ok(daemon, "run", "-d", "-i", *(["-t"] if tty else []), "--name", "fl", "bb:1",
       "sleep", "1000")
    stop = threading.Event()
    result: list[int] = []
    flooder = threading.Thread(target=lambda: result.append(_flood(path, "fl", stop)))
    flooder.start()
    try:
        time.sleep(1.0)
        for _ in range(5):
            started = time.monotonic()
            assert unix_get(path, "/containers/fl/json")[0] == 200
            assert time.monotonic() - started < 2.0
            time.sleep(0.1)
    finally:
        stop.set()
        flooder.join(timeout=10)
    assert result and result[0] > 65536
    ok(daemon, "rm", "-f", "fl")


def test_console_socket_cleans_up_when_runc_fails(tty_daemon: Daemon):
    daemon = tty_daemon
    before = _console_sockets()
    failed = cli(daemon, "run", "-t", "--name", "m1", "bb:1", "/no/such/program")
    assert failed.returncode != 0 and "no such file or directory" in failed.stderr
    assert inspect(daemon, "m1")["State"]["ExitCode"] == 127
    assert _console_sockets() - before == set()
    ok(daemon, "rm", "m1")


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """The stdcopy frames after the upgrade's response head."""
    _, _, body = data.partition(b"\r\n\r\n")
    return [(int(chunk.stream), chunk.data) for chunk in StdcopyDecoder().feed(body)]


def test_attach_with_logs_replays_the_log_first(tty_daemon: Daemon):
    daemon = tty_daemon
    path = daemon.socket or ""
    ok(daemon, "run", "-di", "--name", "lg", "bb:1", "sh", "-c",
       "echo one; echo two >&2; read x; echo after $x; sleep 100")
    deadline = time.monotonic() + 10
    while "two" not in cli(daemon, "logs", "lg").stderr:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with _raw_attach(path, "lg/attach?logs=1&stdout=1&stderr=1") as connection:
        replayed = _frames(_read_until_closed(connection))  # logs only: then it ends
    assert replayed == [(1, b"one\n"), (2, b"two\n")]
    with _raw_attach(path, "lg/attach?logs=1&stream=1&stdin=1&stdout=1") as connection:
        received = b""
        while b"one\n" not in received:
            received += connection.recv(65536)
        connection.sendall(b"go\n")
        while b"after go\n" not in received:
            received += connection.recv(65536)
    assert [data for _, data in _frames(received)] == [b"one\n", b"after go\n"]
    ok(daemon, "rm", "-f", "lg")


def test_the_log_replay_comes_apart_from_the_head(tty_daemon: Daemon):
    """docker-py reads an attach's head through a buffered reader and then the bare
    socket: output in the same read as the head is lost to it (its
    test_attach_no_stream).  The replay comes after the head, not with it."""
    daemon = tty_daemon
    ok(daemon, "run", "--name", "lh", "bb:1", "echo", "hello")
    together = 0
    for _ in range(5):
        with _raw_attach(daemon.socket or "", "lh/attach?logs=1&stdout=1") as connection:
            select.select([connection], [], [], 10)  # the head is in: a client
            time.sleep(0.005)  # takes a moment to parse it before it reads on
            first = connection.recv(65536)
            assert first.startswith(b"HTTP/1.1 101")
            together += not first.endswith(b"\r\n\r\n")
            assert _frames(first + _read_until_closed(connection)) == [(1, b"hello\n")]
    assert together <= 1  # a client descheduled for a while may still read both at once
    ok(daemon, "rm", "lh")

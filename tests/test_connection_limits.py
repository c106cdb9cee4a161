"""Acceptance: connection limits of a real daemon (issue 14, item 5).

Slow clients that trickle headers or a JSON body are cut after the configured
timeouts while others are served; keep-alive connections, streamed bodies and
hijacked streams are never cut; JSON bodies over the limit are refused with 413
before they are read; 5,000 idle connections starve no one; memory stays bounded.
Real daemons on loopback and UNIX sockets, the real docker CLI.
"""

from __future__ import annotations

import contextlib
import io
import resource
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockertw.versions import MAX_API_VERSION
from tests.certs import Authority
from tests.cli import cli, import_image, ok
from tests.support import Daemon, RawHttp, docker, free_port

pytestmark = pytest.mark.integration

StartDaemon = Callable[..., Daemon]
_PING = b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n"


def _rss_mib(daemon: Daemon) -> float:
    assert daemon.process is not None
    for line in Path(f"/proc/{daemon.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _soft_open_files(daemon: Daemon) -> int:
    assert daemon.process is not None
    for line in Path(f"/proc/{daemon.process.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


@contextlib.contextmanager
def _open_files(soft: int, hard: int) -> Iterator[None]:
    """This process's limit of open files set to ``soft``/``hard`` (at least the current
    hard limit: root may raise it); restored after."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, max(hard, before[1])))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


@contextlib.contextmanager
def _connections() -> Iterator[list[socket.socket]]:
    """Sockets the test opens, all closed after."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def _tcp(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the daemon closed ``sock`` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset
    finally:
        sock.setblocking(True)


def _closed_soon(sock: socket.socket, timeout: float = 8.0) -> bool:
    """Whether the daemon closes ``sock`` within ``timeout`` seconds (far less than the
    60 s of Twisted's own idle timeout; a busy machine may delay the daemon a little)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:
        return True  # reset


def _ping_ms(port: int) -> float:
    """Milliseconds of one ``GET /_ping`` on a new connection."""
    started = time.perf_counter()
    with _tcp(port) as sock:
        sock.sendall(_PING)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    return (time.perf_counter() - started) * 1000


def _wait_for_log(daemon: Daemon, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in daemon.output().splitlines() if text in line]
        if lines:
            return lines[0]
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged:\n{daemon.output()[-3000:]}")


def _tar(name: str = "hello.txt", data: bytes = b"hello\n") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        member = tarfile.TarInfo(name)
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return out.getvalue()


def test_trickled_headers_are_cut_at_the_timeout_while_others_are_served(
        start_daemon: StartDaemon):
    port = free_port()
    daemon = start_daemon("--listen", f"tcp:{port}:interface=127.0.0.1",
                          "--header-timeout", "2")
    with _connections() as slow:
        for _ in range(20):
            slow.append(_tcp(port))
            slow[-1].sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n")
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # a header byte every 0.25 s ...
            for sock in slow:
                sock.sendall(b"X")
            time.sleep(0.25)
        assert not any(_closed_by_peer(sock) for sock in slow)
        done = docker("-H", f"tcp://127.0.0.1:{port}", "version", "--format",
                      "{{.Server.APIVersion}}")
        assert (done.returncode, done.stdout.strip()) == (0, MAX_API_VERSION), done.stderr
        assert all(_closed_soon(sock) for sock in slow)  # ... buys no more than 2 s
        peer = slow[0].getsockname()[1]
    line = _wait_for_log(daemon, f"no request headers from 127.0.0.1:{peer} in 2s")
    assert f"tcp:{port}" in line


def test_a_connection_that_never_sends_is_cut_at_the_header_timeout(daemon_1s: Daemon):
    sock = socket.socket(socket.AF_UNIX)
    with contextlib.closing(sock):
        sock.connect(str(daemon_1s.socket))
        time.sleep(0.5)
        assert not _closed_by_peer(sock)
        assert _closed_soon(sock)
    _wait_for_log(daemon_1s, "no request headers from a local client in 1s")


@pytest.fixture
def daemon_1s(start_daemon: StartDaemon) -> Daemon:
    """A daemon whose clients have one second for headers and for JSON bodies."""
    return start_daemon("--header-timeout", "1", "--body-timeout", "1")


def test_a_trickled_json_body_is_cut_at_the_body_timeout(daemon_1s: Daemon):
    connection = RawHttp(daemon_1s)
    try:
        connection.sock.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                                b"Content-Type: application/json\r\nContent-Length: 100\r\n"
                                b"\r\n{")
        for _ in range(3):  # a byte every 0.25 s ...
            time.sleep(0.25)
            connection.sock.sendall(b" ")
        assert not _closed_by_peer(connection.sock)
        assert _closed_soon(connection.sock)  # ... buys no more than 1 s
    finally:
        connection.close()
    _wait_for_log(daemon_1s, "no request body from a local client in 1s")
    assert "POST /containers/create" not in daemon_1s.output()  # never routed


def test_a_keep_alive_connection_waits_between_requests_without_limit(daemon_1s: Daemon):
    connection = RawHttp(daemon_1s)
    try:
        connection.ping()
        time.sleep(2.5)  # longer than both timeouts
        connection.ping()
    finally:
        connection.close()


def test_a_slow_streamed_body_is_never_cut(daemon_1s: Daemon):
    archive = _tar()
    connection = RawHttp(daemon_1s)
    try:
        connection.head("POST", "/images/create?fromSrc=-&repo=slow&tag=1")
        for start in range(0, len(archive), len(archive) // 4):
            connection.chunk(archive[start:start + len(archive) // 4])
            time.sleep(0.8)  # 3 s or more in all, a chunk at a time
        connection.sock.sendall(b"0\r\n\r\n")
        head = connection.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
    finally:
        connection.close()
    assert ok(daemon_1s, "images", "--format", "{{.Repository}}:{{.Tag}}").split() == [
        "slow:1"]


def test_a_quiet_hijacked_stream_is_never_cut(daemon_1s: Daemon, busybox_tar: Path):
    import_image(daemon_1s, busybox_tar, "bb:1")
    command = ["docker", "-H", f"unix://{daemon_1s.socket}", "run", "-i", "--rm", "bb:1",
               "sh", "-c", "read line; echo got $line"]
    client = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # the stream is quiet longer than every timeout
        out, err = client.communicate("late\n", timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert (client.returncode, out) == (0, "got late\n"), err
    daemon_1s.stop_and_check_clean()


def test_json_bodies_over_the_limit_are_refused_by_the_cli_with_413(
        start_daemon: StartDaemon, busybox_tar: Path, workdir: Path):
    daemon = start_daemon("--max-json-body", "64KiB")
    import_image(daemon, busybox_tar, "bb:1")
    labels = workdir / "labels"
    labels.write_text("".join(f"label{n}={'x' * 100}\n" for n in range(1000)))  # ~110 kB
    done = cli(daemon, "create", "--label-file", str(labels), "bb:1", "true")
    assert done.returncode != 0
    assert "request body too large: the limit is 65536 bytes" in done.stderr
    _wait_for_log(daemon, "request body of a local client over 65536 bytes: refused (413)")
    labels.write_text("".join(f"label{n}={'x' * 100}\n" for n in range(500)))  # ~55 kB
    ok(daemon, "create", "--label-file", str(labels), "bb:1", "true")
    daemon.stop_and_check_clean()


def _tls_daemon(start_daemon: StartDaemon, workdir: Path, *extra: str) -> tuple[int, list[str]]:
    """A ``--tlsverify`` daemon's port, and the CLI's arguments to reach it."""
    authority = Authority(workdir)
    server = authority.issue("server", "localhost", server=True, hosts=("127.0.0.1",))
    client = authority.issue("client", "client", server=False)
    port = free_port()
    start_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify", *extra,
                 "--tlscacert", str(authority.files.cert), "--tlscert", str(server.cert),
                 "--tlskey", str(server.key))
    return port, ["--tlsverify", "--tlscacert", str(authority.files.cert), "--tlscert",
                  str(client.cert), "--tlskey", str(client.key),
                  "-H", f"tcp://127.0.0.1:{port}"]


def test_the_413_reaches_the_cli_over_tls_too(start_daemon: StartDaemon, workdir: Path):
    _, tls = _tls_daemon(start_daemon, workdir, "--max-json-body", "64KiB")
    labels = workdir / "labels"
    labels.write_text("".join(f"label{n}={'x' * 100}\n" for n in range(1000)))
    done = docker(*tls, "create", "--label-file", str(labels), "no-such-image", "true")
    assert "request body too large: the limit is 65536 bytes" in done.stderr, done.stderr
    assert docker(*tls, "version").returncode == 0


def test_a_tls_handshake_that_never_ends_is_cut_at_the_header_timeout(
        start_daemon: StartDaemon, workdir: Path):
    port, tls = _tls_daemon(start_daemon, workdir, "--header-timeout", "1")
    with _connections() as held:
        held.append(_tcp(port))
        held[-1].sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, no more
        time.sleep(0.5)
        assert not _closed_by_peer(held[-1])
        assert _closed_soon(held[-1])
    assert docker(*tls, "version").returncode == 0


def test_the_default_limit_is_4_mib_of_json(daemon: Daemon, busybox_tar: Path,
                                            workdir: Path):
    import_image(daemon, busybox_tar, "bb:1")
    labels = workdir / "labels"
    labels.write_text("".join(f"l{n}={'x' * 1000}\n" for n in range(4200)))  # ~4.2 MB
    done = cli(daemon, "create", "--label-file", str(labels), "bb:1", "true")
    assert "the limit is 4194304 bytes" in done.stderr
    labels.write_text("".join(f"l{n}={'x' * 1000}\n" for n in range(3000)))  # ~3 MB
    ok(daemon, "create", "--label-file", str(labels), "bb:1", "true")


def test_an_oversized_body_is_answered_before_it_is_sent(daemon: Daemon):
    connection = RawHttp(daemon)
    try:
        connection.sock.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                                b"Content-Type: application/json\r\n"
                                b"Content-Length: 10000000000\r\n\r\n")  # 10 GB, never sent
        status, headers, body = connection.response()
        assert status == 413
        assert headers["Connection"] == "close"
        assert body == b'{"message":"request body too large: the limit is 4194304 bytes"}\n'
    finally:
        connection.close()


def test_a_chunked_body_is_cut_when_it_crosses_the_limit(start_daemon: StartDaemon):
    daemon = start_daemon("--max-json-body", "1MiB")
    before = _rss_mib(daemon)
    for _ in range(10):
        connection = RawHttp(daemon)
        try:
            connection.sock.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\n"
                                    b"Content-Type: application/json\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n")
            with contextlib.suppress(OSError):  # the daemon stops reading at the limit
                for _ in range(32):
                    connection.chunk(b"x" * 65536)  # 2 MiB
            assert connection.response()[0] == 413
        finally:
            connection.close()
    assert _rss_mib(daemon) - before < 16
    assert unix_ping(daemon)


def unix_ping(daemon: Daemon) -> bool:
    connection = RawHttp(daemon)
    try:
        connection.ping()
        return True
    finally:
        connection.close()


def test_5000_idle_and_500_slow_connections_starve_no_one(start_daemon: StartDaemon):
    port = free_port()
    with _open_files(1024, 8192):  # the daemon starts with a low soft limit ...
        daemon = start_daemon("--listen", f"tcp:{port}:interface=127.0.0.1")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert _soft_open_files(daemon) == max(hard, 8192)  # ... and raises it, as dockerd
    unloaded = sorted(_ping_ms(port) for _ in range(50))
    before = _rss_mib(daemon)
    with _open_files(8192, 8192), _connections() as held:
        for _ in range(5000):
            held.append(_tcp(port))
        for _ in range(500):
            held.append(_tcp(port))
            held[-1].sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Slow: ")
        loaded = sorted(_ping_ms(port) for _ in range(50))
        done = docker("-H", f"tcp://127.0.0.1:{port}", "ps")
        assert done.returncode == 0, done.stderr
        grown = _rss_mib(daemon) - before
        assert not any(_closed_by_peer(sock) for sock in held[::250])
    assert grown < 64, f"{grown:.1f} MiB for 5,500 connections"
    # a generous bound on a machine shared with other work: no starvation, no queueing
    assert loaded[45] < max(10 * unloaded[45], 50.0), (unloaded, loaded)

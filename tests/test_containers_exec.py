"""Acceptance: ``docker exec`` with the real CLI against a daemon running runc.

Output and exit codes, separated streams, user/workdir/env, piped stdin, detached
execs, ``-it`` under a pseudo-terminal with a resize, a missing binary, the state
errors (stopped, paused), ``GET /exec/{id}/json``, events, clean-up with the
container, and exec output kept out of the container's log.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from dockertw.client.docker import DockerClient
from dockertw.client.errors import ConflictError
from tests.cli import cli, inspect, ok
from tests.support import Daemon, _UnixConnection, unix_get
from tests.terminal import Terminal

pytestmark = pytest.mark.integration


@pytest.fixture
def box(running_daemon: Daemon) -> Iterator[tuple[Daemon, str]]:
    """A running ``sleep`` container ``x1``; removed afterwards."""
    ok(running_daemon, "run", "-d", "--name", "x1", "bb:1", "sleep", "600")
    try:
        yield running_daemon, "x1"
    finally:
        cli(running_daemon, "rm", "-f", "x1")


def _request(path: str, method: str, url: str, body: bytes = b"",
             upgrade: bool = False) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX)
    connection.settimeout(10)
    connection.connect(path)
    headers = "Host: x\r\nContent-Type: application/json\r\n"
    if upgrade:
        headers += "Upgrade: tcp\r\nConnection: Upgrade\r\n"
    connection.sendall(f"{method} {url} HTTP/1.1\r\n{headers}Content-Length: "
                       f"{len(body)}\r\n\r\n".encode() + body)
    return connection


def _call(path: str, method: str, url: str, body: object = None) -> tuple[int, bytes]:
    """One request with a JSON body (none when ``None``): the status and body."""
    connection = _UnixConnection(path)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Host": "x", "Content-Type": "application/json"} if data else {}
        connection.request(method, url, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _read_all(connection: socket.socket) -> bytes:
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def _create_exec(daemon: Daemon, container: str, body: dict[str, object]) -> str:
    status, answer = _call(daemon.socket or "", "POST", f"/containers/{container}/exec",
                           body)
    assert status == 201, answer
    return str(json.loads(answer)["Id"])


def _exec_json(daemon: Daemon, exec_id: str) -> dict[str, object]:
    status, _, body = unix_get(daemon.socket or "", f"/exec/{exec_id}/json")
    assert status == 200, body
    return dict(json.loads(body))


def test_output_exit_codes_and_separate_streams(box: tuple[Daemon, str]):
    daemon, name = box
    done = cli(daemon, "exec", name, "echo", "hi")
    assert (done.returncode, done.stdout, done.stderr) == (0, "hi\n", "")
    assert cli(daemon, "exec", name, "sh", "-c", "exit 7").returncode == 7
    done = cli(daemon, "exec", name, "sh", "-c", "echo out; echo err >&2")
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")


def test_user_workdir_and_env(box: tuple[Daemon, str]):
    daemon, name = box
    done = cli(daemon, "exec", "-u", "1000:1000", "-w", "/tmp", "-e", "A=b", name, "sh",
               "-c", 'echo $(id -u):$(id -g) $(pwd) $A $HOSTNAME')
    hostname = inspect(daemon, name)["Config"]["Hostname"]
    assert done.stdout == f"1000:1000 /tmp b {hostname}\n", done.stderr
    assert ok(daemon, "exec", name, "sh", "-c", "id -u; pwd").split() == ["0", "/"]


def test_piped_stdin(box: tuple[Daemon, str]):
    daemon, name = box
    done = cli_input(daemon, "data\nmore\n", "exec", "-i", name, "cat")
    assert (done.returncode, done.stdout) == (0, "data\nmore\n"), done.stderr


def cli_input(daemon: Daemon, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI with ``text`` on its standard input."""
    config = tempfile.mkdtemp(prefix="dockertw-cli-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = config
    try:
        return subprocess.run(["docker", "-H", f"unix://{daemon.socket}", *args],
                              input=text, capture_output=True, text=True, env=env,
                              timeout=30, check=False)
    finally:
        shutil.rmtree(config, ignore_errors=True)


def test_detached_exec(box: tuple[Daemon, str]):
    daemon, name = box
    done = cli(daemon, "exec", "-d", name, "sh", "-c", "echo hidden; touch /made")
    assert (done.returncode, done.stdout) == (0, "")
    deadline = time.monotonic() + 10
    while cli(daemon, "exec", name, "test", "-e", "/made").returncode != 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_exec_it_types_resizes_and_exits(box: tuple[Daemon, str],
                                         terminals: list[Terminal]):
    daemon, name = box
    shell = Terminal(daemon, "exec", "-it", name, "sh")
    terminals.append(shell)
    shell.expect(r"# ")
    shell.type("stty size\r")
    shell.expect(r"30 100\r\n")
    shell.resize_and_see(40, 120)
    shell.type('echo hel""lo; exit 4\r')
    shell.expect(r"\r\nhello\r\n")
    assert shell.wait() == 4, shell.output


def test_missing_binary(box: tuple[Daemon, str]):
    daemon, name = box
    done = cli(daemon, "exec", name, "no-such-binary")
    assert done.returncode == 126, (done.stdout, done.stderr)
    message = done.stdout + done.stderr
    assert message.startswith("OCI runtime exec failed: "), message
    assert "no-such-binary" in message and message.rstrip().endswith(": unknown")


def test_stopped_and_paused_containers(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "x2", "bb:1", "sleep", "600")
    container_id = inspect(daemon, "x2")["Id"]
    ok(daemon, "pause", "x2")
    done = cli(daemon, "exec", "x2", "true")
    assert done.returncode != 0
    assert (f"Container {container_id} is paused, unpause the container before exec"
            in done.stderr), done.stderr
    ok(daemon, "unpause", "x2")
    ok(daemon, "stop", "-t", "0", "x2")
    done = cli(daemon, "exec", "x2", "true")
    assert f"Container {container_id} is not running" in done.stderr, done.stderr
    path = daemon.socket or ""
    status, body = _call(path, "POST", "/containers/x2/exec", {})
    assert (status, body) == (400, b'{"message":"No exec command specified"}\n')
    status, body = _call(path, "POST", "/containers/x2/exec", {"Cmd": ["true"]})
    assert status == 409 and json.loads(body) == {
        "message": f"Container {container_id} is not running"}
    ok(daemon, "rm", "x2")


def test_inspect_shape_start_twice_and_errors(box: tuple[Daemon, str]):
    daemon, name = box
    path = daemon.socket or ""
    exec_id = _create_exec(daemon, name, {"AttachStdout": True, "Cmd": ["sh", "-c",
                                                                       "exit 3"]})
    shown = _exec_json(daemon, exec_id)
    container_id = inspect(daemon, name)["Id"]
    assert shown == {"ID": exec_id, "Running": False, "ExitCode": None,
                     "ProcessConfig": {"tty": False, "entrypoint": "sh",
                                       "arguments": ["-c", "exit 3"],
                                       "privileged": False},
                     "OpenStdin": False, "OpenStderr": False, "OpenStdout": True,
                     "CanRemove": False, "ContainerID": container_id,
                     "DetachKeys": "", "Pid": 0}
    status, body = _call(path, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert (status, body) == (200, b"")
    deadline = time.monotonic() + 10
    while _exec_json(daemon, exec_id)["Running"] or \
            _exec_json(daemon, exec_id)["ExitCode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shown = _exec_json(daemon, exec_id)
    assert shown["ExitCode"] == 3 and int(str(shown["Pid"])) > 0
    status, body = _call(path, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 409 and json.loads(body) == {
        "message": f"Error: Exec command {exec_id} has already run"}
    for method, url in (("GET", "/exec/nope/json"), ("POST", "/exec/nope/start"),
                        ("POST", "/exec/nope/resize?h=1&w=1")):
        status, body = _call(path, method, url, {} if method == "POST" else None)
        assert (status, json.loads(body)) == (
            404, {"message": "No such exec instance: nope"}), (method, url)
    status, body = _call(path, "POST", f"/exec/{exec_id}/resize?h=x&w=1", {})
    assert status == 400


def test_hijacked_start_multiplexes(box: tuple[Daemon, str]):
    daemon, name = box
    exec_id = _create_exec(daemon, name, {"AttachStdout": True, "AttachStderr": True,
                                          "Cmd": ["sh", "-c", "echo err >&2; sleep 0.2; "
                                                  "echo hi"]})
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    with _request(daemon.socket or "", "POST", f"/exec/{exec_id}/start", body,
                  upgrade=True) as connection:
        received = b""
        while b"\r\n\r\n" not in received:  # as the CLI: half-close after the 101
            received += connection.recv(65536)
        connection.shutdown(socket.SHUT_WR)
        received += _read_all(connection)
    head, _, stream = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                           b"application/vnd.docker.multiplexed-stream\r\nConnection: "
                           b"Upgrade\r\nUpgrade: tcp\r\nApi-Version: 1.56\r\n"), head
    assert stream == b"\x02\0\0\0\0\0\0\x04err\n\x01\0\0\0\0\0\0\x03hi\n"
    assert _exec_json(daemon, exec_id)["ExitCode"] == 0


def test_events_and_exec_ids(box: tuple[Daemon, str]):
    daemon, name = box
    exec_id = _create_exec(daemon, name, {"Cmd": ["sleep", "30"]})
    _call(daemon.socket or "", "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert inspect(daemon, name)["ExecIDs"] == [exec_id]
    ok(daemon, "exec", name, "true")
    events = ok(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                "--filter", f"container={name}", "--format",
                "{{.Action}}|{{index .Actor.Attributes \"execID\"}}|"
                "{{index .Actor.Attributes \"exitCode\"}}").splitlines()
    assert f"exec_create: sleep 30|{exec_id}|" in events
    assert f"exec_start: sleep 30|{exec_id}|" in events
    actions = [line.split("|")[0] for line in events]
    assert actions[-3:] == ["exec_create: true ", "exec_start: true ", "exec_die"]
    assert events[-1].endswith("|0")


def test_execs_end_with_the_container_and_stay_out_of_its_log(
        running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "x3", "bb:1", "sh", "-c",
       "echo from-init; sleep 600")
    assert ok(daemon, "exec", "x3", "echo", "from-exec") == "from-exec\n"
    exec_id = _create_exec(daemon, "x3", {"Cmd": ["sleep", "300"]})
    _call(daemon.socket or "", "POST", f"/exec/{exec_id}/start", {"Detach": True})
    pid = int(str(_exec_json(daemon, exec_id)["Pid"]))
    assert Path(f"/proc/{pid}").exists()
    ok(daemon, "stop", "-t", "1", "x3")
    shown = _exec_json(daemon, exec_id)
    assert (shown["Running"], shown["ExitCode"]) == (False, 137)
    assert not Path(f"/proc/{pid}").exists()
    assert ok(daemon, "logs", "x3") == "from-init\n"
    ok(daemon, "rm", "x3")
    status, _, _ = unix_get(daemon.socket or "", f"/exec/{exec_id}/json")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_client_exec_calls_end_to_end(box: tuple[Daemon, str]):
    daemon, name = box
    client = DockerClient(f"unix://{daemon.socket}")
    try:
        exec_id = await client.create_exec(
            name, ["sh", "-c", "cat; echo $A >&2; exit 5"], attach_stdin=True,
            env=["A=from-env"])
        stream = await client.start_exec(exec_id)
        stream.write(b"piped\n")
        stream.close_write()
        assert await stream.read_all() == (b"piped\n", b"from-env\n")
        shown = await client.inspect_exec(exec_id)
        assert (shown["Running"], shown["ExitCode"], shown["OpenStdin"]) == (False, 5, True)
        detached = await client.create_exec(name, ["touch", "/by-client"])
        await client.start_exec_detached(detached)
        refusals = []
        for _ in range(100):  # "is already running", then "has already run"
            with pytest.raises(ConflictError) as refused:
                await client.start_exec_detached(detached)
            refusals.append(str(refused.value))
            if "has already run" in refusals[-1]:
                break
            await deferLater(reactor, 0.05, lambda: None)
        assert refusals[-1].endswith(f"Error: Exec command {detached} has already run")
        assert (await client.inspect_exec(detached))["ExitCode"] == 0
    finally:
        await client.close()


def test_exec_it_detach_keys_leave_the_process_running(box: tuple[Daemon, str],
                                                       terminals: list[Terminal]):
    daemon, name = box
    shell = Terminal(daemon, "exec", "-it", "--detach-keys", "ctrl-x,x", name, "sh")
    terminals.append(shell)
    shell.expect(r"# ")
    shell.type("sleep 1234\r")
    time.sleep(0.3)
    shell.type("\x18x")
    shell.wait()  # the CLI spots the keys itself ("read escape sequence")
    exec_ids = inspect(daemon, name)["ExecIDs"]
    assert exec_ids and len(exec_ids) == 1
    shown = _exec_json(daemon, exec_ids[0])
    assert (shown["Running"], shown["ExitCode"], shown["DetachKeys"]) == (True, None, "GHg=")
    assert "sleep 1234" in ok(daemon, "exec", name, "ps")


def test_privileged_exec_has_every_capability(box: tuple[Daemon, str]):
    daemon, name = box
    script = "grep CapEff /proc/self/status"
    plain = int(ok(daemon, "exec", name, "sh", "-c", script).split()[1], 16)
    everything = int(ok(daemon, "exec", "--privileged", name, "sh", "-c",
                        script).split()[1], 16)
    assert plain & everything == plain and everything > plain
    assert everything & (1 << 21)  # CAP_SYS_ADMIN
    held = next(line for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("CapBnd:"))
    assert everything == int(held.split()[1], 16)  # all this host lets a process have


def test_server_side_detach_keys_end_the_session_only(box: tuple[Daemon, str]):
    daemon, name = box
    exec_id = _create_exec(daemon, name, {"AttachStdin": True, "AttachStdout": True,
                                          "Tty": True, "Cmd": ["sh"]})
    body = json.dumps({"Detach": False, "Tty": True}).encode()
    with _request(daemon.socket or "", "POST", f"/exec/{exec_id}/start", body,
                  upgrade=True) as connection:
        connection.sendall(b'echo mark""er\r')
        received = b""
        while b"marker\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, received
            received += chunk
        connection.sendall(b"\x10\x11echo after\r")
        received += _read_all(connection)  # the server ends the session
    assert b"after" not in received
    assert _exec_json(daemon, exec_id)["Running"] is True
    events = ok(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                "--filter", f"container={name}", "--format", "{{.Action}}").split("\n")
    assert "exec_detach" in events
    status, _ = _call(daemon.socket or "", "POST", f"/exec/{exec_id}/resize?h=20&w=50",
                      {})
    assert status == 200
    # the container has no terminal: the exec's is the first of its devpts
    assert ok(daemon, "exec", name, "stty", "-F", "/dev/pts/0", "size") == "20 50\n"

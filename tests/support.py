"""Helpers for tests that run a real dockertw daemon and the real ``docker`` CLI."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred

from dockertw.runtime.mounts import mounts_under

REPO = Path(__file__).resolve().parent.parent
NO_HUB = "http://127.0.0.1:9"


def twistd_command() -> list[str]:
    """The twistd of the Python running the tests (the project's virtual environment)."""
    beside = Path(sys.executable).with_name("twistd")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("twistd")
    if found is None:
        raise RuntimeError("twistd is not installed: run ./bootstrap.sh install")
    return [found]


_RESET_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP,
                  signal.SIGPIPE)


def default_signals() -> None:
    """For ``preexec_fn``: the child gets default signal dispositions and an empty mask.

    A test runner started with SIGINT ignored (a background job, some CI runners) would
    otherwise pass that on through exec to the daemons it starts.
    """
    for number in _RESET_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_PINNED: dict[str, str] = {}  # socket path -> the API version its tests speak
_VERSIONED_URL = re.compile(r"^/v[0-9]")


def unix_get(path: str, url: str, method: str = "GET", body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request over a UNIX socket; returns status, headers, body.  A bare
    ``url`` to a daemon pinned to an API version is sent under ``/vX.Y``."""
    if path in _PINNED and not _VERSIONED_URL.match(url):
        url = f"/v{_PINNED[path]}{url}"
    connection = _UnixConnection(path)
    try:
        connection.request(method, url, body=body,
                           headers={"Host": "api.moby.localhost", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def within_seconds(coroutine: Coroutine[Any, Any, Any], seconds: float) -> Deferred[Any]:
    """Fail instead of hanging when a stream never ends."""
    from twisted.internet import reactor

    return Deferred.fromCoroutine(coroutine).addTimeout(seconds, reactor)


def api_request(socket_path: str, version: str, method: str, path: str, body: Any = None,
                raw: bytes | None = None, headers: dict[str, str] | None = None
                ) -> tuple[int, dict[str, str], bytes]:
    """``method /v{version}{path}`` with a JSON ``body`` (or ``raw`` bytes); the query
    is quoted (JSON parameters may have spaces)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    extra = {"Content-Type": "application/json"} if body is not None else {}
    url = quote(f"/v{version}{path}", safe="/:?=&,;%")
    return unix_get(socket_path, url, method, data, {**extra, **(headers or {})})


def post_json(path: str, url: str, document: object) -> tuple[int, bytes]:
    """``POST`` a JSON body over a UNIX socket; returns status and body."""
    status, _, body = unix_get(path, url, "POST", json.dumps(document).encode(),
                               {"Content-Type": "application/json"})
    return status, body


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    """Poll ``condition`` until it is true; answers its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def mounts_left(path: Path, timeout: float = 10.0) -> list[Path]:
    """The mounts still under ``path`` once they had ``timeout`` seconds to go."""
    deadline = time.monotonic() + timeout
    while (left := mounts_under(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


class RawHttp:
    """HTTP/1.1 by hand on one UNIX socket connection."""

    def __init__(self, daemon: Daemon) -> None:
        assert daemon.socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(daemon.socket))
        self._buffer = b""

    def head(self, method: str, path: str, length: int | None = None) -> None:
        framing = ("Transfer-Encoding: chunked" if length is None
                   else f"Content-Length: {length}")
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: d\r\n{framing}\r\n"
                          "Content-Type: application/x-tar\r\n\r\n".encode())

    def chunk(self, data: bytes) -> None:
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """One response with a Content-Length (what these routes answer)."""
        head = self.until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        length = int(headers.get("Content-Length", "0"))
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def ping(self) -> None:
        """The connection still serves requests, in step."""
        self.sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        status, _, body = self.response()
        assert (status, body) == (200, b"OK")

    def until(self, marker: bytes) -> bytes:
        """What arrives up to ``marker`` (dropped)."""
        while marker not in self._buffer:
            self._receive()
        head, self._buffer = self._buffer.split(marker, 1)
        return head

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the daemon closed the connection")
        self._buffer += data

    def close(self) -> None:
        self.sock.close()


class _UnixConnection(http.client.HTTPConnection):
    """A keep-alive HTTP connection over a UNIX socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path
        self._timeout = timeout

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self._timeout)
        self.sock.connect(self._path)


_CGROUPS = Path("/sys/fs/cgroup")


_NETWORK_FLAGS = ("--bridge", "-b", "--iptables")


_NETWORK_KEYS = frozenset({"bridge", "iptables", "ip-forward"})  # daemon.json's


def isolated_network_args(extra_args: Sequence[str]) -> list[str]:
    """Unless a test chooses its networking, a daemon has no default bridge and writes
    no firewall rule (nothing to leave on the shared host); networking tests pass
    :func:`network_args`."""
    given = {arg.split("=", 1)[0] for arg in extra_args}
    if given & set(_NETWORK_FLAGS):
        return []
    return ["--bridge", "none", "--iptables", "false", "--ip-forward", "false"]


class Daemon:
    """A ``twistd -n dockertw`` process with its own state root and UNIX socket."""

    def __init__(self, workdir: Path, extra_args: Sequence[str] = (),
                 unix: bool = True, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        self.workdir = workdir
        self.root = Path(config.get("data-root") or workdir / "root")
        self.exec_root = Path(config.get("exec-root") or workdir / "exec")
        self.socket = str(workdir / "d.sock") if unix else None
        self.log_path = workdir / "daemon.log"
        self.pidfile = Path(config.get("pidfile") or workdir / "dockertw.pid")
        self.config_file = workdir / "daemon.json"
        self.config_file.write_text(json.dumps(config))
        self.cgroup_parent = config.get("cgroup-parent") or \
            f"dockertw-test-{uuid.uuid4().hex[:12]}"
        # Everything of its own: the host's /etc/dockertw/daemon.json, /run/dockertw
        # and /run/dockertw.pid are never this daemon's.  What the file sets is no flag.
        # Docker Hub is never reached from a test: a closed loopback port stands for it
        # (a test that needs an upstream gives another --hub-registry, which wins).
        own = {"data-root": self.root, "exec-root": self.exec_root,
               "pidfile": self.pidfile, "cgroup-parent": self.cgroup_parent}
        args = ["--config-file", str(self.config_file), "--hub-registry", NO_HUB,
                *([] if _NETWORK_KEYS & config.keys() else isolated_network_args(extra_args))]
        for key, value in own.items():
            args += [] if key in config else [f"--{key}", str(value)]
        if self.socket:
            args += ["--listen", f"unix:{self.socket}:mode=660"]
        self.args = args + list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self.pythonpath = str(REPO)  # where its code comes from
        self.command_prefix: list[str] = []  # e.g. systemd-socket-activate and its options

    @property
    def api_version(self) -> str | None:
        """The API version the tests speak to this daemon's socket (``None``: the
        docker CLI negotiates, bare URLs get the newest); a daemon restarted on the
        same socket keeps it."""
        return _PINNED.get(self.socket or "")

    @api_version.setter
    def api_version(self, version: str | None) -> None:
        if self.socket and version:
            _PINNED[self.socket] = version
        elif self.socket:
            _PINNED.pop(self.socket, None)

    def start(self, wait: bool = True,
              preexec_fn: Callable[[], None] = default_signals) -> Daemon:
        env = dict(os.environ, PYTHONPATH=self.pythonpath)
        command = twistd_command() + ["--nodaemon", "--pidfile=", "dockertw", *self.args]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command_prefix + command,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, env=env, preexec_fn=preexec_fn,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        assert self.socket, "wait_ready needs the UNIX listener"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"daemon exited early:\n{self.output()}")
            try:
                if unix_get(self.socket, "/_ping")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not answer in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Stop the daemon with ``sig``; SIGKILL it if it does not stop in time."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._remove_cgroup_parent()
        return self.process.returncode

    def stop_and_check_clean(self) -> None:
        """Stop; then no mount, cgroup or traceback of this daemon may be left."""
        self.stop()
        assert mounts_under(self.root) == []
        assert self.container_cgroups() == []
        assert "Traceback" not in self.output(), self.output()

    def holders(self) -> list[int]:
        """The live-restore holder processes of this daemon's state root."""
        return holder_pids(self.root)

    def kill_leftovers(self) -> None:
        """Stop the daemon; kill what a live-restore daemon leaves running (its
        containers and their networks, by a start without the option, then through
        runc; and its holder); unmount what is left mounted."""
        self.stop()
        self._start_once_without_live_restore()
        state = self.exec_root / "runc"
        for entry in sorted(state.iterdir()) if state.is_dir() else []:
            subprocess.run(["runc", "--root", str(state), "delete", "--force", entry.name],
                           capture_output=True, check=False, timeout=30)
        for pid in self.holders():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while self.holders() and time.monotonic() < deadline:
            time.sleep(0.05)
        for target in mounts_under(self.root):
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)
        self._remove_cgroup_parent()

    def _start_once_without_live_restore(self) -> None:
        """Start and stop the daemon without ``--live-restore`` (it kills what the
        holder keeps and tears down their networks, bridges and chains)."""
        if self.process is None:
            return
        args, config = self.args, json.loads(self.config_file.read_text())
        self.args = [arg for arg in args if arg != "--live-restore"]
        self.config_file.write_text(json.dumps(
            {key: value for key, value in config.items() if key != "live-restore"}))
        try:
            self.start()
        except Exception:  # noqa: BLE001 - the fallback below cleans up
            pass
        finally:
            self.stop()
            self.args = args
            self.config_file.write_text(json.dumps(config))

    def container_cgroups(self) -> list[Path]:
        """The cgroups of this daemon's containers, in every hierarchy."""
        return [child for parent in _CGROUPS.glob(f"*/{self.cgroup_parent}")
                for child in parent.iterdir() if child.is_dir()]

    def _remove_cgroup_parent(self) -> None:
        for parent in _CGROUPS.glob(f"*/{self.cgroup_parent}"):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty: leftovers stay visible


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """Each process's pid and argument list (those that end meanwhile are skipped)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")


def holder_pids(root: Path) -> list[int]:
    """Processes of ``python -m dockertw.daemon.holder`` for the state root ``root``."""
    wanted = str(root / "holder").encode()
    return [pid for pid, command in command_lines()
            if b"dockertw.daemon.holder" in command
            and any(arg.startswith(wanted) for arg in command)]


def docker(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 30.0,
           input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``docker`` CLI with a private config directory (``input`` on stdin)."""
    binary = shutil.which("docker")
    if binary is None:
        raise RuntimeError("the docker CLI is not on PATH")
    config = tempfile.mkdtemp(prefix="dockertw-cli-")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DOCKER_")}
    env.update({"DOCKER_CONFIG": config, **(env_extra or {})})
    try:
        return subprocess.run([binary, *args], capture_output=True, text=True, env=env,
                              timeout=timeout, check=False, input=input)
    finally:
        shutil.rmtree(config, ignore_errors=True)

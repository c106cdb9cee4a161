"""What the benchmark scripts share: their scaffold and clean-up.

:func:`temporary_workdir` is a directory that is always unmounted and removed, even
on Ctrl-C or SIGTERM; :func:`run_benchmark` adds the command line; :func:`on_dockerd`
measures a private ``dockerd`` (:class:`DockerEngine`) if it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from tests.support import Daemon, free_port

_T = TypeVar("_T")


def _interrupt(signum: int, frame: Any) -> NoReturn:
    """SIGTERM ends the script as Ctrl-C does, through every ``finally``."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def temporary_workdir(prefix: str) -> Iterator[Path]:
    """A new directory under /tmp, always unmounted and removed after.

    Ctrl-C or SIGTERM inside ends the script with status 130 once it is clean; the
    signals stay ignored from the clean-up on."""
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield workdir
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def run_benchmark(description: str, prefix: str,
                  add_arguments: Callable[[argparse.ArgumentParser], None],
                  bench: Callable[[Path, argparse.Namespace], None],
                  argv: Sequence[str] | None = None) -> int:
    """Parse the command line, then ``bench(workdir, options)`` in a
    :func:`temporary_workdir`; 0 once done."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    options = parser.parse_args(argv)
    with temporary_workdir(prefix) as workdir:
        bench(workdir, options)
    return 0


def add_docker_option(parser: argparse.ArgumentParser) -> None:
    """``--docker``: measure a private dockerd as well."""
    parser.add_argument("--docker", action="store_true",
                        help="also measure a private dockerd (Debian package docker.io)")


def add_size_count_options(parser: argparse.ArgumentParser, size_help: str,
                           count_help: str) -> None:
    """``--size`` (MB, default 200), ``--count`` (default 3) and ``--docker``."""
    parser.add_argument("--size", type=int, default=200, help=size_help)
    parser.add_argument("--count", type=int, default=3, help=count_help)
    add_docker_option(parser)


def on_dockertw(workdir: Path, bench: Callable[[Any], _T]) -> _T:
    """Run ``bench`` on a dockertw daemon with its state in ``workdir/daemon``, always
    stopped after."""
    (workdir / "daemon").mkdir()
    daemon = Daemon(workdir / "daemon")
    try:
        daemon.start()
        return bench(daemon)
    finally:
        daemon.stop()


def on_dockerd(engine: DockerEngine, bench: Callable[[DockerEngine], _T]) -> _T | None:
    """Start ``engine``, run ``bench`` on it and always stop it; None (said on stderr)
    if it would not start."""
    try:
        try:
            engine.start()
        except RuntimeError as error:
            print(f"dockerd unavailable, Docker figures skipped: {error}", file=sys.stderr)
            return None
        return bench(engine)
    finally:
        engine.stop()


def time_runs(action: Callable[[], object], count: int, warmup: int = 0) -> list[float]:
    """Seconds each of ``count`` calls of ``action`` took, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        action()
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def random_file(path: Path, megabytes: int) -> Path:
    """``path`` filled with ``megabytes`` MiB of random bytes (nothing compresses)."""
    with open(path, "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))
    return path


def report_throughput(name: str, megabytes: int, seconds: Sequence[float]) -> None:
    """One line: the median time of moving ``megabytes`` and the rate it makes."""
    median = statistics.median(seconds)
    print(f"{name:<30} {megabytes} MB  n={len(seconds)}  median {median:6.2f} s"
          f"  {megabytes / median:8.1f} MB/s")


def peak_rss_mib(target: Any) -> float:
    """The peak resident memory (``VmHWM``) of a daemon's ``process``."""
    process = getattr(target, "process", None)
    if process is None:
        return float("nan")
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _mount_points() -> Iterator[str]:
    """Every mount point of this process's mount namespace, unescaped."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            yield re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])


def unmount_under(directory: Path) -> None:
    """Lazily unmount every mount point at or under ``directory``, deepest first."""
    prefix = str(directory.resolve())
    inside = [m for m in _mount_points() if m == prefix or m.startswith(prefix + "/")]
    for mount_point in sorted(set(inside), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True,
                       timeout=30)


# --------------------------------------------------------------------------- daemons


@dataclass(frozen=True)
class Address:
    """Where a daemon listens: a UNIX socket path, or a port on 127.0.0.1."""

    transport: str  # "unix" or "tcp"
    path: str = ""
    port: int = 0

    def connect(self) -> socket.socket:
        """A connected, non-blocking socket (TCP_NODELAY on TCP)."""
        if self.transport == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.path)
        else:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return sock

    def request(self, path: str) -> bytes:
        """The bytes of one keep-alive ``GET path``."""
        host = "api.moby.localhost" if self.transport == "unix" else f"127.0.0.1:{self.port}"
        return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                "User-Agent: dockertw-benchmark\r\n\r\n").encode()


@dataclass(frozen=True)
class Target:
    """A daemon under test and its two listeners (``pid``: its process, if known)."""

    name: str
    unix: Address
    tcp: Address
    pid: int = 0


def ping(address: Address, timeout: float = 2.0) -> bool:
    """True if ``GET /_ping`` answers 200 at ``address``."""
    try:
        sock = address.connect()
    except OSError:
        return False
    try:
        sock.setblocking(True)
        sock.settimeout(timeout)
        sock.sendall(address.request("/_ping"))
        return sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    except OSError:
        return False
    finally:
        sock.close()


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child if this script dies."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


class DockerEngine:
    """A private ``dockerd`` with its state in ``workdir``; stop() always cleans up."""

    api_version: str | None = None  # the CLI negotiates (as tests.support.Daemon's)

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.socket = workdir / "docker.sock"
        self.log_path = workdir / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> Target:
        """The private engine's UNIX and TCP listeners."""
        return Target("docker", Address("unix", path=str(self.socket)),
                      Address("tcp", port=self.port))

    def command(self, binary: str) -> list[str]:
        """The dockerd command line: private sockets and directories, no networking set-up."""
        work = self.workdir
        return [binary, "--config-file", str(work / "daemon.json"),
                "--host", f"unix://{self.socket}", "--host", f"tcp://127.0.0.1:{self.port}",
                "--data-root", str(work / "data"), "--exec-root", str(work / "exec"),
                "--pidfile", str(work / "docker.pid"),
                "--iptables=false", "--ip6tables=false", "--bridge=none"]

    def start(self, timeout: float = 60.0) -> None:
        """Start dockerd and wait for /_ping; RuntimeError says why it did not come up."""
        binary = shutil.which("dockerd")
        if binary is None:
            raise RuntimeError("dockerd is not on PATH (Debian package docker.io)")
        if os.geteuid() != 0:
            raise RuntimeError("dockerd needs root")
        self.workdir.mkdir(parents=True)
        (self.workdir / "daemon.json").write_text("{}\n")  # not /etc/docker/daemon.json
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(binary), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.workdir, env=env,
                start_new_session=True, preexec_fn=_parent_death_signal())
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        """Poll both listeners for /_ping until they answer, dockerd exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.process.returncode}):\n"
                                   + self.log_tail())
            if ping(self.target.unix) and ping(self.target.tcp):
                return
            time.sleep(0.2)
        raise RuntimeError(f"dockerd did not answer /_ping in {timeout:.0f}s:\n"
                           + self.log_tail())

    def log_tail(self, lines: int = 15) -> str:
        """The last lines dockerd wrote, to explain a failure."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; kill a containerd it left behind; unmount what it mounted."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10.0)
        _kill_leftover_containerd(self.workdir / "exec")
        unmount_under(self.workdir)


def _kill_leftover_containerd(exec_root: Path) -> None:
    """SIGKILL the containerd that dockerd started under ``exec_root``, if still alive."""
    try:
        pid = int((exec_root / "containerd" / "containerd.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if str(exec_root).encode() in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

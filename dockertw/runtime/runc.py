"""The ``runc`` command line, driven through the reactor (no blocking calls).

Containers are created detached: the container's init inherits three descriptors the
caller passes (stdin, stdout, stderr), so the daemon itself holds the other ends; once
``runc create`` exits, the init is re-parented to the daemon (see
:mod:`dockertw.runtime.reaper`).  runc's own messages go to a JSON log file, so they are
never mixed with the container's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from dockertw import errdefs
from dockertw.loglevel import Logger
from dockertw.runtime.inflight import await_commands
from dockertw.runtime.processes import exit_status
from dockertw.runtime.runtimes import OciRuntime
from dockertw.runtime.timed import timed_commands

__all__ = ["Runc", "RuncError", "Stdio", "Launcher", "delete_leftovers"]

_LEFTOVER_WORKERS = 8  # runc deletes at once at start

_log = Logger()


class RuncError(errdefs.System):
    """runc failed; the message is runc's own last error line."""


@attrs.frozen
class Stdio:
    """The container's ends of its standard streams (descriptors of this process)."""

    stdin: int
    stdout: int
    stderr: int


class Launcher(Protocol):
    """Spawns the runtime commands whose processes outlive them (``run --detach``,
    ``exec --detach``) in another process: the live-restore holder, their parent."""

    def run(self, argv: Sequence[str], env: Mapping[str, str],
            fds: Mapping[int, int]) -> Awaitable[int]: ...


class _Collect(ProcessProtocol):
    def __init__(self, stdin: bytes | None = None) -> None:
        self.output = bytearray()
        self.done: Deferred[int] = Deferred()
        self._stdin = stdin

    def connectionMade(self) -> None:
        if self._stdin is not None and self.transport is not None:
            self.transport.write(self._stdin)
            self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.output.extend(data)

    def errReceived(self, data: bytes) -> None:
        self.output.extend(data)

    def processEnded(self, reason: Failure) -> None:
        self.done.callback(exit_status(reason))


def _log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except FileNotFoundError:
        return 0


def _last_error(log: Path, offset: int, fallback: bytes) -> str:
    """runc's last error in its JSON log past ``offset`` (what this command wrote),
    or its raw output."""
    message = ""
    try:
        with log.open("rb") as lines:
            lines.seek(offset)
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    message = str(entry.get("msg", ""))
    except FileNotFoundError:
        pass
    return message or fallback.decode("utf-8", "replace").strip()


@timed_commands("create", "exec", "start", "kill", "delete", "update", "pause", "resume",
                "state")
class Runc:
    """One runc binary and one state directory (``runc --root``)."""

    def __init__(self, reactor: IReactorProcess, state_root: Path,
                 binary: str = "runc",
                 pick: Callable[[str], OciRuntime] | None = None) -> None:
        self._reactor = reactor
        self._state_root = state_root
        self._binary = binary
        self._pick = pick
        self.launcher: Launcher | None = None  # spawns what outlives runc, if set

    def _runtime(self, container_id: str) -> OciRuntime:
        """The runtime of the container (``pick``), or the one binary given."""
        if self._pick is not None:
            return self._pick(container_id)
        return OciRuntime(self._binary, self._binary)

    async def _run(self, container_id: str, args: Sequence[str], log: Path,
                   child_fds: Mapping[int, int | str] | None = None,
                   stdin: bytes | None = None, after: Sequence[str] = (),
                   outlives: bool = False) -> bytes:
        runtime = self._runtime(container_id)
        argv = [runtime.path, *runtime.args, "--root", str(self._state_root), "--log",
                str(log), "--log-format", "json", *args, container_id, *after]
        _log.debug("runtime: {argv}", argv=" ".join(argv))
        fds: dict[int, int | str] = {0: "w", 1: "r", 2: "r"}
        fds.update(child_fds or {})
        offset = _log_size(log)
        if outlives and self.launcher is not None:
            code, output = await self._launched(self.launcher, runtime, argv, fds), b""
        else:
            code, output = await self._spawned(runtime, argv, fds, stdin)
        if code != 0:
            raise _failed(runtime.path, log, offset, output, code)
        return output

    async def _launched(self, launcher: Launcher, runtime: OciRuntime,
                        argv: Sequence[str], fds: Mapping[int, int | str]) -> int:
        """Run ``argv`` through the launcher (its output is the container's)."""
        given = {number: fd for number, fd in fds.items() if isinstance(fd, int)}
        try:
            return await launcher.run(argv, _environment(), given)
        except errdefs.DockerError as error:
            raise RuncError(_missing(runtime.path) or str(error)) from None

    async def _spawned(self, runtime: OciRuntime, argv: Sequence[str],
                       fds: Mapping[int, int | str], stdin: bytes | None) -> tuple[int, bytes]:
        """Run ``argv`` as a child of the daemon: its exit status and output."""
        collect = _Collect(stdin)
        try:
            self._reactor.spawnProcess(collect, _located(runtime.path), argv,
                                       env=_environment(),
                                       childFDs=dict(fds))
        except OSError as error:
            raise RuncError(_missing(runtime.path)
                            or f"{runtime.path}: {error.strerror}") from None
        return await collect.done, bytes(collect.output)

    async def create(self, container_id: str, bundle: Path, stdio: Stdio,
                     console_socket: Path | None = None, start: bool = False) -> int:
        """``runc create``, or with ``start`` ``runc run --detach`` (one runc process
        instead of two); returns the init's pid."""
        pid_file = bundle / "init.pid"
        command = ["run", "--detach"] if start else ["create"]
        args = [*command, "--bundle", str(bundle), "--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        await self._run(container_id, args, bundle / "runc.log",
                        {0: stdio.stdin, 1: stdio.stdout, 2: stdio.stderr}, outlives=True)
        return int(pid_file.read_text().strip())

    async def exec(self, container_id: str, process: bytes, stdio: Stdio, *,
                   pid_file: Path, log: Path, console_socket: Path | None = None) -> int:
        """``runc exec --detach``: start ``process`` (a ``config.json`` process object,
        JSON) in the running container; answers its pid.  runc reads the object from a
        memory file it inherits (nothing is written to disk for it).  runc exits at
        once, and the process is re-parented to the daemon (a subreaper), like a
        container's init."""
        memory = _memory_file(process)
        args = ["exec", "--detach", "--pid-file", str(pid_file),
                "--process", f"/proc/self/fd/{_PROCESS_FD}"]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        try:
            await self._run(container_id, args, log, {
                0: stdio.stdin, 1: stdio.stdout, 2: stdio.stderr, _PROCESS_FD: memory},
                outlives=True)
        finally:
            os.close(memory)
        return int(pid_file.read_text().strip())

    async def start(self, container_id: str, bundle: Path) -> None:
        await self._run(container_id, ["start"], bundle / "runc.log")

    async def kill(self, container_id: str, bundle: Path, signal: int,
                   all_processes: bool = False) -> None:
        args = ["kill", *(["--all"] if all_processes else [])]
        await self._run(container_id, args, bundle / "runc.log", after=[str(signal)])

    async def delete(self, container_id: str, bundle: Path, force: bool = False) -> None:
        args = ["delete", *(["--force"] if force else [])]
        await self._run(container_id, args, bundle / "runc.log")

    async def update(self, container_id: str, bundle: Path,
                     resources: Mapping[str, Any]) -> None:
        """``runc update --resources``: new cgroup limits for a running container."""
        await self._run(container_id, ["update", "--resources", "-"], bundle / "runc.log",
                        stdin=json.dumps(resources).encode())

    async def pause(self, container_id: str, bundle: Path) -> None:
        await self._run(container_id, ["pause"], bundle / "runc.log")

    async def resume(self, container_id: str, bundle: Path) -> None:
        await self._run(container_id, ["resume"], bundle / "runc.log")

    async def state(self, container_id: str, bundle: Path) -> dict[str, Any]:
        output = await self._run(container_id, ["state"], bundle / "runc.log")
        result: dict[str, Any] = json.loads(output)
        return result


_PROCESS_FD = 3  # where runc exec finds its process object


def _memory_file(data: bytes) -> int:
    """A memory file holding ``data``, read from the start (closed by the caller)."""
    fd = os.memfd_create("runc-process", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


_LOCATED: dict[str, str] = {}


def _located(binary: str) -> str:
    """``binary`` found on ``PATH`` once (no search per command), or as given."""
    path = _LOCATED.get(binary)
    if path is None:
        path = shutil.which(binary)
        if path is None:
            return binary  # not there (yet): looked up again next time
        _LOCATED[binary] = path
    return path


def delete_leftovers(pick: Callable[[str], OciRuntime], state_root: Path,
                     keep: Collection[str] = ()) -> set[str]:
    """Force-delete every container runc still knows under ``state_root`` but ``keep``.

    For daemon start only (it blocks; a few at once): a daemon killed with SIGKILL
    leaves its containers running, re-parented away from the new daemon, which can
    neither wait for them nor reach their output (unless the live-restore holder kept
    them: those are ``keep``).  Runtime commands the killed daemon left running are
    waited for first (see :mod:`dockertw.runtime.inflight`).  ``pick`` names each
    container's runtime.  Answers the IDs whose processes were alive.
    """
    still = await_commands(state_root)  # one may be making the directory itself
    if still:
        _log.warn("runtime commands still running on {root}: {pids}",
                  root=str(state_root), pids=still)
    if not state_root.is_dir():
        return set()
    names = [entry.name for entry in sorted(state_root.iterdir())
             if entry.is_dir() and entry.name not in keep]
    bases = [[runtime.path, *runtime.args, "--root", str(state_root)]
             for runtime in map(pick, names)]
    with ThreadPoolExecutor(_LEFTOVER_WORKERS) as pool:
        found = list(pool.map(_delete_leftover, bases, names))
    return {name for name, alive in zip(names, found, strict=True) if alive}


def _delete_leftover(base: Sequence[str], name: str) -> bool:
    """``runc delete --force`` one container; whether its process was alive (a
    runtime that is not there deletes nothing)."""
    try:
        state = subprocess.run([*base, "state", name], capture_output=True,
                               env=_environment(), check=False)
        alive = False
        with contextlib.suppress(ValueError, AttributeError):
            alive = state.returncode == 0 and json.loads(state.stdout).get("status") in (
                "created", "running", "paused")
        subprocess.run([*base, "delete", "--force", name], capture_output=True,
                       env=_environment(), check=False)
    except OSError:
        return False
    return alive


def _failed(binary: str, log: Path, offset: int, output: bytes, code: int) -> RuncError:
    """What went wrong: a missing binary, runc's own error, or its exit status."""
    return RuncError(_missing(binary) or _last_error(log, offset, output)
                     or f"{binary} exited with status {code}")


def _missing(binary: str) -> str | None:
    """Go's words for a runtime binary that is not there (after a failure)."""
    if shutil.which(binary, path=_environment()["PATH"]) is not None:
        return None
    return f'exec: "{binary}": executable file not found in $PATH'


def _environment() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}

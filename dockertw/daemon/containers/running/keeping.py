"""Who keeps the processes of containers and execs once runc has exited.

Without ``--live-restore`` the daemon does (:class:`DaemonKeeper`): the processes are
re-parented to it, a subreaper, and an :class:`~dockertw.runtime.reaper.ExitWatcher`
reaps each.  With it, the holder does (:class:`HolderKeeper`): runc runs as the
holder's child, so the processes become the holder's; the holder reaps them, tells the
daemon their exit, and keeps copies of their streams for when the daemon is away
(``docs/daemon.md``, Live restore).  Either way the daemon reads and writes the
streams itself while it runs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.running.running import ExitWatch
from dockertw.daemon.containers.running.stdio import ContainerIO
from dockertw.daemon.holder.client import Adopted, HolderClient, HolderError, HolderLink
from dockertw.daemon.logconfig import stored_log_settings
from dockertw.loglevel import Logger
from dockertw.runtime.reaper import ExitWatcher

__all__ = ["Keeper", "DaemonKeeper", "HolderKeeper", "log_target",
           "adopted_io", "container_key", "exec_key"]

_log = Logger()


class Keeper(Protocol):
    """Keeps processes once runc has started them."""

    live: bool  # whether they outlive the daemon

    async def keep(self, key: str, pid: int, stdio: ContainerIO, *, tty: bool,
                   log: Mapping[str, Any] | None) -> ExitWatch: ...
    def input_closed(self, key: str) -> None: ...
    def release(self, key: str) -> None: ...
    def leave(self) -> None: ...


def container_key(container_id: str) -> str:
    return container_id


def exec_key(exec_id: str) -> str:
    return f"exec/{exec_id}"


def log_target(container: Container, path: Path) -> dict[str, Any] | None:
    """Where the holder logs the container's output while the daemon is away."""
    settings = stored_log_settings(container.host_config.get("LogConfig"))
    if not settings.readable:
        return None
    return {"path": str(path), "max_size": settings.max_size,
            "max_files": settings.max_files}


def _held_fds(stdio: ContainerIO, tty: bool) -> dict[str, int]:
    """The daemon's ends the holder keeps copies of: a terminal's master, or pipes."""
    if tty and stdio.terminal is not None:
        return {"terminal": stdio.terminal}
    held = dict(stdio.outputs)
    if stdio.stdin is not None:
        held["stdin"] = stdio.stdin
    return held


def adopted_io(adopted: Adopted, tty: bool, open_stdin: bool) -> ContainerIO:
    """The streams of a process taken back from the holder, as a start makes them."""
    fds = adopted.fds
    master = fds.pop("terminal", None)
    if tty and master is not None:
        return ContainerIO(os.dup(master) if open_stdin else None,
                           [("stdout", os.dup(master))], terminal=master)
    outputs: list[tuple[str, int]] = [(name, fds.pop(name)) for name in ("stdout", "stderr")
                                      if name in fds]
    return ContainerIO(fds.pop("stdin", None), outputs)


class DaemonKeeper:
    """The daemon keeps the processes (they die with it): today's way."""

    live = False

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    async def keep(self, key: str, pid: int, stdio: ContainerIO, *, tty: bool,
                   log: Mapping[str, Any] | None) -> ExitWatch:
        return ExitWatcher(self._reactor, pid)

    def input_closed(self, key: str) -> None:
        pass

    def release(self, key: str) -> None:
        pass

    def leave(self) -> None:
        pass


class HolderKeeper:
    """The holder keeps the processes: they outlive the daemon.  Also runc's launcher
    (the holder spawns runc's detached commands).  Should the holder die, the next
    start has a new one started."""

    live = True

    def __init__(self, reactor: Any, client: HolderClient, directory: Path) -> None:
        self._reactor = reactor
        self._directory = directory
        self.client = client

    def _connected(self) -> HolderClient:
        if not self.client.connected:
            _log.warn("starting a new holder")
            try:
                self.client = HolderClient(self._reactor, HolderLink.open(self._directory))
            except OSError as error:
                raise HolderError(f"cannot start the holder: {error}") from None
        return self.client

    def run(self, argv: Sequence[str], env: Mapping[str, str],
            fds: Mapping[int, int]) -> Deferred[int]:
        return Deferred.fromCoroutine(self._connected().run(argv, env, fds))

    async def keep(self, key: str, pid: int, stdio: ContainerIO, *, tty: bool,
                   log: Mapping[str, Any] | None) -> ExitWatch:
        return await self._connected().watch(key, pid, _held_fds(stdio, tty), tty=tty,
                                             log=log)

    def input_closed(self, key: str) -> None:
        self.client.close_fd(key, "stdin")

    def release(self, key: str) -> None:
        self.client.release(key)

    def leave(self) -> None:
        with contextlib.suppress(OSError):
            self.client.close()

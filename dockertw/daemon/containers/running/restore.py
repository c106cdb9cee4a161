"""What a starting daemon finds of its previous life, and the containers it takes back.

Blocking, before the reactor runs (``docs/daemon.md``, Live restore).  With
``--live-restore`` the holder of the state root (started if there is none) tells which
processes are alive and which ended while the daemon was away, with their exit codes;
the containers the records say are running and that are alive are taken back, their
descriptors copied from the holder.  Without the option, a holder left by an earlier
daemon that had it is stopped: its containers are killed, their exit codes kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running.keeping import (
    HolderKeeper,
    adopted_io,
    container_key,
    exec_key,
)
from dockertw.daemon.containers.running.lifecycle import Lifecycle
from dockertw.daemon.holder.client import Adopted, HolderClient, HolderError, HolderLink
from dockertw.loglevel import Logger

__all__ = ["Previous"]

_log = Logger()


class Previous:
    """The processes an earlier daemon left: taken back, ended, or to be dropped."""

    def __init__(self, link: HolderLink | None) -> None:
        self.link = link
        self.adopted: dict[str, tuple[int, Adopted]] = {}  # id -> (pid, descriptors)
        self.exits: dict[str, tuple[int, int]] = {}  # id -> (exit code, finished_ns)
        self._ended: list[str] = []  # keys to release once the exits are recorded

    @classmethod
    def find(cls, store: ContainerStore, holder_dir: Path, live: bool) -> Previous:
        """Greet (or start) the holder, or stop an earlier one without ``live``."""
        if not live:
            return cls._stopped(HolderLink.find(holder_dir))
        previous = cls(HolderLink.open(holder_dir))
        previous._take_back(store)
        return previous

    @classmethod
    def _stopped(cls, link: HolderLink | None) -> Previous:
        previous = cls(None)
        if link is None:
            return previous
        _log.info("a holder was left by a daemon with --live-restore: its containers "
                  "are killed")
        try:
            for entry in link.stop():
                previous.exits[str(entry["key"])] = (int(entry["code"]),
                                                     int(entry["finished_ns"]))
        except (OSError, HolderError) as error:  # runc deletes what it still runs
            _log.warn("the holder did not stop: {error}", error=str(error))
        link.connection.close()
        return previous

    def _take_back(self, store: ContainerStore) -> None:
        assert self.link is not None
        running = {c.id: c for c in store.all() if c.running and not c.state.restarting}
        for entry in self.link.held:
            key, alive = str(entry["key"]), bool(entry["alive"])
            if alive and key in running:
                self._adopt(key, int(entry["pid"]))
            elif alive and key.startswith(exec_key("")):
                self.link.send({"op": "drop", "key": key})  # left to finish
            elif alive:  # a start the earlier daemon did not get to record
                self.link.send({"op": "kill", "key": key, "signal": 9})
                self._ended.append(key)
            else:
                self.exits[key] = (int(entry["code"]), int(entry["finished_ns"]))
                self._ended.append(key)

    def _adopt(self, key: str, pid: int) -> None:
        assert self.link is not None
        try:
            self.adopted[key] = (pid, self.link.adopt(key))
        except HolderError as error:
            _log.warn("cannot take back {id}: {error}", id=key, error=str(error))
            self.link.send({"op": "kill", "key": key, "signal": 9})
            self._ended.append(key)

    def exit_of(self, container_id: str) -> tuple[int, int] | None:
        """The exit code and time of a container that ended while no daemon ran."""
        return self.exits.get(container_key(container_id))

    def release_ended(self) -> None:
        """The exits are recorded: the holder may forget those processes."""
        if self.link is not None:
            for key in self._ended:
                self.link.send({"op": "release", "key": key})
        self._ended.clear()

    def keeper(self, reactor: Any, holder_dir: Path) -> HolderKeeper:
        assert self.link is not None
        return HolderKeeper(reactor, HolderClient(reactor, self.link), holder_dir)

    def adopt_into(self, runs: Lifecycle, store: ContainerStore, client: HolderClient
                   ) -> None:
        """Give the taken-back containers to the lifecycle, as running."""
        for container_id, (pid, adopted) in self.adopted.items():
            container = store.get(container_id)
            watch = client.held(container_key(container_id), pid, adopted.pidfd)
            adopted.pidfd = None
            stdio = adopted_io(adopted, bool(container.config.get("Tty")),
                               bool(container.config.get("OpenStdin")))
            runs.adopt(container, watch, stdio)
            _log.info("took back running container {id}", id=container_id)

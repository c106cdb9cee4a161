"""Container records under ``ROOT/containers/<id>/``, with the name and ID-prefix indexes.

Each record is two files written crash-safely: ``hostconfig.json`` first, then
``config.v2.json``, which commits the container (a directory without it is the
remains of an interrupted create and is removed at load).  Removal unlinks
``config.v2.json`` first.  Writes may block (they write files): call them from a worker
thread.  Reads never wait for a write: they take no lock, each looking at the records
through one operation on a dictionary (atomic in CPython), so the reactor may call them.
"""

from __future__ import annotations

import json
import shutil
import threading
from operator import attrgetter
from pathlib import Path
from typing import Any

import attrs

from dockertw.daemon.containers.records.health import Health
from dockertw.daemon.containers.records.names import conflict_message
from dockertw.daemon.containers.records.record import Container, State
from dockertw.daemon.storage import (
    atomic_write,
    ensure_directory,
    fsync_directory,
    remove_temporaries,
)
from dockertw.errdefs import Conflict, InvalidParameter, NotFound, System, from_os_error
from dockertw.loglevel import Logger

__all__ = ["ContainerStore"]

_log = Logger()
_CONFIG = "config.v2.json"
_CREATED = attrgetter("created_ns")
_HOST_CONFIG = "hostconfig.json"


def _unreadable(file: Path, error: Exception) -> None:
    _log.error("container record {file} cannot be read, the container is skipped (its "
               "directory is kept): {error}", file=str(file), error=str(error))


class ContainerStore:
    """Records by ID, names to IDs; resolution as moby's ``GetContainer``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}

    @classmethod
    def open(cls, state_root: Path) -> ContainerStore:
        """Open (creating if needed) ``state_root/containers`` and load every record."""
        store = cls(ensure_directory(state_root / "containers", mode=0o710))
        store._load()
        return store

    def _load(self) -> None:
        for directory in sorted(self.root.iterdir()):
            if not directory.is_dir():
                continue
            container = self._read(directory)
            if container is not None:
                self._containers[container.id] = container
                self._names[container.name] = container.id

    def _read(self, directory: Path) -> Container | None:
        """The record in ``directory``; the remains of an interrupted create are
        removed, a record that cannot be read is skipped (its directory kept) with
        an error naming the file."""
        remove_temporaries(directory)
        if not (directory / _CONFIG).exists():
            shutil.rmtree(directory, ignore_errors=True)  # an interrupted create
            return None
        raw: dict[str, bytes] = {}
        for name in (_CONFIG, _HOST_CONFIG):
            file = directory / name
            try:
                raw[name] = file.read_bytes()
                json.loads(raw[name])
            except (OSError, ValueError) as error:
                _unreadable(file, error)
                return None
        try:
            return Container.from_json(raw[_CONFIG], raw[_HOST_CONFIG])
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            _unreadable(directory / _CONFIG, error)
            return None

    # -- reads -------------------------------------------------------------------------

    def all(self) -> list[Container]:
        """Every container, newest first."""
        found = list(self._containers.values())
        return sorted(found, key=_CREATED, reverse=True)

    def count(self) -> int:
        return len(self._containers)

    def get(self, reference: str) -> Container:
        """By full ID, name (with or without ``/``) or unique ID prefix."""
        if not reference:
            raise InvalidParameter("No container name or ID supplied")
        found = self._containers.get(reference)
        if found is None:
            found = self._by_name(reference) or self._by_prefix(reference)
        if found is None:
            raise NotFound(f"No such container: {reference}")
        return found

    def _by_name(self, name: str) -> Container | None:
        found = self._names.get(name if name.startswith("/") else "/" + name)
        return self._containers.get(found) if found else None

    def _by_prefix(self, prefix: str) -> Container | None:
        matches = [cid for cid in list(self._containers) if cid.startswith(prefix)]
        if len(matches) > 1:
            raise System(f"Multiple IDs found with provided prefix: {prefix}")
        return self._containers.get(matches[0]) if matches else None

    def name_owner(self, name: str) -> str | None:
        return self._names.get(name)

    def users_of(self, image_id: str) -> list[Container]:
        return [c for c in list(self._containers.values()) if c.image_id == image_id]

    # -- writes ------------------------------------------------------------------------

    def _check_name_free(self, name: str, container_id: str) -> None:
        owner = self._names.get(name)
        if owner is not None and owner != container_id:
            raise Conflict(conflict_message(name, owner))

    def add(self, container: Container) -> None:
        """Persist a new record; 409 when its name is taken."""
        with self._lock:
            self._check_name_free(container.name, container.id)
            self._names[container.name] = container.id
            try:
                self._write(container, host_config=True)
            except BaseException:
                del self._names[container.name]
                shutil.rmtree(self.root / container.id, ignore_errors=True)
                raise
            self._containers[container.id] = container

    def _write(self, container: Container, host_config: bool) -> None:
        directory = ensure_directory(self.root / container.id, mode=0o710)
        if host_config:
            atomic_write(directory / _HOST_CONFIG, container.host_config_json())
        atomic_write(directory / _CONFIG, container.config_json())

    def save_state(self, container_id: str, state: State, **fields: Any) -> Container:
        """Record ``state`` and other changed ``fields`` of the record (network
        settings), in memory and on disk (crash-safely); answers the updated record.
        A disk that cannot take it (full) keeps the file as it was, with an error
        logged: the state in memory is the truth, the next save writes it (as moby
        checkpoints a container)."""
        with self._lock:
            new = attrs.evolve(self._containers[container_id], state=state, **fields)
            self._containers[container_id] = new
            try:
                self._write(new, host_config=False)
            except OSError as error:
                _log.error("the state of {id} is not saved: {error}", id=container_id,
                           error=str(from_os_error(error)))
            return new

    def keep_health(self, container_id: str, health: Health) -> Container | None:
        """Change the record's ``State.Health`` in memory only: it is written with the
        next state saved (as moby commits probe results); ``None`` once removed."""
        with self._lock:
            current = self._containers.get(container_id)
            if current is None:
                return None
            new = attrs.evolve(current, state=attrs.evolve(current.state, health=health))
            self._containers[container_id] = new
            return new
    def save_network(self, container_id: str, settings: dict[str, Any]) -> Container:
        """Record changed ``NetworkSettings`` (connect, disconnect)."""
        with self._lock:
            current = self._containers[container_id]
            return self.save_state(container_id, current.state, network_settings=settings)

    def save_host_config(self, container_id: str, host_config: dict[str, Any]
                         ) -> Container:
        """Record a changed HostConfig (crash-safely); answers the updated record."""
        with self._lock:
            new = attrs.evolve(self._containers[container_id], host_config=host_config)
            self._write(new, host_config=True)
            self._containers[container_id] = new
            return new

    def rename(self, container_id: str, new_name: str) -> Container:
        """Give the container ``new_name`` (with ``/``); answers the old record."""
        with self._lock:
            old = self._containers[container_id]
            self._check_name_free(new_name, container_id)
            new = attrs.evolve(old, name=new_name)
            self._write(new, host_config=False)
            del self._names[old.name]
            self._names[new_name] = container_id
            self._containers[container_id] = new
            return old

    def remove(self, container_id: str) -> Container:
        """Forget the record and delete its directory; answers the removed record."""
        with self._lock:
            container = self._containers[container_id]
            directory = self.root / container_id
            (directory / _CONFIG).unlink(missing_ok=True)
            fsync_directory(directory)
            del self._containers[container_id]
            self._names.pop(container.name, None)
        shutil.rmtree(directory, ignore_errors=True)
        return container


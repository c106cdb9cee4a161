"""The volume service: the volume routes, and the volumes containers mount.

API writes run in one worker thread, reads in another; the container service calls
:meth:`VolumeService.acquire` and :meth:`VolumeService.remove_anonymous` from its own
writer thread (the store locks).  Which containers use a volume is answered by the
container service through :attr:`VolumeService.volume_users`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from dockertw.daemon.events import Event, EventBus
from dockertw.daemon.jsonfields import json_string_map
from dockertw.daemon.mountpoint import MountPoint
from dockertw.daemon.volumes.store import LOCAL_OPTIONS, Volume, VolumeStore, check_volume_name
from dockertw.daemon.workers import OneAtATime, PoolRunner, Runner, WorkerReactor
from dockertw.errdefs import Conflict, InvalidParameter, NotFound
from dockertw.filters import Filters

__all__ = ["VolumeService", "LIST_FILTERS", "PRUNE_FILTERS"]

LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")


def _no_users(name: str) -> list[str]:
    return []


def _check_driver(name: str, driver: str) -> None:
    if driver not in ("", "local"):
        raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin '
                       f'"{driver}" not found')


def _check_options(options: Mapping[str, str]) -> None:
    """The local driver's options: ``type``, ``device`` and ``o`` (``mount -t type
    -o o device``); ``size`` needs quotas dockertw has not."""
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise InvalidParameter(f'invalid option key: "{key}"')
    if "size" in options:
        raise InvalidParameter("quota size requested but no quota support")
    for key in ("type", "device"):
        if options and not options.get(key):
            raise InvalidParameter(f'missing required option: "{key}"')




def _bool_filter(filters: Filters, key: str) -> bool | None:
    values = filters.get(key)
    if not values:
        return None
    value = sorted(values)[0].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidParameter(f"invalid filter '{key}={value}'")
    return value in ("true", "1")




class VolumeService:
    """Local volumes for the API and for containers."""

    def __init__(self, store: VolumeStore, *, call_from_thread: Callable[..., Any],
                 events: EventBus, writer: Runner, reader: Runner) -> None:
        self.store = store
        self._call = call_from_thread
        self._events = events
        self._writer = writer
        self._reader = reader
        self._prune_guard = OneAtATime("a prune operation is already running")
        self.volume_users: Callable[[str], list[str]] = _no_users

    @classmethod
    def open(cls, state_root: Path, events: EventBus, reactor: WorkerReactor
             ) -> VolumeService:
        """Load the volumes under ``state_root/volumes`` (blocking: call it at start)."""
        store = VolumeStore(state_root / "volumes")
        reactor.addSystemEventTrigger("after", "shutdown", store.close)
        return cls(store, call_from_thread=reactor.callFromThread, events=events,
                   writer=PoolRunner(reactor, 1, "dockertw-volume-writer"),
                   reader=PoolRunner(reactor, 1, "dockertw-volume-reader"))

    def emit(self, action: str, name: str, **attributes: str) -> None:
        """Publish a volume event from the reactor thread (callable from any thread)."""
        event = Event(type="volume", action=action, actor_id=name,
                      attributes={"driver": "local", **attributes})
        self._call(self._events.publish, event)

    # -- the routes --------------------------------------------------------------------

    def create(self, body: Any) -> Deferred[dict[str, Any]]:
        """``POST /volumes/create``: the new (or existing) volume."""
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be a JSON object")
        name = body.get("Name") or ""
        if not isinstance(name, str):
            raise InvalidParameter("invalid JSON: Name must be a string")
        _check_driver(name, str(body.get("Driver") or ""))
        labels = json_string_map(body.get("Labels"), "Labels")
        options = json_string_map(body.get("DriverOpts"), "DriverOpts")
        _check_options(options)
        return self._writer(lambda: self._create(name, labels, options, not name).view())

    def _create(self, name: str, labels: dict[str, str], options: dict[str, str],
                anonymous: bool = False) -> Volume:
        volume, created = self.store.create(name, labels, options, anonymous)
        if created:
            self.emit("create", volume.name)
        return volume

    def inspect(self, name: str) -> Deferred[dict[str, Any]]:
        """``GET /volumes/{name}``."""
        return self._reader(lambda: self.store.get(name).view())

    def list_volumes(self, filters: Filters) -> Deferred[dict[str, Any]]:
        """``GET /volumes``: ``{"Volumes": [...], "Warnings": None}``."""
        dangling = _bool_filter(filters, "dangling")

        def chosen() -> dict[str, Any]:
            found = [v.view() for v in self.store.all()
                     if filters.regex_match("name", v.name)
                     and filters.exact_match("driver", "local")
                     and filters.match_labels("label", v.labels)
                     and (dangling is None or dangling == (not self.volume_users(v.name)))]
            return {"Volumes": found, "Warnings": None}

        return self._reader(chosen)

    def remove(self, name: str, force: bool = False) -> Deferred[None]:
        """``DELETE /volumes/{name}``: 409 when in use; ``force`` ignores a missing one."""
        def remove() -> None:
            try:
                self._remove(name)
            except NotFound:
                if not force:
                    raise
        return self._writer(remove)

    def _remove(self, name: str) -> None:
        if self.store.find(name) is None:
            raise NotFound(f"get {name}: no such volume")
        users = self.volume_users(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        self.store.remove(name)
        self.emit("destroy", name)

    def prune(self, filters: Filters, anonymous_only: bool) -> Deferred[dict[str, Any]]:
        """``POST /volumes/prune``: unused volumes (API >= 1.42: only anonymous ones
        unless ``all``) passing the label filters."""
        every = _bool_filter(filters, "all")
        only_anonymous = anonymous_only and not every
        return self._prune_guard.run(
            lambda: self._writer(lambda: self._prune(filters, only_anonymous)))

    def _prune(self, filters: Filters, only_anonymous: bool) -> dict[str, Any]:
        deleted, reclaimed = [], 0
        for volume in self.store.all():
            if (only_anonymous and not volume.anonymous) or self.volume_users(volume.name) \
                    or not filters.match_labels("label", volume.labels) \
                    or filters.excludes_labels("label!", volume.labels):
                continue
            size = self.store.size(volume.name)
            try:
                self._remove(volume.name)
            except (Conflict, NotFound):
                continue
            deleted.append(volume.name)
            reclaimed += size
        self._call(self._events.emit, "volume", "prune", "", reclaimed=str(reclaimed))
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def disk_usage(self) -> Deferred[list[dict[str, Any]]]:
        """The volumes of ``/system/df`` with their ``UsageData``."""
        def usage() -> list[dict[str, Any]]:
            return [v.view({"Size": self.store.size(v.name),
                            "RefCount": len(self.volume_users(v.name))})
                    for v in self.store.all()]
        return self._reader(usage)

    # -- for containers (blocking; any thread) -----------------------------------------

    def acquire(self, point: MountPoint) -> MountPoint:
        """A volume mount point with its volume found or created (anonymous ones get a
        random name); its source is the volume's ``_data``."""
        _check_driver(point.name, point.driver)
        if point.name and self.store.find(point.name) is None:
            check_volume_name(point.name)
        _check_options(point.options)
        volume = self._create(point.name, point.labels, point.options,
                              anonymous=not point.name)
        return attrs.evolve(point, name=volume.name, source=volume.mountpoint,
                            driver="local")

    def remove_anonymous(self, names: list[str]) -> None:
        """Remove the anonymous volumes ``names`` that no container uses any more."""
        for name in names:
            volume = self.store.find(name)
            if volume is None or not volume.anonymous or self.volume_users(name):
                continue
            self.store.remove(name)
            self.emit("destroy", name)

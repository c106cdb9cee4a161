"""Containers' inspect documents and list items, built once per change of what they show.

A document (``GET /containers/{id}/json``) or a list item (``GET /containers/json``) is
answered again, the same object, for as long as nothing it shows can have changed:

* the record is the same object (the store makes a new one on every change of it:
  state, health, name, HostConfig...);
* no event has named the container since (an exec, a network connect, a volume mount,
  a restart...: an event whose actor it is, or whose ``container`` attribute names it),
  and no event that names no container at all has been published (a daemon reload);
* what the caller computes for the moment (the execs running, the image name shown,
  the status text) is the same.

So an engine part that changes what a container shows stays correct as long as it
changes the record or publishes an event about the container, as every part does.
The answers are shared: callers must not change them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.events import Event

__all__ = ["ShownCache"]

Shown = dict[str, Any]
_Kept = dict[str, tuple[Container, tuple[Hashable, ...], Shown]]


class ShownCache:
    """Documents and list items by container ID, with the stamps they were made at."""

    def __init__(self) -> None:
        self._changes: dict[str, int] = {}  # events that named each container
        self._unnamed = 0  # events that named no container
        self._documents: _Kept = {}
        self._items: _Kept = {}

    def watch(self, event: Event) -> None:
        """Count ``event`` against the container it names (an event bus watcher)."""
        named = event.actor_id if event.type == "container" else \
            event.attributes.get("container", "")
        if not named:
            self._unnamed += 1
        elif event.type == "container" and event.action == "destroy":
            self.forget(named)
        else:
            self._changes[named] = self._changes.get(named, 0) + 1

    def forget(self, container_id: str) -> None:
        for kept in (self._changes, self._documents, self._items):
            kept.pop(container_id, None)

    def document(self, container: Container, moment: tuple[Hashable, ...],
                 build: Callable[[], Shown]) -> Shown:
        """The inspect document made by ``build`` for ``container`` at ``moment``."""
        return self._kept(self._documents, container, moment, build)

    def item(self, container: Container, moment: tuple[Hashable, ...],
             build: Callable[[], Shown]) -> Shown:
        """The list item made by ``build`` for ``container`` at ``moment``."""
        return self._kept(self._items, container, moment, build)

    def _kept(self, kept: _Kept, container: Container, moment: tuple[Hashable, ...],
              build: Callable[[], Shown]) -> Shown:
        stamp = (self._changes.get(container.id, 0), self._unnamed, *moment)
        found = kept.get(container.id)
        if found is not None and found[0] is container and found[1] == stamp:
            return found[2]
        shown = build()
        kept[container.id] = (container, stamp, shown)
        return shown

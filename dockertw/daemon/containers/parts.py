"""What the container service shares with its helpers (copies, snapshots, monitor)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running.lifecycle import Emit, Lifecycle
from dockertw.daemon.images.store import ImageStore
from dockertw.daemon.workers import Runner

__all__ = ["ServiceParts"]


@attrs.frozen
class ServiceParts:
    """The records, images and runs of containers, the event hook and the threads."""

    store: ContainerStore
    images: ImageStore
    runs: Lifecycle
    emit: Emit
    call: Callable[..., Any]  # the reactor's callFromThread
    reader: Runner  # record reads
    exporter: Runner  # streams that read or write a root filesystem (export, cp)

    def upper(self, container: Container) -> Path:
        """The container's writable layer (its upper directory)."""
        return self.store.root / container.id / "upper"

    @contextmanager
    def held_lowers(self, container: Container) -> Iterator[list[Path]]:
        """The container's image layers, kept on disk meanwhile (blocking)."""
        with self.images.holding(self.images.image_chain(container.image_id)):
            yield self.images.image_layers(container.image_id)

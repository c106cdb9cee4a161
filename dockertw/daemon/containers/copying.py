"""``docker cp``: stat, archive and extract paths of a container's root filesystem.

Reads go through a private read-only overlay, writes into a stopped container through
a private writable one (the container kept from starting meanwhile), writes into a
running one through its own root mount (see :mod:`~.copyroot`).  Paths inside the
container's volumes and bind-mounted directories are the mounts' own, as in Docker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs
from twisted.internet.defer import Deferred, ensureDeferred

from dockertw.daemon.containers.files import archive as archives
from dockertw.daemon.containers.files import copyroot
from dockertw.daemon.containers.files.inroot import RootView
from dockertw.daemon.containers.parts import ServiceParts
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.running import bundle as bundles
from dockertw.daemon.pump import Begin, Pump, cancelling
from dockertw.errdefs import Forbidden

__all__ = ["ContainerCopies", "CopyOptions", "StartArchive", "WriteWork", "release_leftovers"]

_T = TypeVar("_T")

#: Called in a worker thread with the path's stat; answers how the tar starts.
StartArchive = Callable[[dict[str, Any]], Begin]
#: Called in a worker thread with the container, where its root is mounted and the
#: view of it to write through.
WriteWork = Callable[[Container, Path, RootView], _T]


@attrs.frozen
class CopyOptions:
    """``PUT /containers/{name}/archive``'s query."""

    path: str
    no_overwrite_dir_non_dir: bool = False
    copy_uid_gid: bool = False


def _scratch(containers_root: Path) -> Path:
    """Where ``docker cp`` mounts its private overlays."""
    return containers_root.parent / "tmp" / "cp"


def release_leftovers(containers_root: Path) -> None:
    """Release what copies a killed daemon left mounted (blocking, at start)."""
    copyroot.release_scratch(_scratch(containers_root))


class ContainerCopies:
    """``HEAD``, ``GET`` and ``PUT /containers/{name}/archive``."""

    def __init__(self, parts: ServiceParts) -> None:
        self._parts = parts
        self._store = parts.store

    def stat_path(self, name: str, path: str) -> Deferred[dict[str, Any]]:
        """``HEAD /containers/{name}/archive``: the path's ``ContainerPathStat``."""
        def stat_path() -> dict[str, Any]:
            container = self._store.get(name)
            with self._readonly_view(container) as view, archives.as_docker_errors():
                found, resolved = archives.path_stat(view, path, name)
                os.close(resolved.parent)
                return found

        return self._parts.reader(stat_path)

    def archive(self, name: str, path: str, start: StartArchive,
                encoding: str = "") -> Deferred[None]:
        """``GET /containers/{name}/archive``: the path as a tar (``encoding``:
        ``gzip``, ``deflate`` or none), streamed through a :class:`Pump` once it is
        found; cancelling stops it."""
        pump = Pump(self._parts.call)
        return cancelling(self._parts.exporter(
            lambda: self._archive(name, path, start, pump, encoding)), pump)

    def _archive(self, name: str, path: str, start: StartArchive, pump: Pump,
                 encoding: str) -> None:
        with archives.as_docker_errors():
            self._archive_in(name, path, start, pump, encoding)

    def _archive_in(self, name: str, path: str, start: StartArchive, pump: Pump,
                    encoding: str) -> None:
        container = self._store.get(name)
        with self._readonly_view(container) as view:
            found, resolved = archives.path_stat(view, path, name)
            try:
                pump.begin(start(found))
                self._parts.emit(container, "archive-path")
                encoder = archives.Encoder(pump.push, encoding)
                archives.write_archive(resolved, archives.archive_name(found["name"]),
                                       encoder.push, view.mounts)
                encoder.close()
            finally:
                os.close(resolved.parent)

    def extract(self, name: str, options: CopyOptions, body: IO[bytes]) -> Deferred[None]:
        """``PUT /containers/{name}/archive``: unpack ``body`` into a directory."""
        return ensureDeferred(self._extract(name, options, body))

    async def _extract(self, name: str, options: CopyOptions, body: IO[bytes]) -> None:
        def extract(container: Container, root_path: Path, view: RootView) -> None:
            with archives.as_docker_errors():
                self._extract_into(container, name, root_path, view, options, body)
            self._parts.emit(container, "extract-to-dir")

        await self.write_into(name, extract)

    def write_into(self, name: str, work: WriteWork[_T]) -> Deferred[_T]:
        """Run ``work`` in a worker thread on the container's root filesystem, writable
        (its volumes and bind mounts included); a stopped container is kept from
        starting meanwhile.  ``docker cp`` into a container and a build's ``COPY``."""
        return ensureDeferred(self._write_into(name, work))

    async def _write_into(self, name: str, work: WriteWork[_T]) -> _T:
        container = await self._parts.reader(lambda: self._store.get(name))
        release = self._parts.runs.hold_stopped(container.id)
        try:
            return await self._parts.exporter(
                lambda: self._in_writable_root(container, work, running=release is None))
        finally:
            if release is not None:
                release()

    def _in_writable_root(self, container: Container, work: WriteWork[_T],
                          running: bool) -> _T:
        with self._writable_root(container, running) as root, \
                copyroot.with_mounts(root, container.points()) as view:
            return work(container, root.path, view)

    def _extract_into(self, container: Container, name: str, root_path: Path,
                      view: RootView, options: CopyOptions, body: IO[bytes]) -> None:
        dest = archives.destination(view, options.path, name)
        if container.host_config.get("ReadonlyRootfs") and not view.in_mount(dest):
            raise Forbidden("container rootfs is marked read-only")
        owner = None
        user = str(container.config.get("User") or "")
        if options.copy_uid_gid and user:
            found = bundles.resolve_user(root_path, user)
            owner = (found.uid, found.gid)
        archives.extract(view, dest, body, archives.ExtractOptions(
            no_overwrite_dir_non_dir=options.no_overwrite_dir_non_dir, owner=owner))

    @contextmanager
    def _readonly_view(self, container: Container) -> Iterator[RootView]:
        """The merged root of ``container`` for reading (its layers held meanwhile),
        with its volumes and bind mounts."""
        with self._parts.held_lowers(container) as lowers, copyroot.readonly_root(
                self._parts.upper(container), lowers, _scratch(self._store.root)
        ) as root, copyroot.with_mounts(root, container.points()) as view:
            yield view

    @contextmanager
    def _writable_root(self, container: Container, running: bool
                       ) -> Iterator[copyroot.MergedRoot]:
        """The root to unpack into: a running container's own mount, or an overlay
        writing into a stopped one's upper directory (its layers held meanwhile)."""
        if running:
            with copyroot.running_root(
                    bundles.rootfs_of(self._store.root / container.id)) as root:
                yield root
            return
        with self._parts.held_lowers(container) as lowers, copyroot.writable_root(
                self._parts.upper(container), lowers, _scratch(self._store.root)) as root:
            yield root

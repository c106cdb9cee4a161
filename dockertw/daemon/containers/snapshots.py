"""What a container's root filesystem became: ``docker diff``, ``export`` and
``commit``."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

import attrs
from twisted.internet.defer import Deferred, ensureDeferred

from dockertw.daemon.containers.files import archive, copyroot, diff
from dockertw.daemon.containers.files.uppertar import write_upper_tar
from dockertw.daemon.containers.parts import ServiceParts
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.images.changes import apply_changes
from dockertw.daemon.images.views import CommitConfig
from dockertw.daemon.pump import Begin, Pump, cancelling
from dockertw.errdefs import NotFound, System

__all__ = ["ContainerSnapshots", "CommitOptions", "CommitImage", "release_leftovers"]


@attrs.frozen
class CommitOptions:
    """The query and body of ``POST /commit``."""

    container: str
    repository: str = ""
    tag: str = ""
    author: str = ""
    comment: str = ""
    pause: bool = True
    changes: tuple[str, ...] = ()
    config: dict[str, Any] = attrs.field(factory=dict)


#: The image service's ``commit`` (parent ID, layer tar or None, what to record,
#: repository, tag) -> the new image's ID; the engine wires it.
CommitImage = Callable[[str, IO[bytes] | None, CommitConfig, str, str], Deferred[str]]


def _no_commit(*_: Any) -> Deferred[str]:
    raise System("this engine cannot commit containers")


def _image_ref(repository: str, tag: str) -> str:
    if not repository:
        return ""
    return f"{repository}:{tag or 'latest'}"


def _scratch(containers_root: Path) -> Path:
    """Where exports mount their private overlays (outside any container's directory)."""
    return containers_root.parent / "tmp" / "export"


def release_leftovers(containers_root: Path) -> None:
    """Release what exports a killed daemon left mounted (blocking, at start)."""
    copyroot.release_scratch(_scratch(containers_root))


class ContainerSnapshots:
    """``GET /containers/{name}/changes``, ``GET /containers/{name}/export`` and
    ``POST /commit``."""

    def __init__(self, parts: ServiceParts) -> None:
        self._parts = parts
        self._store = parts.store
        self.commit_image: CommitImage = _no_commit

    def changes(self, name: str) -> Deferred[list[dict[str, Any]] | None]:
        """``GET /containers/{name}/changes`` (``docker diff``); ``None`` when none."""
        def read() -> list[dict[str, Any]] | None:
            container = self._store.get(name)
            lowers = self._parts.images.image_layers(container.image_id)
            return diff.changes(self._parts.upper(container), lowers) or None

        return self._parts.reader(read)

    def export(self, name: str, begin: Begin) -> Deferred[None]:
        """``GET /containers/{name}/export``: the root filesystem as a tar, streamed
        through a :class:`Pump` once the container is found; cancelling stops it."""
        pump = Pump(self._parts.call)
        return cancelling(self._parts.exporter(lambda: self._export(name, begin, pump)),
                          pump)

    def _export(self, name: str, begin: Begin, pump: Pump) -> None:
        container = self._store.get(name)
        with self._parts.held_lowers(container) as lowers:
            pump.begin(begin)
            self._parts.emit(container, "export")
            with copyroot.readonly_root(self._parts.upper(container), lowers,
                                        _scratch(self._store.root)) as root:
                archive.write_tree(root.fd, pump.push)

    def commit(self, options: CommitOptions) -> Deferred[str]:
        """``POST /commit``: an image of the container's changes; answers its ID."""
        if not options.container:
            raise NotFound("No such container: ")
        config = apply_changes(dict(options.config), options.changes)  # 400 at once
        return ensureDeferred(self._commit(options, config))

    async def _commit(self, options: CommitOptions, config: dict[str, Any]) -> str:
        container = await self._parts.reader(lambda: self._store.get(options.container))
        layer = await self._changes_tar(container, options.pause)
        merged = {**container.config, **{k: v for k, v in config.items() if v}}
        record = CommitConfig(merged, container.config, container.id, options.author,
                              options.comment)
        try:
            image_id = await self.commit_image(container.image_id, layer, record,
                                               options.repository, options.tag)
        finally:
            if layer is not None:
                layer.close()
        self._parts.emit(container, "commit", comment=options.comment, imageID=image_id,
                         imageRef=_image_ref(options.repository, options.tag))
        return image_id

    def commit_build_step(self, container_id: str, config: dict[str, Any],
                          container_config: dict[str, Any], author: str = "") -> Deferred[str]:
        """A build step's image: the stopped container's changes on its image, with the
        build's ``config`` and the step's ``container_config`` (whose ``Cmd`` becomes
        the history's ``created_by``), as moby's ``CommitBuildStep``: no event."""
        return ensureDeferred(self._commit_step(container_id, config, container_config,
                                                author))

    async def _commit_step(self, container_id: str, config: dict[str, Any],
                           container_config: dict[str, Any], author: str) -> str:
        container = await self._parts.reader(lambda: self._store.get(container_id))
        layer = await self._changes_tar(container, pause=False)
        record = CommitConfig(config, container_config, container.id, author)
        try:
            return await self.commit_image(container.image_id, layer, record, "", "")
        finally:
            if layer is not None:  # freeing a large file's blocks takes a while
                await self._parts.reader(layer.close)

    async def _changes_tar(self, container: Container, pause: bool) -> IO[bytes] | None:
        """The container's changes as a layer tar, read while it is paused if ``pause``
        (and it runs unpaused)."""
        runs = self._parts.runs
        paused = pause and await runs.pause_for_commit(container.id)
        try:
            return await self._parts.reader(lambda: self._upper_tar(container))
        finally:
            if paused:
                await runs.unpause_after_commit(container.id)

    def _upper_tar(self, container: Container) -> IO[bytes] | None:
        """The container's changes as a layer tar in an anonymous file (``None``: none)."""
        file = tempfile.TemporaryFile(dir=self._store.root)  # noqa: SIM115 - returned
        try:
            if not write_upper_tar(self._parts.upper(container), file):
                file.close()
                return None
            file.seek(0)
            return cast(IO[bytes], file)
        except BaseException:
            file.close()
            raise

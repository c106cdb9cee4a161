"""The image service: what the image router calls, in Docker's shapes.

The store does blocking file I/O, so every operation runs in a thread and answers a
Deferred: writes (import, tag, delete, prune) in a single worker, one after another;
reads (list, inspect, history) in a small pool of their own.  Image events are built
in the worker and published on the event bus from the reactor thread.  ``/info`` and
``/system/df`` read figures the writer refreshes after every change, so they never
touch the store from the reactor thread.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs
from twisted.internet.defer import Deferred

from dockertw import __version__, errdefs
from dockertw.daemon.events import Event, EventBus
from dockertw.daemon.images import views
from dockertw.daemon.images.changes import apply_changes
from dockertw.daemon.images.loading import Importer, LoadOutput, read_items, unpack_archive
from dockertw.daemon.images.platforms import Platform, of_config, only_one
from dockertw.daemon.images.reference import (
    Reference,
    image_id_hex,
    parse_any,
    parse_normalized,
)
from dockertw.daemon.images.saving import SavedImage, archive_chunks
from dockertw.daemon.images.store import Image, ImageStore, decode_config
from dockertw.daemon.pump import Begin, Pump, cancelling
from dockertw.daemon.workers import OneAtATime, PoolRunner, Runner, WorkerReactor
from dockertw.errdefs import DockerError, InvalidParameter, NotFound, System
from dockertw.filters import Filters

__all__ = ["ImageService", "ImportOptions"]

_T = TypeVar("_T")
_KNOWN_ARCHITECTURES = frozenset({"amd64", "arm64", "arm", "386", "ppc64le", "s390x",
                                  "riscv64"})


class _EventRelay:
    """Builds image events where they happen; publishes them from the reactor thread."""

    def __init__(self, bus: EventBus, call_from_thread: Callable[..., Any]) -> None:
        self._bus = bus
        self._call = call_from_thread

    def __call__(self, action: str, actor_id: str, attributes: Mapping[str, str]) -> None:
        event = Event(type="image", action=action, actor_id=actor_id,
                      attributes=dict(attributes))
        self._call(self._bus.publish, event)


@attrs.frozen
class ImportOptions:
    """The parameters of ``POST /images/create`` for an import."""

    source: str = "-"
    repository: str = ""
    tag: str = ""
    message: str = ""
    changes: tuple[str, ...] = ()
    platform: str = ""


@attrs.frozen
class _Usage:
    count: int = 0
    layers_size: int = 0
    images: tuple[dict[str, Any], ...] = ()


def _import_reference(repository: str, tag: str) -> Reference | None:
    """``repo`` (which may carry a tag) and ``tag`` as Docker's import reads them."""
    if not repository:
        return None
    reference = parse_normalized(repository)
    if reference.digest:
        raise InvalidParameter("cannot import digest reference")
    return reference.trimmed().with_tag(tag) if tag else reference


def _check_platform(platform: str) -> None:
    """Only Linux images: ``linux[/arch[/variant]]`` or a bare architecture."""
    first = platform.split("/", 1)[0].lower()
    if platform and first != "linux" and not ("/" not in platform
                                              and first in _KNOWN_ARCHITECTURES):
        raise InvalidParameter("operating system is not supported")


def _event_attributes(image: Image, name: str) -> dict[str, str]:
    return {**image.labels, "name": name}


class ImageService:
    """Images for the API: list, inspect, history, import, tag, delete, prune."""

    def __init__(self, store: ImageStore, *, relay: Callable[[str, str, Mapping[str, str]],
                                                             None],
                 call_from_thread: Callable[..., Any], writer: Runner, reader: Runner,
                 architecture: str, exporter: Runner | None = None) -> None:
        self._store = store
        self._relay = relay
        self._call = call_from_thread
        self._writer = writer
        self._reader = reader
        self._exporter = exporter or reader
        self._architecture = architecture
        self._prune_guard = OneAtATime("a prune operation is already running")
        self._usage = self._compute_usage()

    @classmethod
    def open(cls, state_root: Path, events: EventBus, reactor: WorkerReactor, *,
             architecture: str, overlay_whiteouts: bool = True) -> ImageService:
        """Load the store under ``state_root`` (blocking: call it at start-up)."""
        relay = _EventRelay(events, reactor.callFromThread)
        store = ImageStore.open(state_root, overlay_whiteouts=overlay_whiteouts, events=relay)
        return cls(store, relay=relay, call_from_thread=reactor.callFromThread,
                   writer=PoolRunner(reactor, 1, "dockertw-image-writer"),
                   reader=PoolRunner(reactor, 4, "dockertw-image-reader"),
                   exporter=PoolRunner(reactor, 4, "dockertw-image-export"),
                   architecture=architecture)

    @property
    def store(self) -> ImageStore:
        """The store itself, for other engine services (containers mount its layers)."""
        return self._store

    # -- figures for /info and /system/df --------------------------------------------

    def _compute_usage(self) -> _Usage:
        images = self._store.images()
        layers_size, listed = views.disk_usage(images, self._store.layers())
        return _Usage(len(images), layers_size, tuple(listed))

    def _set_usage(self, usage: _Usage) -> None:
        self._usage = usage

    def image_count(self) -> int:
        """How many images the store holds (``Images`` of ``/info``)."""
        return self._usage.count

    def image_disk_usage(self) -> tuple[int, list[dict[str, Any]]]:
        """``LayersSize`` and ``Images`` of ``/system/df``, as of the last change, with
        the containers using each image counted now."""
        images = [dict(item) for item in self._usage.images]
        for item in images:
            item["Containers"] = len(self._store.image_users(item["Id"]))
        return self._usage.layers_size, images

    def run_write(self, work: Callable[[ImageStore], _T]) -> Deferred[_T]:
        """Run ``work(store)`` in the writer, as the image operations run (for other
        engine services that change the store: pulls)."""
        return self._write(lambda: work(self._store))

    def publish(self, action: str, actor_id: str, attributes: Mapping[str, str]) -> None:
        """Send an image event (``pull``, ``push``) from any thread."""
        self._relay(action, actor_id, attributes)

    def _write(self, work: Callable[[], _T]) -> Deferred[_T]:
        """Run ``work`` in the writer, then refresh the figures (before it answers)."""
        def job() -> _T:
            try:
                return work()
            finally:
                self._call(self._set_usage, self._compute_usage())

        return self._writer(job)

    # -- reads -----------------------------------------------------------------------

    def list_images(self, filters: Filters, shown_all: bool = False,
                    placeholders: bool = True, shared_size: bool = False
                    ) -> Deferred[list[dict[str, Any]]]:
        """``GET /images/json``: summaries, newest first, with the number of containers
        using each image (and the size shared with other images when asked)."""
        views.check_list_filters(filters)
        return self._reader(lambda: self._counted(
            self._list(filters, shown_all, placeholders), shared_size))

    def _counted(self, items: list[dict[str, Any]], shared_size: bool
                 ) -> list[dict[str, Any]]:
        shared = dict(views.shared_sizes(self._store.images(), self._store.layers())) \
            if shared_size else {}
        for item in items:
            item["Containers"] = len(self._store.image_users(item["Id"]))
            item["SharedSize"] = shared.get(item["Id"], -1)
        return items

    def _filter_image(self, filters: Filters, key: str) -> Image | None:
        found = None
        for value in sorted(filters.get(key)):
            found = self._store.get(value)
        return found

    def _list(self, filters: Filters, shown_all: bool, placeholders: bool
              ) -> list[dict[str, Any]]:
        before = self._filter_image(filters, "before")
        since = self._filter_image(filters, "since")
        return views.list_images(self._store.images(), filters, shown_all=shown_all,
                                 before=before, since=since, placeholders=placeholders)

    def inspect(self, name: str, platform: Platform | None = None
                ) -> Deferred[dict[str, Any]]:
        """``GET /images/{name}/json``: Docker's ``ImageInspect`` (404 when the image is
        not of ``platform``)."""
        return self._reader(lambda: self._inspect(name, platform))

    def _get(self, name: str, platform: Platform | None) -> Image:
        image = self._store.get(name)
        if platform is not None:
            platform.check_image(image.config, name)
        return image

    def _inspect(self, name: str, platform: Platform | None) -> dict[str, Any]:
        try:
            image = self._get(name, platform)
        except DockerError as error:
            raise type(error)(f"no such image: {name}: {error}") from None
        top = image.top_layer
        return views.inspect(image, self._store.layer_chain(top) if top else [])

    def history(self, name: str, platform: Platform | None = None
                ) -> Deferred[list[dict[str, Any]]]:
        """``GET /images/{name}/history``: newest first, IDs of local parents filled in."""
        return self._reader(lambda: self._history(name, platform))

    def attestations(self, name: str, platform: Platform | None = None
                     ) -> Deferred[list[dict[str, Any]]]:
        """``GET /images/{name}/attestations``: the store keeps none, so an image
        found answers an empty list."""
        return self._reader(lambda: [] if self._get(name, platform) else [])

    def _history(self, name: str, platform: Platform | None) -> list[dict[str, Any]]:
        image: Image | None = self._get(name, platform)
        assert image is not None
        items = views.history_items(image, [self._store.layer(c).size for c in image.chain])
        for item in items:
            if image is None:
                break
            item["Id"] = image.id
            item["Tags"] = list(image.repo_tags) or None
            image = self._parent_of(image)
        return items

    def _parent_of(self, image: Image) -> Image | None:
        if not image.parent:
            return None
        try:
            return self._store.get(image.parent)
        except DockerError:
            return None

    # -- import and pull -------------------------------------------------------------

    def import_image(self, body: IO[bytes], options: ImportOptions) -> Deferred[str]:
        """``docker import``: ``body`` is the layer tar; answers the new image's ID.

        Parameters are checked at once (a bad ``repo`` or change is a 400 before the
        body is read); the layer is unpacked in the writer thread.
        """
        if options.source != "-":
            if not options.source:
                raise InvalidParameter("either fromImage or fromSrc must be given")
            raise errdefs.NotImplemented(f"importing from a URL is not supported yet: "
                                 f"cannot fetch {options.source}")
        reference = _import_reference(options.repository, options.tag)
        _check_platform(options.platform)
        config = apply_changes({}, options.changes)
        comment = options.message or f"Imported from {options.source}"
        return self._write(lambda: self._import(body, reference, config, comment))

    def _import(self, body: IO[bytes], reference: Reference | None,
                config: dict[str, Any], comment: str) -> str:
        layer = self._store.add_layer(body)
        try:
            image_id = self._store.create_image(views.import_config(
                architecture=self._architecture, comment=comment, config=config,
                created_ns=time.time_ns(), diff_id=layer.diff_id,
                docker_version=__version__))
        except BaseException:
            self._store.delete_unused_layers()
            raise
        if reference is not None:
            self._store.add_reference(reference, image_id)
        self._relay("import", image_id,
                    _event_attributes(self._store.get(image_id), image_id))
        return image_id

    def commit(self, parent_id: str, layer: IO[bytes] | None, commit: views.CommitConfig,
               repository: str = "", tag: str = "") -> Deferred[str]:
        """``docker commit``: a child of ``parent_id`` with ``layer`` (``None``: no
        changes) tagged ``repository:tag`` when given; answers the new image's ID."""
        reference = _import_reference(repository, tag)
        return self._write(lambda: self._commit(parent_id, layer, commit, reference))

    def _commit(self, parent_id: str, stream: IO[bytes] | None,
                commit: views.CommitConfig, reference: Reference | None) -> str:
        parent = self._store.get(parent_id) if parent_id else None
        layer = None if stream is None else self._store.add_layer(
            stream, parent.chain[-1] if parent is not None and parent.chain else None)
        try:
            image_id = self._store.create_image(views.child_config(
                parent, commit, diff_id=None if layer is None else layer.diff_id,
                created_ns=time.time_ns(), docker_version=__version__,
                architecture=self._architecture), parent=parent.id if parent else "")
        except BaseException:
            self._store.delete_unused_layers()
            raise
        if reference is not None:
            self._store.add_reference(reference, image_id)
        return image_id

    def squash(self, image_id: str, parent_id: str, layer: IO[bytes]) -> Deferred[str]:
        """A build's ``squash``: ``image_id`` as one ``layer`` on ``parent_id``'s
        layers (``""``: none); the new image has no parent, as with moby."""
        def squash() -> str:
            image = self._store.get(image_id)
            parent = self._store.get(parent_id) if parent_id else None
            top = parent.chain[-1] if parent is not None and parent.chain else None
            added = self._store.add_layer(layer, top)
            try:
                return self._store.create_image(views.squashed_config(
                    image, parent, added.diff_id, time.time_ns()))
            except BaseException:
                self._store.delete_unused_layers()
                raise

        return self._write(squash)

    # -- writes ----------------------------------------------------------------------

    def tag(self, source: str, repository: str, tag: str = "") -> Deferred[str]:
        """``docker tag``: answers the familiar form of the new name."""
        return self._write(lambda: self._store.tag(source, repository, tag))

    def delete(self, name: str, force: bool = False, prune: bool = True,
               platforms: Sequence[Platform] = ()) -> Deferred[list[dict[str, str]]]:
        """``docker rmi``: Docker's ``[{"Untagged": ...}, {"Deleted": ...}]`` records;
        with a platform, only an image of that platform."""
        if len(platforms) > 1:
            raise InvalidParameter("multiple platforms are not supported")

        def delete() -> list[dict[str, str]]:
            if platforms:
                self._get(name, platforms[0])
            return self._store.delete(name, force=force, prune=prune)

        return self._write(delete)

    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]:
        """``docker image prune``: ``{"ImagesDeleted": [...] | None, "SpaceReclaimed": N}``."""
        views.check_prune_filters(filters)
        return self._prune_guard.run(lambda: self._write(lambda: self._prune(filters)))

    def _prune(self, filters: Filters) -> dict[str, Any]:
        sizes = {layer.chain_id: layer.size for layer in self._store.layers()}
        dangling_only, candidates = views.prune_candidates(self._store.images(), filters)
        deleted: list[dict[str, str]] = []
        for image in candidates:
            deleted.extend(self._prune_image(image, dangling_only))
        reclaimed = sum(sizes.get(record.get("Deleted", ""), 0) for record in deleted)
        self._relay("prune", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def _prune_image(self, image: Image, dangling_only: bool) -> list[dict[str, str]]:
        """Delete ``image`` by each of its names, or by ID if it has none; conflicts
        (a container uses it, a child needs it) leave it in place."""
        names = [*image.repo_tags, *image.repo_digests]
        if not names:
            names = [image_id_hex(image.id)]
        elif dangling_only and image.repo_tags:
            return []
        records: list[dict[str, str]] = []
        for name in names:
            try:
                records.extend(self._store.delete(name, force=False, prune=True))
            except DockerError:
                continue
        return records

    # -- load and save ---------------------------------------------------------------

    def load_images(self, body: IO[bytes], output: LoadOutput, quiet: bool = True,
                    platforms: Sequence[Platform] = ()) -> Deferred[None]:
        """``docker load``: ``output`` is called in the reactor thread as it goes; with
        a platform, images of other platforms are skipped (as moby's ``tarexport``)."""
        relayed = _RelayedOutput(output, self._call)
        platform = only_one(list(platforms))
        return self._write(lambda: self._load(body, relayed, quiet, platform))

    def _load(self, body: IO[bytes], output: LoadOutput, quiet: bool,
              platform: Platform | None) -> None:
        staging = self._store.staging_directory("load-")
        try:
            unpacked = unpack_archive(body, staging)
            importer = Importer(self._store, output, progress=not quiet,
                                loaded=lambda image_id: self._image_event("load", image_id))
            items = [item for item in read_items(unpacked) if platform is None
                     or platform.matches(of_config(decode_config(item.config)))]
            importer.run(unpacked, items)
        except BaseException:
            self._store.delete_unused_layers()
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _image_event(self, action: str, image_id: str) -> None:
        self._relay(action, image_id, _event_attributes(self._store.get(image_id), image_id))

    def save_images(self, names: Sequence[str], begin: Begin,
                    platforms: Sequence[Platform] = ()) -> Deferred[None]:
        """``docker save``: the archive of ``names``, streamed through a :class:`Pump`.

        Names are resolved and every layer checked before ``begin`` is called, so those
        errors can still be answered as HTTP errors; cancelling stops the stream.  With
        a platform, every image must be of it.
        """
        platform = only_one(list(platforms))
        pump = Pump(self._call)
        done = self._exporter(lambda: self._save(names, begin, pump, platform))
        return cancelling(done, pump)

    def _save(self, names: Sequence[str], begin: Begin, pump: Pump,
              platform: Platform | None) -> None:
        images = self._saved_images(names)
        for image in images:
            if platform is not None and not platform.matches(
                    of_config(self._store.get(image.id).config)):
                raise System(f"no suitable export target found for platform {platform}")
        chains = sorted({c for image in images for c in self._store.get(image.id).chain})
        try:
            with self._store.holding(chains):
                for chain in chains:
                    self._store.require_tar_split(chain)
                pump.begin(begin)
                for image in images:
                    self._image_event("save", image.id)
                for chunk in archive_chunks(images, self._store.layer_tar):
                    pump.push(chunk)
        finally:
            if self._store.unused(chains):  # an image went away while it was saved
                self._call(self._write, self._store.delete_unused_layers)

    def _saved_images(self, names: Sequence[str]) -> list[SavedImage]:
        """moby's ``parseNames``: each image once, with the tags asked for."""
        found: dict[str, list[Reference]] = {}
        for name in names:
            for image_id, reference in self._save_targets(name):
                tags = found.setdefault(image_id, [])
                if reference is not None and reference not in tags:
                    tags.append(reference)
        return [self._saved_image(image_id, tags, set(found))
                for image_id, tags in found.items()]

    def _save_targets(self, name: str) -> list[tuple[str, Reference | None]]:
        reference = parse_any(name)
        if not reference.is_named:
            return [(self._store.resolve(name), None)]
        if reference.repository == "sha256":
            return [(self._search(name), None)]
        if reference.is_name_only:
            tagged = self._store.tags_of_repository(reference)
            if tagged:
                return [(image_id, tag) for tag, image_id in tagged]
            return [(self._search(name), None)]
        image_id = self._store.lookup(reference)
        if image_id is None:
            raise NotFound("reference does not exist")
        return [(image_id, None if reference.digest else reference)]

    def _search(self, name: str) -> str:
        try:
            return self._store.resolve(name)
        except NotFound:
            raise NotFound(f"No such image: {name}") from None

    def _saved_image(self, image_id: str, tags: list[Reference], saved: set[str]
                     ) -> SavedImage:
        image = self._store.get(image_id)
        if not image.chain:
            raise System("empty export - not implemented")
        return SavedImage(id=image.id, raw_config=image.raw_config, config=image.config,
                          tags=tuple(tags), created_unix=image.created_unix,
                          parent=image.parent if image.parent in saved else "")


class _RelayedOutput:
    """A :class:`LoadOutput` whose calls are made in the reactor thread."""

    def __init__(self, output: LoadOutput, call_from_thread: Callable[..., Any]) -> None:
        self._output = output
        self._call = call_from_thread

    def text(self, line: str) -> None:
        self._call(self._output.text, line)

    def progress(self, layer: str, current: int, total: int) -> None:
        self._call(self._output.progress, layer, current, total)

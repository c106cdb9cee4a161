"""The builder service: ``POST /build`` with Docker's classic builder.

A build reads its context (the request's tar, or a remote) into a private directory
under ``ROOT/builder``, parses the Dockerfile (errors there are answered before any
output), then evaluates it (:mod:`.dispatch`) with containers and commits of the
container service, and tags the result.  Cancelling the Deferred of :meth:`build`
(the client went away) kills the running step's container and stops the build
between steps.  Pulls of missing base images go through :attr:`puller`, a seam the
registry client fills.
"""

from __future__ import annotations

import contextlib
import email.message
import email.utils
import os
import posixpath
import shutil
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from dockertw import errdefs
from dockertw.daemon.builder.buildargs import BuildArgs
from dockertw.daemon.builder.cache import ImageProber
from dockertw.daemon.builder.containers import BuildContainers
from dockertw.daemon.builder.context import BuildContext, http_get, open_context
from dockertw.daemon.builder.dispatch import BuildParts, Evaluator, OpenTree
from dockertw.daemon.builder.instructions import Instruction, Stage, parse_dockerfile
from dockertw.daemon.builder.options import BuildOptions, BuildOutput, PruneOptions, host_config
from dockertw.daemon.builder.records import CacheRecords
from dockertw.daemon.builder.sources import SourceTree
from dockertw.daemon.builder.squash import merged_layer
from dockertw.daemon.containers.files import copyroot
from dockertw.daemon.containers.service import ContainerService
from dockertw.daemon.events import EventBus
from dockertw.daemon.images.reference import Reference, image_id_hex, parse_normalized, short_id
from dockertw.daemon.images.service import ImageService
from dockertw.daemon.images.store import Image
from dockertw.daemon.images.views import parse_filter_time
from dockertw.daemon.storage import ensure_directory
from dockertw.daemon.workers import OneAtATime, PoolRunner, Runner, WorkerReactor
from dockertw.errdefs import DockerError, InvalidParameter, NotFound, System

__all__ = ["BuilderService", "ImagePuller"]

_ROOT_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


class ImagePuller(Protocol):
    """Pulls an image for a build's ``FROM`` (progress in the build's output)."""

    def __call__(self, name: str, platform: str, auth: Mapping[str, Any],
                 output: BuildOutput) -> Deferred[None]: ...


def _sanitize_tags(names: Sequence[str]) -> list[Reference]:
    """moby's ``sanitizeRepoAndTags``: each ``t`` parsed, tagged ``latest`` when bare,
    duplicates once."""
    tags: list[Reference] = []
    for name in names:
        if not name:
            continue
        reference = parse_normalized(name)
        if reference.digest:
            raise InvalidParameter("build tag cannot contain a digest")
        reference = reference.with_default_tag()
        if reference not in tags:
            tags.append(reference)
    return tags


def _targeted(stages: tuple[Stage, ...], target: str) -> tuple[Stage, ...]:
    if not target:
        return stages
    for index, stage in enumerate(stages):
        if stage.name.lower() == target.lower():
            return stages[:index + 1]
    raise InvalidParameter(f"failed to reach build target {target} in Dockerfile")


def _with_labels(stages: tuple[Stage, ...], labels: Mapping[str, str]) -> tuple[Stage, ...]:
    """The build's ``labels`` as ``LABEL`` steps at the end of the last stage."""
    if not labels or not stages:
        return stages
    added = tuple(Instruction(name="label", code=f"LABEL {key}={labels[key]}", line=0,
                              flags={}, args=(key, labels[key]), expand=False)
                  for key in sorted(labels))
    last = stages[-1]
    return (*stages[:-1], attrs.evolve(last, instructions=(*last.instructions, *added)))


def _download_name(url: str, disposition: str) -> str:
    """moby's ``getFilenameForDownload``: the URL path's last element, else the
    ``Content-Disposition`` filename."""
    path = urllib.parse.urlsplit(url).path
    if path and not path.endswith("/") and posixpath.basename(path):
        return posixpath.basename(path)
    message = email.message.Message()
    message["content-disposition"] = disposition
    filename = message.get_param("filename", header="content-disposition")
    if isinstance(filename, str) and filename and not filename.endswith("/"):
        return posixpath.basename(filename)
    return ""


@attrs.define
class _Job:
    """One running build: its options, output, containers and the images it made."""

    options: BuildOptions
    output: BuildOutput
    containers: BuildContainers
    context: BuildContext | None = None
    tree: SourceTree | None = None
    images: set[str] = attrs.field(factory=set)


class BuilderService:
    """Builds images from Dockerfiles (``POST /build``)."""

    def __init__(self, root: Path, images: ImageService, containers: ContainerService, *,
                 events: EventBus, worker: Runner, call_from_thread: Callable[..., Any]
                 ) -> None:
        self._root = root
        self._images = images
        self._store = images.store
        self._containers = containers
        self._events = events
        self._worker = worker
        self._call = call_from_thread
        self._records = CacheRecords.open(root / "cache.json", images.store)
        self._jobs: list[_Job] = []
        self._prune_guard = OneAtATime("a prune operation is already running")
        self.puller: ImagePuller = self._no_registry

    @classmethod
    def open(cls, state_root: Path, images: ImageService, containers: ContainerService,
             events: EventBus, reactor: WorkerReactor) -> BuilderService:
        """The builder under ``state_root/builder`` (blocking: at start-up); what a
        killed daemon left there is removed."""
        root = state_root / "builder"
        copyroot.release_scratch(root / "mounts")
        shutil.rmtree(root / "tmp", ignore_errors=True)
        ensure_directory(root / "tmp", mode=0o700)
        return cls(root, images, containers, events=events,
                   worker=PoolRunner(reactor, 2, "dockertw-builder"),
                   call_from_thread=reactor.callFromThread)

    @staticmethod
    def _no_registry(name: str, platform: str, auth: Mapping[str, Any],
                     output: BuildOutput) -> Deferred[None]:
        raise errdefs.NotImplemented(f"this engine has no registry client: cannot pull "
                                     f"{name}")

    # -- builds --------------------------------------------------------------------------

    def build(self, body: IO[bytes], options: BuildOptions, output: BuildOutput
              ) -> Deferred[str]:
        """Build ``options``' Dockerfile from the context in ``body`` (or the remote);
        answers the image ID.  Cancelling it stops the build."""
        tags = _sanitize_tags(options.tags)
        job = _Job(options, output, BuildContainers(self._containers, output,
                                                    host_config(options)))
        done: Deferred[str] = Deferred(lambda _: job.containers.cancel())

        def settle(result: Any) -> None:
            if done.called:  # cancelled: the build stopped on its own
                return
            if isinstance(result, Failure):
                done.errback(result)
            else:
                done.callback(result)

        Deferred.fromCoroutine(self._build(job, body, tags)).addBoth(settle)
        return done

    async def _build(self, job: _Job, body: IO[bytes], tags: list[Reference]) -> str:
        self._jobs.append(job)
        try:
            job.context = await self._worker(lambda: self._open_context(job, body))
            parsed = parse_dockerfile(job.context.dockerfile, job.context.dockerfile_name)
            stages = _with_labels(_targeted(parsed.stages, job.options.target),
                                  job.options.labels)
            context_root = job.context.root
            if context_root is not None:
                job.tree = SourceTree(await self._worker(
                    lambda: os.open(context_root, _ROOT_FLAGS)), digests=job.context.digests)
            evaluator = Evaluator(self._parts(job, parsed.escape),
                                  BuildArgs(job.options.build_args),
                                  job.options.force_remove, job.options.remove)
            image_id = await evaluator.run(stages, parsed.meta_args)
            if job.options.squash:
                image_id = await self._squash(job, image_id, evaluator.base_id)
            job.output.stream(f"Successfully built {short_id(image_id)}\n")
            await self._tag(job.output, image_id, tags)
            return image_id
        finally:
            self._jobs.remove(job)
            await self._worker(lambda: self._close(job))

    async def _squash(self, job: _Job, image_id: str, base_id: str) -> str:
        """The built image as one layer on its base (``squash``, experimental)."""
        def merge() -> IO[bytes]:
            chain = self._store.image_chain(image_id)
            own = self._store.image_layers(image_id)[len(self._store.image_chain(base_id)):]
            layer = tempfile.TemporaryFile(dir=self._root / "tmp")  # noqa: SIM115 - returned
            try:
                with self._store.holding(chain):
                    merged_layer(own, self._root / "tmp" / f"squash-{uuid.uuid4().hex}",
                                 layer)
                layer.seek(0)
            except BaseException:
                layer.close()
                raise
            return cast(IO[bytes], layer)

        layer = await self._worker(merge)
        try:
            squashed = await self._images.squash(image_id, base_id, layer)
        finally:
            layer.close()
        job.output.aux({"ID": squashed}, id="moby.image.id")
        return squashed

    def _open_context(self, job: _Job, body: IO[bytes]) -> BuildContext:
        directory = self._root / "tmp" / f"build-{uuid.uuid4().hex}"

        def progress(current: int, total: int) -> None:
            self._call(job.output.progress, "Downloading context", current, total,
                       job.options.remote)

        return open_context(directory, body, job.options.remote, job.options.dockerfile,
                            progress)

    def _close(self, job: _Job) -> None:
        if job.tree is not None:
            os.close(job.tree.fd)
        if job.context is not None:
            job.context.close()
        self._records.save()

    async def _tag(self, output: BuildOutput, image_id: str, tags: list[Reference]) -> None:
        for reference in tags:
            shown = await self._images.tag(image_id, reference.name, reference.tag)
            output.stream(f"Successfully tagged {shown}\n")

    # -- the build cache -------------------------------------------------------------

    def _users(self) -> set[str]:
        """Images containers or running builds stand on."""
        used = {image.id for image in self._store.images() if self._store.image_users(image.id)}
        for job in self._jobs:
            used |= job.images
        return used

    def cache_usage(self) -> Deferred[list[dict[str, Any]]]:
        """The ``BuildCache`` of ``/system/df``."""
        users = self._users()
        return self._worker(lambda: self._records.usage(users))

    def prune(self, options: PruneOptions) -> Deferred[dict[str, Any]]:
        """``POST /build/prune``: the step images nothing needs (last used before
        ``until``), as ``{"CachesDeleted": [...], "SpaceReclaimed": N}``."""
        until_ns = None
        if options.until:
            until_ns = int(parse_filter_time(options.until, time.time()) * 1e9)
        return self._prune_guard.run(lambda: Deferred.fromCoroutine(self._prune(until_ns)))

    async def _prune(self, until_ns: int | None) -> dict[str, Any]:
        users = self._users()
        chosen = await self._worker(lambda: self._records.prunable(users, until_ns))
        sizes = {layer.chain_id: layer.size for layer in self._store.layers()}
        deleted, reclaimed = [], 0
        for image in chosen:
            try:
                records = await self._images.delete(image.id, force=False, prune=False)
            except DockerError:
                continue  # needed after all (a new child, a container)
            deleted.append(image_id_hex(image.id))
            reclaimed += sum(sizes.get(r.get("Deleted", ""), 0) for r in records)
        await self._worker(self._records.save)
        self._events.emit("builder", "prune", "", reclaimed=str(reclaimed))
        return {"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- what an evaluation uses ---------------------------------------------------------

    def _parts(self, job: _Job, escape: str) -> BuildParts:
        return BuildParts(
            containers=job.containers, output=job.output, prober=self._prober(job.options),
            worker=self._worker, context_tree=job.tree,
            image=lambda name, local_only: self._image(job, name, local_only),
            image_tree=self._image_tree, download=lambda url, dest: self._download(
                job.output, url, dest), made=lambda image_id: self._made(job, image_id),
            used=lambda image_id: self._used(job, image_id), escape=escape)

    def _made(self, job: _Job, image_id: str) -> None:
        job.images.add(image_id)
        self._records.made(image_id)

    def _used(self, job: _Job, image_id: str) -> None:
        job.images.add(image_id)
        self._records.used(image_id)

    def _prober(self, options: BuildOptions) -> ImageProber:
        cache_from: list[Image] | None = None
        if options.cache_from:  # an empty list is the local cache, as moby's
            cache_from = []
            for name in options.cache_from:
                with contextlib.suppress(NotFound, InvalidParameter):
                    cache_from.append(self._store.get(name))
        return ImageProber(self._store, enabled=not options.no_cache, cache_from=cache_from,
                           restore=self._restore)

    def _restore(self, config: bytes, parent: str) -> str:
        image_id = self._store.create_image(config, parent=parent)
        self._records.made(image_id)
        return image_id

    async def _image(self, job: _Job, name: str, local_only: bool) -> Image:
        """A ``FROM`` or ``--from`` image: local (a stage's, or without ``pull``), else
        pulled first."""
        if local_only or not job.options.pull:
            try:
                return self._store.get(name)
            except (NotFound, InvalidParameter):
                if local_only:
                    raise
        await self.puller(name, job.options.platform, job.options.auth_configs, job.output)
        return self._store.get(name)

    def _image_tree(self, image_id: str) -> OpenTree:
        """An image's files, mounted read-only while a ``COPY --from`` reads them."""
        def open_tree() -> tuple[SourceTree, Callable[[], None]]:
            stack = contextlib.ExitStack()
            try:
                stack.enter_context(self._store.holding(self._store.image_chain(image_id)))
                scratch = self._root / "mounts"
                upper = self._root / "tmp" / f"upper-{uuid.uuid4().hex}"
                stack.callback(shutil.rmtree, upper, True)
                root = stack.enter_context(copyroot.readonly_root(
                    upper, self._store.image_layers(image_id), scratch))
            except BaseException:
                stack.close()
                raise
            return SourceTree(root.fd, in_context=False), stack.close
        return open_tree

    def _download(self, output: BuildOutput, url: str, dest: str) -> OpenTree:
        """``ADD`` of a URL: the file downloaded (0600; its time from
        ``Last-Modified``, else the epoch) alone in a private directory."""
        def open_tree() -> tuple[SourceTree, Callable[[], None]]:
            directory = self._root / "tmp" / f"download-{uuid.uuid4().hex}"
            directory.mkdir(mode=0o700)
            try:
                name = self._fetch(output, url, dest, directory)
                fd = os.open(directory, _ROOT_FLAGS)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise

            def close() -> None:
                os.close(fd)
                shutil.rmtree(directory, ignore_errors=True)
            return SourceTree(fd, in_context=False, download=name), close
        return open_tree

    def _fetch(self, output: BuildOutput, url: str, dest: str, directory: Path) -> str:
        with http_get(url) as response:
            name = _download_name(url, response.headers.get("Content-Disposition") or "")
            if not name and dest.endswith("/"):
                raise System(f"cannot determine filename for source {url}")
            name = name or "__unnamed__"
            total = int(response.headers.get("Content-Length") or -1)
            target = directory / name
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as file:
                self._copy_response(output, response, file, total)
            modified = response.headers.get("Last-Modified")
        stamp = email.utils.parsedate_to_datetime(modified).timestamp() if modified else 0
        os.utime(target, (stamp, stamp))
        self._call(output.stream, "\n")
        return name

    def _copy_response(self, output: BuildOutput, response: Any, file: IO[bytes],
                       total: int) -> None:
        done = 0
        while True:
            data = response.read(_CHUNK)
            if not data:
                return
            file.write(data)
            done += len(data)
            self._call(output.progress, "Downloading", done, total, "")

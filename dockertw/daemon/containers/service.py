"""The container service: what the container router calls, in Docker's shapes.

Writes (create, remove, rename, prune) run one after another in a single worker
thread, reads in a small pool; events are published on the bus from the reactor
thread, as the image service does.  Runs of containers (start, exit, wait, attach,
kill, stop, restart, logs) belong to :mod:`dockertw.daemon.containers.lifecycle`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, cast

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred
from twisted.logger import Logger

from dockertw.daemon.containers import archive as archives
from dockertw.daemon.containers import bundle as bundles
from dockertw.daemon.containers import cgroups, copyroot, diff, listing, top
from dockertw.daemon.containers import config as configs
from dockertw.daemon.containers.execs import ExecService
from dockertw.daemon.containers.export import export_rootfs
from dockertw.daemon.containers.lifecycle import Lifecycle
from dockertw.daemon.containers.logs import LogOptions
from dockertw.daemon.containers.mounts import MountPoint, parse_volumes_from
from dockertw.daemon.containers.mounts import collect as collect_mounts
from dockertw.daemon.containers.names import check_name, generate_id, random_name
from dockertw.daemon.containers.record import Container, Sizes
from dockertw.daemon.containers.running import Attachment, Running
from dockertw.daemon.containers.stats import Sample, cgroup_files, parse_sample
from dockertw.daemon.containers.statsstream import StatsOptions, StatsSource, stream_stats
from dockertw.daemon.containers.store import ContainerStore
from dockertw.daemon.containers.uppertar import write_upper_tar
from dockertw.daemon.events import Event, EventBus
from dockertw.daemon.images.changes import apply_changes
from dockertw.daemon.images.store import ImageStore, ImageUser
from dockertw.daemon.images.views import CommitConfig
from dockertw.daemon.jsonlog import LogEntry
from dockertw.daemon.pump import Begin, Pump, cancelling
from dockertw.daemon.storage import tree_size
from dockertw.daemon.volumes.service import VolumeService
from dockertw.daemon.workers import OneAtATime, PoolRunner, Runner, WorkerReactor
from dockertw.errdefs import Conflict, DockerError, Forbidden, InvalidParameter, NotFound, System
from dockertw.filters import Filters
from dockertw.runtime import mounts
from dockertw.runtime.runc import Runc, delete_leftovers
from dockertw.streams.detachkeys import DEFAULT_DETACH_KEYS

__all__ = ["ContainerService", "CreateOptions", "ListOptions", "LogOptions", "StatsOptions",
           "CopyOptions", "StartArchive"]

_log = Logger()
_CLK_TCK = os.sysconf("SC_CLK_TCK")

def _export_scratch(containers_root: Path) -> Path:
    """Where exports mount their private overlays (outside any container's directory)."""
    return containers_root.parent / "tmp" / "export"


def _copy_scratch(containers_root: Path) -> Path:
    """Where ``docker cp`` mounts its private overlays."""
    return containers_root.parent / "tmp" / "cp"


def _release_export_mounts(containers_root: Path) -> None:
    """Unmount the overlays of exports and copies a killed daemon left behind (at
    start)."""
    for scratch in (_export_scratch(containers_root), _copy_scratch(containers_root)):
        for point in mounts.mounts_under(scratch):
            mounts.unmount(point)
    # copies' private overlay work directories (nothing is mounted there any more)
    shutil.rmtree(_copy_scratch(containers_root), ignore_errors=True)


#: Called in a worker thread with the path's stat; answers how the tar starts.
StartArchive = Callable[[dict[str, Any]], Begin]


@attrs.frozen
class CopyOptions:
    """``PUT /containers/{name}/archive``'s query."""

    path: str
    no_overwrite_dir_non_dir: bool = False
    copy_uid_gid: bool = False


def _image_ref(repository: str, tag: str) -> str:
    if not repository:
        return ""
    return f"{repository}:{tag or 'latest'}"


def _reconcile(store: ContainerStore, killed: set[str]) -> None:
    """Mark the containers of a previous daemon's life stopped (blocking, at start).

    Those still running were killed with SIGKILL (137); for the others the exit code
    is unknown (255), unless they were waiting to be restarted.
    """
    now = time.time_ns()
    for container in store.all():
        if not container.running:
            continue
        bundles.release_rootfs(store.root / container.id)
        code = 137 if container.id in killed else (
            container.state.exit_code if container.state.restarting else 255)
        store.save_state(container.id, container.state.stopped(code, now))


@attrs.frozen
class CreateOptions:
    """The query of ``POST /containers/create``: ``name`` and ``platform``."""

    name: str = ""
    platform: str = ""


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


@attrs.frozen
class ListOptions:
    """The query of ``GET /containers/json``."""

    all: bool = False
    limit: int = -1
    size: bool = False
    filters: Filters = attrs.field(factory=Filters)


class ContainerService:
    """Container records for the API: create, list, inspect, remove, rename, prune."""

    def __init__(self, store: ContainerStore, images: ImageStore, *,
                 call_from_thread: Callable[..., Any], events: EventBus, writer: Runner,
                 reader: Runner, runtime: str = "runc", cgroup_version: str = "2",
                 reactor: Any = None, runc: Runc | None = None,
                 cgroup_parent: str = "dockertw", preparer: Runner | None = None,
                 machine_memory: int = 0,
                 volumes: VolumeService | None = None) -> None:
        self._store = store
        self._volumes = volumes
        self._images = images
        self._call = call_from_thread
        self._events = events
        self._writer = writer
        self._reader = reader
        self._exporter: Runner = reader if reactor is None else PoolRunner(
            reactor, 2, "dockertw-container-export")
        self._runtime = runtime
        self._cgroup_version = cgroup_version
        self._cgroup_parent = cgroup_parent
        self._reactor = reactor
        self._machine_memory = machine_memory
        self._prune_guard = OneAtATime("a prune operation is already running")
        self._count = store.count()
        self._runs = Lifecycle(store, images, emit=self._emit, writer=writer,
                               reader=reader, reactor=reactor, runc=runc,
                               auto_remove=self._auto_remove,
                               cgroup_parent=cgroup_parent, preparer=preparer)
        self.execs = ExecService(store, self._runs, emit=self._emit, reader=reader,
                                 reactor=reactor, runc=runc)
        images.image_users = self.image_users
        self.commit_image: CommitImage = _no_commit
        images.pinned_layers = self.pinned_layers
        if volumes is not None:
            volumes.volume_users = self.volume_users

    @classmethod
    def open(cls, state_root: Path, images: ImageStore, events: EventBus,
             reactor: WorkerReactor, *, runtime: str = "runc",
             cgroup_version: str = "2", cgroup_parent: str = "dockertw",
             machine_memory: int = 0,
             volumes: VolumeService | None = None) -> ContainerService:
        """Load the records under ``state_root`` (blocking: call it at start-up)."""
        store = ContainerStore.open(state_root)
        _reconcile(store, delete_leftovers(runtime, state_root / "runc"))
        _release_export_mounts(store.root)
        service = cls(store, images,
                      call_from_thread=reactor.callFromThread, events=events,
                      writer=PoolRunner(reactor, 1, "dockertw-container-writer"),
                      reader=PoolRunner(reactor, 2, "dockertw-container-reader"),
                      runtime=runtime, cgroup_version=cgroup_version, reactor=reactor,
                      runc=Runc(cast(Any, reactor), state_root / "runc", runtime),
                      cgroup_parent=cgroup_parent,
                      preparer=PoolRunner(reactor, 2, "dockertw-container-prepare"),
                      machine_memory=machine_memory, volumes=volumes)
        reactor.addSystemEventTrigger("before", "shutdown", service.shutdown)
        reactor.callWhenRunning(service._resume, store.all())
        return service

    def _resume(self, containers: list[Container]) -> None:
        """At daemon start: restart by policy, remove the stopped ``--rm`` containers."""
        for container in containers:
            if container.host_config.get("AutoRemove") and not container.running:
                self._auto_remove(container.id).addErrback(
                    lambda failure: _log.failure("auto-remove at start", failure))
        self._runs.start_by_policies(
            [c for c in containers if not c.host_config.get("AutoRemove")])

    # -- figures and hooks -------------------------------------------------------------

    def container_count(self) -> int:
        """How many containers exist."""
        return self._count

    def container_counts(self) -> tuple[int, int, int]:
        """How many containers run, are paused, are stopped (``/info``)."""
        containers = self._store.all()
        paused = sum(1 for c in containers if c.running and c.state.paused)
        running = sum(1 for c in containers if c.running) - paused
        return running, paused, len(containers) - running - paused

    def container_disk_usage(self) -> Deferred[list[dict[str, Any]]]:
        """The containers of ``/system/df``, with their sizes."""
        def usage() -> list[dict[str, Any]]:
            now = time.time_ns()
            return [c.summary(self._shown_image(c), self._sizes(c), now)
                    for c in self._store.all()]

        return self._reader(usage)

    def pinned_layers(self) -> list[str]:
        """The image store's hook: layers of running containers' images stay."""
        pinned: list[str] = []
        for container_id in self._runs.active_ids():
            try:
                pinned.extend(self._images.get(self._store.get(container_id).image_id).chain)
            except DockerError:
                continue
        return pinned

    def image_users(self, image_id: str) -> list[ImageUser]:
        """The image store's hook: which containers use ``image_id``."""
        return [ImageUser(c.id, c.running) for c in self._store.users_of(image_id)]

    def _emit(self, container: Container, action: str, **extra: str) -> None:
        """Publish a container event from the reactor thread; refresh the count."""
        event = Event(type="container", action=action, actor_id=container.id,
                      attributes={**container.event_attributes(), **extra})
        if action == "start":
            self._volume_events(container, "mount")
        self._call(self._published, event)
        if action == "die":
            self._volume_events(container, "unmount")

    def _volume_events(self, container: Container, action: str) -> None:
        """Docker's ``mount``/``unmount`` volume events around a run."""
        if self._volumes is None:
            return
        for point in map(MountPoint.from_json, container.mount_points):
            if point.type != "volume":
                continue
            extra = {} if action == "unmount" else {
                "destination": point.destination, "read/write": str(point.rw).lower(),
                "propagation": point.propagation}
            self._volumes.emit(action, point.name, container=container.id, **extra)

    def _published(self, event: Event) -> None:
        self._count = self._store.count()
        self._events.publish(event)

    # -- create ------------------------------------------------------------------------

    def create(self, body: Any, options: CreateOptions) -> Deferred[dict[str, Any]]:
        """``POST /containers/create``: ``{"Id": ..., "Warnings": []}``."""
        request = configs.parse_create_body(body)
        if options.name:
            check_name(options.name)
        platform = options.platform.split("/", 1)[0].lower()
        if platform and platform != "linux":
            raise InvalidParameter(f"operating system {platform!r} is not supported")
        return self._writer(lambda: self._create(request, options.name))

    def _create(self, request: configs.CreateRequest, name: str) -> dict[str, Any]:
        reference = request.config.get("Image") or ""
        if not reference:
            raise InvalidParameter("No image specified")
        image = self._images.get(reference)
        config = dict(request.config)
        configs.merge_image_config(config, image.config.get("config") or {})
        container_id = generate_id()
        config = configs.fill_config(config, container_id)
        host = configs.fill_host_config(request.host_config, request.networking,
                                        runtime=self._runtime,
                                        cgroup_version=self._cgroup_version)
        path, args = configs.entrypoint_and_args(config)
        points = self._mount_points(request.host_config, config)
        log_path = self._store.root / container_id / f"{container_id}-json.log"
        container = Container(id=container_id, name=self._name_for(name, container_id),
                              created_ns=time.time_ns(), path=path, args=args,
                              config=config, host_config=host, image_id=image.id,
                              log_path=str(log_path),
                              mount_points=[point.to_json() for point in points])
        try:
            self._store.add(container)
        except BaseException:
            self._drop_anonymous(points)
            raise
        self._emit(container, "create")
        return {"Id": container_id, "Warnings": []}

    def _mount_points(self, host: dict[str, Any], config: dict[str, Any]
                      ) -> list[MountPoint]:
        """The container's mounts, its volumes found or created (anonymous ones new)."""
        inherited = self._volumes_from(host.get("VolumesFrom"))
        points = collect_mounts(host, (config.get("Volumes") or {}).keys(), inherited)
        if any(p.type == "volume" and not p.source for p in points) and not self._volumes:
            raise InvalidParameter("volumes are not supported by this engine")
        resolved: list[MountPoint] = []
        try:
            for point in points:
                needs_volume = point.type == "volume" and not point.source
                resolved.append(self._volumes.acquire(point)  # type: ignore[union-attr]
                                if needs_volume else point)
        except BaseException:
            self._drop_anonymous(resolved)
            raise
        return resolved

    def _volumes_from(self, specs: Any) -> list[MountPoint]:
        """The mounts of ``--volumes-from`` containers (``:ro`` makes them read-only)."""
        inherited: list[MountPoint] = []
        for spec in specs or ():
            name, mode = parse_volumes_from(str(spec))
            source = self._store.get(name)
            for item in source.mount_points:
                point = MountPoint.from_json(item)
                if point.type == "tmpfs":
                    continue
                inherited.append(attrs.evolve(
                    point, rw=point.rw and "ro" not in mode.split(","), anonymous=False,
                    create_source=False))
        return inherited

    def _drop_anonymous(self, points: list[MountPoint]) -> None:
        if self._volumes is not None:
            self._volumes.remove_anonymous([p.name for p in points
                                            if p.type == "volume" and p.anonymous])

    def volume_users(self, name: str) -> list[str]:
        """The volume service's hook: IDs of the containers that mount ``name``."""
        return [c.id for c in self._store.all()
                if any(p.get("type") == "volume" and p.get("name") == name
                       for p in c.mount_points)]

    def _name_for(self, requested: str, container_id: str) -> str:
        """The requested name, or a free generated one (moby's six tries, then the ID)."""
        if requested:
            return check_name(requested)
        for retry in range(6):
            name = "/" + random_name(retry)
            if self._store.name_owner(name) is None:
                return name
        return "/" + container_id[:12]

    # -- reads -------------------------------------------------------------------------

    def inspect(self, name: str, size: bool = False) -> Deferred[dict[str, Any]]:
        """``GET /containers/{name}/json``."""
        return self._reader(lambda: self._inspect(name, size))

    def _inspect(self, name: str, size: bool) -> dict[str, Any]:
        container = self._store.get(name)
        shown = container.inspect(self._sizes(container) if size else None)
        shown["ExecIDs"] = self.execs.running_ids(container.id) or None
        return shown

    def changes(self, name: str) -> Deferred[list[dict[str, Any]] | None]:
        """``GET /containers/{name}/changes`` (``docker diff``); ``None`` when none."""
        def read() -> list[dict[str, Any]] | None:
            container = self._store.get(name)
            image = self._images.get(container.image_id)
            lowers = ([layer.path for layer in self._images.layer_chain(image.chain[-1])]
                      if image.chain else [])
            return diff.changes(self._store.root / container.id / "upper", lowers) or None

        return self._reader(read)

    def export(self, name: str, begin: Begin) -> Deferred[None]:
        """``GET /containers/{name}/export``: the root filesystem as a tar, streamed
        through a :class:`Pump` once the container is found; cancelling stops it."""
        pump = Pump(self._call)
        return cancelling(self._exporter(lambda: self._export(name, begin, pump)), pump)

    def _export(self, name: str, begin: Begin, pump: Pump) -> None:
        container = self._store.get(name)
        image = self._images.get(container.image_id)
        with self._images.holding(image.chain):
            lowers = ([layer.path for layer in self._images.layer_chain(image.chain[-1])]
                      if image.chain else [])
            pump.begin(begin)
            self._emit(container, "export")
            export_rootfs(self._store.root / container.id / "upper", lowers,
                          _export_scratch(self._store.root), pump.push)

    def top(self, name: str, ps_args: str = "") -> Deferred[dict[str, Any]]:
        """``GET /containers/{name}/top?ps_args=``: the host's ``ps`` rows of the
        container's processes."""
        argv = top.ps_argv(ps_args)
        return ensureDeferred(self._top(name, argv))

    async def _top(self, name: str, argv: list[str]) -> dict[str, Any]:
        container = await self._running_container(name)
        path = bundles.cgroup_path(container, self._cgroup_parent)
        pids = await self._reader(
            lambda: cgroups.read_pids(self._cgroup_version, path))
        listed = top.parse_ps_output(await top.run_ps(argv, pids, self._reactor), pids)
        self._emit(container, "top")
        return listed

    def stats(self, name: str, options: StatsOptions,
              send: Callable[[dict[str, Any]], None],
              ready: Callable[[], None] = lambda: None) -> Deferred[None]:
        """``GET /containers/{name}/stats``: ``send`` each stats object; a stream ends
        when the container is removed, or when the result is cancelled (see
        :mod:`~.statsstream`).  ``ready`` is called once the container is found (a
        stream's headers go out then)."""
        return ensureDeferred(self._stats(name, options, send, ready))

    async def _stats(self, name: str, options: StatsOptions,
                     send: Callable[[dict[str, Any]], None],
                     ready: Callable[[], None]) -> None:
        container = await self._reader(lambda: self._store.get(name))
        if options.stream and options.one_shot:  # after the lookup, as moby: 404 first
            raise InvalidParameter("cannot have stream=true and one-shot=true")
        ready()
        source = StatsSource(find=lambda key: self._reader(lambda: self._store.get(key)),
                             running=lambda key: self._runs.run_of(key) is not None,
                             sample=self._sample, clock=self._reactor)
        await stream_stats(source, container, options, send)

    async def _sample(self, container: Container) -> Sample | None:
        """The container's counters now; ``None`` unless it runs (or if its run ended
        while they were read)."""
        running = self._runs.run_of(container.id)
        if running is None:
            return None
        sample = await self._read_sample(container, running)
        return sample if self._runs.run_of(container.id) is running else None

    def _read_sample(self, container: Container, running: Running) -> Deferred[Sample]:
        """Read the container's counters in a worker thread."""
        version = self._cgroup_version
        path = bundles.cgroup_path(container, self._cgroup_parent)
        host_network = container.host_config.get("NetworkMode") == "host"
        pid = None if host_network else running.watcher.pid

        def read() -> Sample:
            files = cgroups.read_stats_files(version, path, cgroup_files(version), pid)
            return parse_sample(version, files.cgroup, files.proc_stat, files.net_dev,
                                      time.time_ns(), self._machine_memory, _CLK_TCK)

        return self._reader(read)

    async def _running_container(self, name: str) -> Container:
        """The container named ``name``; 409 unless it runs."""
        container = await self._reader(lambda: self._store.get(name))
        if self._runs.run_of(container.id) is None:
            raise Conflict(f"Container {container.id} is not running")
        return container
    @contextmanager
    def _readonly_root(self, container: Container) -> Iterator[copyroot.MergedRoot]:
        """The merged root of ``container`` for reading (its layers held meanwhile)."""
        with ExitStack() as stack:
            lowers = self._hold_layers(container, stack)
            yield stack.enter_context(copyroot.readonly_root(
                self._store.root / container.id / "upper", lowers,
                _copy_scratch(self._store.root)))

    def _hold_layers(self, container: Container, stack: ExitStack) -> list[Path]:
        image = self._images.get(container.image_id)
        stack.enter_context(self._images.holding(image.chain))
        return ([layer.path for layer in self._images.layer_chain(image.chain[-1])]
                if image.chain else [])

    def stat_path(self, name: str, path: str) -> Deferred[dict[str, Any]]:
        """``HEAD /containers/{name}/archive``: the path's ``ContainerPathStat``."""
        def stat_path() -> dict[str, Any]:
            container = self._store.get(name)
            with self._readonly_root(container) as root, archives.as_docker_errors():
                found, resolved = archives.path_stat(root.fd, path, name)
                os.close(resolved.parent)
                return found

        return self._reader(stat_path)

    def archive(self, name: str, path: str, start: StartArchive,
                encoding: str = "") -> Deferred[None]:
        """``GET /containers/{name}/archive``: the path as a tar (``encoding``:
        ``gzip``, ``deflate`` or none), streamed through a :class:`Pump` once it is
        found; cancelling stops it."""
        pump = Pump(self._call)
        return cancelling(self._exporter(
            lambda: self._archive(name, path, start, pump, encoding)), pump)

    def _archive(self, name: str, path: str, start: StartArchive, pump: Pump,
                 encoding: str) -> None:
        with archives.as_docker_errors():
            self._archive_in(name, path, start, pump, encoding)

    def _archive_in(self, name: str, path: str, start: StartArchive, pump: Pump,
                    encoding: str) -> None:
        container = self._store.get(name)
        with self._readonly_root(container) as root:
            found, resolved = archives.path_stat(root.fd, path, name)
            try:
                pump.begin(start(found))
                self._emit(container, "archive-path")
                encoder = archives.Encoder(pump.push, encoding)
                archives.write_archive(resolved, archives.archive_name(found["name"]),
                                       encoder.push)
                encoder.close()
            finally:
                os.close(resolved.parent)

    def extract(self, name: str, options: CopyOptions, body: IO[bytes]) -> Deferred[None]:
        """``PUT /containers/{name}/archive``: unpack ``body`` into a directory."""
        return ensureDeferred(self._extract(name, options, body))

    async def _extract(self, name: str, options: CopyOptions, body: IO[bytes]) -> None:
        container = await self._reader(lambda: self._store.get(name))
        release = self._runs.hold_stopped(container.id)
        try:
            await self._exporter(lambda: self._extract_in(
                container, name, options, body, running=release is None))
        finally:
            if release is not None:
                release()

    def _extract_in(self, container: Container, name: str, options: CopyOptions,
                    body: IO[bytes], running: bool) -> None:
        with ExitStack() as stack:
            if running:
                root = stack.enter_context(copyroot.running_root(
                    bundles.rootfs_of(self._store.root / container.id)))
            else:
                lowers = self._hold_layers(container, stack)
                root = stack.enter_context(copyroot.writable_root(
                    self._store.root / container.id / "upper", lowers,
                    _copy_scratch(self._store.root)))
            with archives.as_docker_errors():
                self._extract_into(container, name, root, options, body)
        self._emit(container, "extract-to-dir")

    def _extract_into(self, container: Container, name: str, root: copyroot.MergedRoot,
                      options: CopyOptions, body: IO[bytes]) -> None:
        dest = archives.destination(root.fd, options.path, name)
        if container.host_config.get("ReadonlyRootfs"):
            raise Forbidden("container rootfs is marked read-only")
        owner = None
        user = str(container.config.get("User") or "")
        if options.copy_uid_gid and user:
            found = bundles.resolve_user(root.path, user)
            owner = (found.uid, found.gid)
        archives.extract(root.fd, dest, body, archives.ExtractOptions(
            no_overwrite_dir_non_dir=options.no_overwrite_dir_non_dir, owner=owner))

    def _sizes(self, container: Container) -> Sizes:
        """The writable layer's size and the root filesystem's (image included)."""
        writable = tree_size(self._store.root / container.id / "upper")
        return writable, writable + self._image_size(container)

    def _image_size(self, container: Container) -> int:
        try:
            return self._images.get(container.image_id).size
        except DockerError:
            return 0

    def list_containers(self, options: ListOptions) -> Deferred[list[dict[str, Any]]]:
        """``GET /containers/json``: summaries, newest first."""
        listing.check_list_filters(options.filters)
        if not options.size:  # records and references are in memory: no thread hop
            return maybeDeferred(self._list, options)
        return self._reader(lambda: self._list(options))

    def _list(self, options: ListOptions) -> list[dict[str, Any]]:
        filters = options.filters
        before, since = self._window(filters, "before"), self._window(filters, "since")
        ancestors = self._ancestors(filters)
        chosen = [c for c in self._store.all()
                  if (options.all or options.limit > 0 or c.running)
                  and listing.matches(filters, c, ancestors=ancestors, before=before,
                                      since=since)]
        if options.limit > 0:
            chosen = chosen[:options.limit]
        now = time.time_ns()
        shown: dict[tuple[str, str], str] = {}
        return [c.summary(self._shown_image(c, shown),
                          self._sizes(c) if options.size else None, now)
                for c in chosen]

    def _window(self, filters: Filters, key: str) -> Container | None:
        found = None
        for value in sorted(filters.get(key)):
            found = self._store.get(value)
        return found

    def _ancestors(self, filters: Filters) -> frozenset[str] | None:
        if "ancestor" not in filters:
            return None
        found = set()
        for value in filters.get("ancestor"):
            try:
                found.add(self._images.get(value).id)
            except DockerError:
                continue
        return frozenset(found)

    def _shown_image(self, container: Container,
                     known: dict[tuple[str, str], str] | None = None) -> str:
        """The reference used at create, or the image ID when it now names another;
        ``known`` remembers the answers within one listing."""
        reference = str(container.config.get("Image") or "")
        key = (reference, container.image_id)
        if known is not None and key in known:
            return known[key]
        shown = container.image_id
        try:
            if self._images.get(reference).id == container.image_id:
                shown = reference
        except DockerError:
            pass
        if known is not None:
            known[key] = shown
        return shown

    # -- writes ------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False, volumes: bool = False,
               link: bool = False) -> Deferred[None]:
        """``DELETE /containers/{name}``; ``force`` kills a running container first."""
        if link:
            raise InvalidParameter("links are not supported by dockertw")
        return ensureDeferred(self._remove_async(name, force, volumes))

    async def _remove_async(self, name: str, force: bool, volumes: bool = False) -> None:
        container = await self._reader(lambda: self._store.get(name))
        await self._runs.kill_for_removal(container, force)
        removed = await self._writer(lambda: self._remove(container.id, volumes))
        self._runs.removed(removed.id, removed.state)
        self.execs.forget(removed.id)

    def _auto_remove(self, container_id: str) -> Deferred[None]:
        return ensureDeferred(self._remove_async(container_id, force=False, volumes=True))

    def _remove(self, name: str, volumes: bool = False) -> Container:
        container = self._store.get(name)
        bundles.release_rootfs(self._store.root / container.id)
        container = self._store.remove(container.id)
        self._emit(container, "destroy")
        if volumes:
            self._drop_anonymous([MountPoint.from_json(p) for p in container.mount_points])
        return container

    def rename(self, old: str, new: str) -> Deferred[None]:
        """``POST /containers/{name}/rename?name=new``."""
        if not old or not new:
            raise InvalidParameter("Neither old nor new names may be empty")
        return self._writer(lambda: self._rename(old, new))

    def _rename(self, old: str, new: str) -> None:
        container = self._store.get(old)
        new_name = new if new.startswith("/") else "/" + new
        if container.name == new_name:
            raise InvalidParameter("Renaming a container with the same name as its "
                                   "current name")
        check_name(new_name)
        previous = self._store.rename(container.id, new_name)
        renamed = self._store.get(container.id)
        self._emit(renamed, "rename", oldName=previous.name)

    def update(self, name: str, body: Any) -> Deferred[dict[str, Any]]:
        """``POST /containers/{name}/update``: restart policy and resource limits."""
        request = configs.parse_update_body(body)
        return ensureDeferred(self._update(name, request))

    async def _update(self, name: str, request: configs.UpdateRequest) -> dict[str, Any]:
        def record() -> Container:
            container = self._store.get(name)
            try:
                host = configs.apply_update(container.host_config, request)
            except InvalidParameter as error:
                raise InvalidParameter(f"Cannot update container {container.id}: "
                                       f"{error}") from None
            return self._store.save_host_config(container.id, host)

        updated = await self._writer(record)
        if request.resources:
            await self._runs.apply_limits(updated)
        self._emit(updated, "update")
        return {"Warnings": None}

    def commit(self, options: CommitOptions) -> Deferred[str]:
        """``POST /commit``: an image of the container's changes; answers its ID."""
        if not options.container:
            raise NotFound("No such container: ")
        config = apply_changes(dict(options.config), options.changes)  # 400 at once
        return ensureDeferred(self._commit(options, config))

    async def _commit(self, options: CommitOptions, config: dict[str, Any]) -> str:
        container = await self._reader(lambda: self._store.get(options.container))
        paused = options.pause and await self._runs.pause_for_commit(container.id)
        try:
            layer = await self._reader(lambda: self._upper_tar(container.id))
        finally:
            if paused:
                await self._runs.unpause_after_commit(container.id)
        merged = {**container.config, **{k: v for k, v in config.items() if v}}
        record = CommitConfig(merged, container.config, container.id, options.author,
                              options.comment)
        try:
            image_id = await self.commit_image(container.image_id, layer, record,
                                               options.repository, options.tag)
        finally:
            if layer is not None:
                layer.close()
        self._emit(container, "commit", comment=options.comment, imageID=image_id,
                   imageRef=_image_ref(options.repository, options.tag))
        return image_id

    def _upper_tar(self, container_id: str) -> IO[bytes] | None:
        """The container's changes as a layer tar in an anonymous file (``None``: none)."""
        file = tempfile.TemporaryFile(dir=self._store.root)  # noqa: SIM115 - returned
        try:
            if not write_upper_tar(self._store.root / container_id / "upper", file):
                file.close()
                return None
            file.seek(0)
            return cast(IO[bytes], file)
        except BaseException:
            file.close()
            raise

    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]:
        """``POST /containers/prune``: ``{"ContainersDeleted": [...] | None, ...}``."""
        listing.check_prune_filters(filters)
        return self._prune_guard.run(lambda: self._writer(lambda: self._prune(filters)))

    def _prune(self, filters: Filters) -> dict[str, Any]:
        chosen = listing.prune_matches(filters)
        deleted = []
        for container in self._store.all():
            if chosen(container) and not container.running \
                    and not self._runs.is_active(container.id):
                try:
                    self._remove(container.id)
                except NotFound:
                    continue
                self._call(self._runs.removed, container.id, container.state)
                self._call(self.execs.forget, container.id)
                deleted.append(container.id)
        self._call(self._events.emit, "container", "prune", "", reclaimed="0")
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": 0}

    # -- running (see dockertw.daemon.containers.lifecycle) ----------------------------

    def start(self, name: str) -> Deferred[bool]:
        """``POST /containers/{name}/start``: ``False`` when it already runs (304)."""
        return self._runs.start(name)

    def attach(self, name: str, stdin: bool, stdout: bool, stderr: bool,
               detach_keys: bytes = DEFAULT_DETACH_KEYS
               ) -> Deferred[tuple[Attachment, bool]]:
        """``POST /containers/{name}/attach``: the attachment and whether it has a TTY."""
        return self._runs.attach(name, stdin, stdout, stderr, detach_keys)

    def resize(self, name: str, height: int, width: int) -> Deferred[None]:
        """``POST /containers/{name}/resize?h=&w=``: the size of the container's TTY."""
        return self._runs.resize(name, height, width)

    def wait(self, name: str, condition: str,
             ready: Callable[[], None]) -> Deferred[dict[str, Any]]:
        """``POST /containers/{name}/wait``; ``ready`` fires once the container is found."""
        return self._runs.wait(name, condition, ready)

    def kill(self, name: str, raw_signal: str = "") -> Deferred[None]:
        """``POST /containers/{name}/kill?signal=`` (default ``KILL``)."""
        return self._runs.kill(name, raw_signal)

    def stop(self, name: str, timeout: int | None = None) -> Deferred[None]:
        """``POST /containers/{name}/stop?t=``: StopSignal, then SIGKILL after ``t`` s."""
        return self._runs.stop(name, timeout)

    def restart(self, name: str, timeout: int | None = None) -> Deferred[None]:
        """``POST /containers/{name}/restart?t=``: stop when running, then start."""
        return self._runs.restart(name, timeout)

    def logs(self, name: str, options: LogOptions,
             send: Callable[[LogEntry], None]) -> Deferred[bool]:
        """``GET /containers/{name}/logs``; answers whether the container has a TTY."""
        return self._runs.logs(name, options, send)

    def pause(self, name: str) -> Deferred[None]:
        """``POST /containers/{name}/pause``: freeze every process of the container."""
        return self._runs.pause(name)

    def unpause(self, name: str) -> Deferred[None]:
        """``POST /containers/{name}/unpause``."""
        return self._runs.unpause(name)

    def shutdown(self) -> Deferred[Any] | None:
        """Kill every running container and wait for its clean-up (daemon shutdown)."""
        return self._runs.shutdown()

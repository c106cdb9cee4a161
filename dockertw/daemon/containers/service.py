"""The container service: what the container router calls, in Docker's shapes.

Writes (create, remove, rename, prune) run one after another in a single worker
thread, reads in a small pool; events are published on the bus from the reactor
thread, as the image service does.  Runs of containers (start, exit, wait, attach,
kill, stop, restart, logs) belong to :mod:`~.running.lifecycle`; ``docker cp`` to
:mod:`~.copying`, diff, export and commit to :mod:`~.snapshots`, top and stats to
:mod:`~.monitoring`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred

from dockertw.daemon.containers import copying, snapshots
from dockertw.daemon.containers.copying import ContainerCopies
from dockertw.daemon.containers.monitoring import ContainerMonitor
from dockertw.daemon.containers.parts import ServiceParts
from dockertw.daemon.containers.records import config as configs
from dockertw.daemon.containers.records import listing
from dockertw.daemon.containers.records.modes import adapt_shared_modes
from dockertw.daemon.containers.records.mounts import collect as collect_mounts
from dockertw.daemon.containers.records.mounts import parse_volumes_from
from dockertw.daemon.containers.records.names import check_name, generate_id, random_name
from dockertw.daemon.containers.records.networking import after_stop
from dockertw.daemon.containers.records.record import Container, Sizes
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running import bundle as bundles
from dockertw.daemon.containers.running.execs import ExecService
from dockertw.daemon.containers.running.health import HealthMonitor
from dockertw.daemon.containers.running.keeping import Keeper
from dockertw.daemon.containers.running.lifecycle import Lifecycle
from dockertw.daemon.containers.running.logs import LogOptions
from dockertw.daemon.containers.running.networking import ContainerNetworking
from dockertw.daemon.containers.running.restore import Previous
from dockertw.daemon.containers.running.stdio import release_consoles
from dockertw.daemon.containers.shown import ShownCache
from dockertw.daemon.containers.snapshots import ContainerSnapshots
from dockertw.daemon.events import Event, EventBus
from dockertw.daemon.images.store import ImageStore, ImageUser
from dockertw.daemon.mountpoint import MountPoint
from dockertw.daemon.networks.service import NetworkService
from dockertw.daemon.storage import tree_size
from dockertw.daemon.volumes.service import VolumeService
from dockertw.daemon.workers import OneAtATime, PoolRunner, Runner, WorkerReactor
from dockertw.errdefs import DockerError, InvalidParameter, NotFound
from dockertw.filters import Filters
from dockertw.loglevel import Logger
from dockertw.runtime.runc import Runc, delete_leftovers
from dockertw.runtime.runtimes import OciRuntime, RuntimeTable

__all__ = ["ContainerService", "CreateOptions", "ListOptions", "LogOptions"]

_log = Logger()


def _runtime_picker(store: ContainerStore,
                    runtimes: RuntimeTable) -> Callable[[str], OciRuntime]:
    """The runtime a container was created for (``HostConfig.Runtime``); the stock
    one for a container the store does not know (a leftover)."""
    def pick(container_id: str) -> OciRuntime:
        try:
            name = store.get(container_id).host_config.get("Runtime")
        except NotFound:
            return runtimes.stock
        return runtimes.find(name)
    return pick


def _reconcile(store: ContainerStore, killed: set[str], previous: Previous,
               networks: NetworkService | None) -> None:
    """Mark the containers of a previous daemon's life stopped (blocking, at start),
    but those taken back (live restore).

    Those that ended while no daemon ran have their exit code and time (kept by the
    holder); those still running were killed with SIGKILL (137); for the others the
    exit code is unknown (255), unless they were waiting to be restarted.  What their
    network stacks were made of is torn down as recorded.
    """
    now = time.time_ns()
    for container in store.all():
        if container.id in previous.adopted:
            continue
        if networks is not None:
            networks.recover(store.root / container.id / "network.json")
        if not container.running:
            continue
        bundles.release_rootfs(store.root / container.id)
        code, ended = previous.exit_of(container.id) or (
            137 if container.id in killed else (
                container.state.exit_code if container.state.restarting else 255), now)
        store.save_state(container.id, container.state.stopped(code, ended or now),
                         network_settings=after_stop(container.network_settings))


def _exporter(reader: Runner, reactor: Any) -> Runner:
    """The pool that streams root filesystems (export, cp); ``reader`` without a
    reactor."""
    return reader if reactor is None else PoolRunner(reactor, 2, "dockertw-container-export")


@attrs.frozen
class CreateOptions:
    """The query of ``POST /containers/create``: ``name`` and ``platform``."""

    name: str = ""
    platform: str = ""


@attrs.frozen
class ListOptions:
    """The query of ``GET /containers/json``."""

    all: bool = False
    limit: int = -1
    size: bool = False
    filters: Filters = attrs.field(factory=Filters)


class ContainerService:
    """Container records for the API: create, list, inspect, remove, rename, prune.

    The rest of a container's API is its helpers': :attr:`runs` (start, stop, kill,
    wait, logs, attach, pause), :attr:`copies` (``docker cp``), :attr:`snapshots`
    (diff, export, commit), :attr:`monitor` (top, stats) and :attr:`execs`.
    """

    def __init__(self, store: ContainerStore, images: ImageStore, *,
                 call_from_thread: Callable[..., Any], events: EventBus, writer: Runner,
                 reader: Runner, runtimes: RuntimeTable | None = None,
                 cgroup_version: str = "2", default_ulimits: Sequence[Mapping[str, Any]] = (),
                 default_log: Mapping[str, Any] | None = None,
                 reactor: Any = None, runc: Runc | None = None,
                 cgroup_parent: str = "dockertw", preparer: Runner | None = None,
                 machine_memory: int = 0,
                 volumes: VolumeService | None = None,
                 networks: NetworkService | None = None,
                 keeper: Keeper | None = None) -> None:
        self._store = store
        self._volumes = volumes
        self._images = images
        self._call = call_from_thread
        self._events = events
        self._writer = writer
        self._reader = reader
        self.runtimes = runtimes or RuntimeTable()
        self._default_ulimits = list(default_ulimits)
        self._default_log = default_log
        self._cgroup_version = cgroup_version
        self._prune_guard = OneAtATime("a prune operation is already running")
        self._count = store.count()
        self.networking = ContainerNetworking(store, networks, writer=writer, reader=reader)
        self._shown = ShownCache()
        events.subscribe(Filters(), self._shown.watch, counted=False)
        self.runs = Lifecycle(store, images, emit=self._emit, writer=writer,
                               reader=reader, reactor=reactor, runc=runc,
                               auto_remove=self._auto_remove,
                               cgroup_parent=cgroup_parent, preparer=preparer,
                               networking=self.networking, keeper=keeper)
        self.execs = ExecService(store, self.runs, emit=self._emit, reader=reader,
                                 reactor=reactor, runc=runc)
        self.runs.watcher = HealthMonitor(store, self.execs, emit=self._emit, writer=writer,
                                          reader=reader, reactor=reactor)
        self._parts = parts = ServiceParts(store, images, self.runs, self._emit,
                                           call_from_thread, reader,
                                           _exporter(reader, reactor))
        self.copies = ContainerCopies(parts)
        self.snapshots = ContainerSnapshots(parts)
        self.monitor = ContainerMonitor(parts, reactor=reactor, cgroup_version=cgroup_version,
                                        cgroup_parent=cgroup_parent,
                                        machine_memory=machine_memory)
        self.runs.oom_killed = self.monitor.oom_killed
        images.image_users = self.image_users
        images.pinned_layers = self.pinned_layers
        if volumes is not None:
            volumes.volume_users = self.volume_users

    @classmethod
    def open(cls, state_root: Path, images: ImageStore, events: EventBus,
             reactor: WorkerReactor, *, runtimes: RuntimeTable | None = None,
             exec_root: Path | None = None, cgroup_version: str = "2",
             cgroup_parent: str = "dockertw", machine_memory: int = 0,
             default_ulimits: Sequence[Mapping[str, Any]] = (),
             default_log: Mapping[str, Any] | None = None,
             volumes: VolumeService | None = None,
             networks: NetworkService | None = None,
             live_restore: bool = False) -> ContainerService:
        """Load the records under ``state_root`` (blocking: call it at start-up); the
        runtime keeps its state under ``exec_root`` (default: ``state_root``).  With
        ``live_restore``, take back the containers that kept running (their network
        stacks too) and keep the new ones running past the daemon."""
        store = ContainerStore.open(state_root)
        runtimes = runtimes or RuntimeTable()
        runtime_state = (exec_root or state_root) / "runc"
        pick = _runtime_picker(store, runtimes)
        holder_dir = state_root / "holder"
        previous = Previous.find(store, holder_dir, live_restore)
        _reconcile(store, delete_leftovers(pick, runtime_state, keep=previous.adopted),
                   previous, networks)
        bundles.release_unowned(store.root, previous.adopted)
        previous.release_ended()
        snapshots.release_leftovers(store.root)
        copying.release_leftovers(store.root)
        release_consoles(store.root)
        runc = Runc(cast(Any, reactor), runtime_state, pick=pick)
        keeper = previous.keeper(reactor, holder_dir) if live_restore else None
        runc.launcher = keeper
        service = cls(store, images,
                      call_from_thread=reactor.callFromThread, events=events,
                      writer=PoolRunner(reactor, 1, "dockertw-container-writer"),
                      reader=PoolRunner(reactor, 2, "dockertw-container-reader"),
                      runtimes=runtimes, cgroup_version=cgroup_version, reactor=reactor,
                      runc=runc, default_ulimits=default_ulimits, default_log=default_log,
                      cgroup_parent=cgroup_parent,
                      preparer=PoolRunner(reactor, 2, "dockertw-container-prepare"),
                      machine_memory=machine_memory, volumes=volumes, networks=networks,
                      keeper=keeper)
        if keeper is not None:
            for container_id in previous.adopted:
                service.networking.restore(store.get(container_id))
            previous.adopt_into(service.runs, store, keeper.client)
        reactor.addSystemEventTrigger("before", "shutdown", service.shutdown)
        reactor.callWhenRunning(service._resume, store.all())
        return service

    def _resume(self, containers: list[Container]) -> None:
        """At daemon start: restart by policy, remove the stopped ``--rm`` containers."""
        for container in containers:
            if container.host_config.get("AutoRemove") and not container.running:
                self._auto_remove(container.id).addErrback(
                    lambda failure: _log.failure("auto-remove at start", failure))
        self.runs.start_by_policies(
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
        for container_id in self.runs.active_ids():
            try:
                pinned.extend(self._images.image_chain(self._store.get(container_id).image_id))
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
        for point in container.points():
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
        # As Docker, a container of no image at all (a build FROM scratch makes them).
        image = self._images.get(reference) if reference else None
        config = dict(request.config)
        if image is not None:
            configs.merge_image_config(config, image.config.get("config") or {})
        if request.host_config.get("NetworkMode") == "host" and not config.get("Hostname"):
            config["Hostname"] = socket.gethostname()
        container_id = generate_id()
        config = configs.fill_config(config, container_id)
        runtime = self.runtimes.resolve(request.host_config.get("Runtime"))
        host = configs.fill_host_config(request.host_config, request.networking,
                                        runtime=runtime.name,
                                        cgroup_version=self._cgroup_version,
                                        hostname=str(request.config.get("Hostname") or ""),
                                        default_ulimits=self._default_ulimits,
                                        default_log=self._default_log)
        adapt_shared_modes(host, self._id_of)
        container_name = self._name_for(name, container_id)
        network_settings = self.networking.create_settings(host, config, request.networking)
        self.networking.normalize_links(host, container_name)
        path, args = configs.entrypoint_and_args(config)
        points = self._mount_points(request.host_config, config)
        log_path = self._store.root / container_id / f"{container_id}-json.log"
        container = Container(id=container_id, name=container_name,
                              created_ns=time.time_ns(), path=path, args=args,
                              config=config, host_config=host,
                              image_id=image.id if image is not None else "",
                              log_path=str(log_path),
                              mount_points=[point.to_json() for point in points],
                              network_settings=network_settings)
        try:
            self._store.add(container)
        except BaseException:
            self._drop_anonymous(points)
            raise
        self._emit(container, "create")
        return {"Id": container_id, "Warnings": []}

    def _id_of(self, name: str) -> str | None:
        """The ID of the container ``name`` names (``None``: none does)."""
        try:
            return self._store.get(name).id
        except DockerError:
            return None

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
            for point in source.points():
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
        """``GET /containers/{name}/json``; without ``size`` from memory, the document
        shared until the container changes (see :mod:`~.shown`): do not change it."""
        if size:  # the sizes are measured on disk
            return self._reader(lambda: self._inspect_sized(name))
        return maybeDeferred(self._inspect_shared, name)

    def _inspect_shared(self, name: str) -> dict[str, Any]:
        container = self._store.get(name)
        execs = tuple(self.execs.running_ids(container.id))
        return self._shown.document(container, execs,
                                    lambda: self._document(container, execs))

    def _inspect_sized(self, name: str) -> dict[str, Any]:
        container = self._store.get(name)
        return self._document(container, tuple(self.execs.running_ids(container.id)),
                              self._sizes(container))

    @staticmethod
    def _document(container: Container, execs: tuple[str, ...],
                  sizes: Sizes | None = None) -> dict[str, Any]:
        shown = container.inspect(sizes)
        shown["ExecIDs"] = list(execs) or None
        return shown

    def _sizes(self, container: Container) -> Sizes:
        """The writable layer's size and the root filesystem's (image included)."""
        writable = tree_size(self._parts.upper(container))
        return writable, writable + self._image_size(container)

    def _image_size(self, container: Container) -> int:
        try:
            return self._images.get(container.image_id).size
        except DockerError:
            return 0

    def list_containers(self, options: ListOptions) -> Deferred[list[dict[str, Any]]]:
        """``GET /containers/json``: summaries, newest first; without ``size`` each
        shared until its container changes (see :mod:`~.shown`): do not change them."""
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
        links = self._link_names()
        if options.size:
            return [self._with_links(c.summary(self._shown_image(c, shown), self._sizes(c),
                                               now), links) for c in chosen]
        return [self._item(c, self._shown_image(c, shown), now, links) for c in chosen]

    def _item(self, container: Container, image: str, now: int,
              links: dict[str, list[str]]) -> dict[str, Any]:
        """The list item of ``container``, made again when what it shows changed."""
        linked = tuple(links.get(container.name, ()))
        return self._shown.item(
            container, (image, container.status_text(now), linked),
            lambda: self._with_links(container.summary(image, None, now), links))

    @staticmethod
    def _with_links(item: dict[str, Any], links: dict[str, list[str]]) -> dict[str, Any]:
        item["Names"] += links.get(item["Names"][0], [])
        return item

    def _link_names(self) -> dict[str, list[str]]:
        """Legacy links name their targets too: ``/parent/alias`` by target name."""
        names: dict[str, list[str]] = {}
        for container in self._store.all():
            for link in container.host_config.get("Links") or ():
                target, _, path = str(link).partition(":")
                names.setdefault(target, []).append(path)
        return names

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
        """``DELETE /containers/{name}``; ``force`` kills a running container first;
        ``link`` removes the legacy link ``parent/alias`` instead."""
        if link:
            return self._writer(lambda: self._remove_link(name))
        return ensureDeferred(self._remove_async(name, force, volumes))

    def _remove_link(self, name: str) -> None:
        parent_name, _, alias = name.strip("/").rpartition("/")
        if not parent_name:
            raise InvalidParameter("Conflict, cannot remove the default link name of the "
                                   "container")
        parent = self._store.get(parent_name)
        links = [link for link in parent.host_config.get("Links") or ()
                 if not str(link).endswith(f"{parent.name}/{alias}")]
        if len(links) == len(parent.host_config.get("Links") or ()):
            raise NotFound(f"Could not find link {name}")
        self._store.save_host_config(parent.id, {**parent.host_config,
                                                 "Links": links or None})

    async def _remove_async(self, name: str, force: bool, volumes: bool = False) -> None:
        container = await self._reader(lambda: self._store.get(name))
        await self.runs.kill_for_removal(container, force)
        removed = await self._writer(lambda: self._remove(container.id, volumes))
        self.runs.removed(removed.id, removed.state)
        self.execs.forget(removed.id)

    def _auto_remove(self, container_id: str) -> Deferred[None]:
        return ensureDeferred(self._remove_async(container_id, force=False, volumes=True))

    def _remove(self, name: str, volumes: bool = False) -> Container:
        container = self._store.get(name)
        bundles.release_rootfs(self._store.root / container.id)
        container = self._store.remove(container.id)
        self._emit(container, "destroy")
        if volumes:
            self._drop_anonymous(container.points())
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
        self._call(self.networking.renamed, container.id, new_name)
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
            await self.runs.apply_limits(updated)
        self._emit(updated, "update")
        return {"Warnings": None}

    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]:
        """``POST /containers/prune``: ``{"ContainersDeleted": [...] | None, ...}``."""
        listing.check_prune_filters(filters)
        return self._prune_guard.run(lambda: self._writer(lambda: self._prune(filters)))

    def _prune(self, filters: Filters) -> dict[str, Any]:
        """Remove the chosen stopped containers; the space of their writable layers is
        what is reclaimed (moby's ``SpaceReclaimed``)."""
        chosen = listing.prune_matches(filters)
        deleted, reclaimed = [], 0
        for container in self._store.all():
            if chosen(container) and not container.running \
                    and not self.runs.is_active(container.id):
                size = tree_size(self._parts.upper(container))
                try:
                    self._remove(container.id)
                except NotFound:
                    continue
                self._call(self.runs.removed, container.id, container.state)
                self._call(self.execs.forget, container.id)
                deleted.append(container.id)
                reclaimed += size
        self._call(self._events.emit, "container", "prune", "", reclaimed=str(reclaimed))
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def shutdown(self) -> Deferred[Any] | None:
        """Kill every running container and wait for its clean-up (daemon shutdown)."""
        return self.runs.shutdown()

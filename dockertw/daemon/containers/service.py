"""The container service: what the container router calls, in Docker's shapes.

Writes (create, remove, rename, prune) run one after another in a single worker
thread, reads in a small pool; events are published on the bus from the reactor
thread, as the image service does.  Containers run under ``runc`` (see
:mod:`dockertw.daemon.containers.running`): start, exit, wait, kill, stop, restart and
logs live on the reactor thread; mounts and record writes go to the writer thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import attrs
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger

from dockertw.daemon.containers import bundle as bundles
from dockertw.daemon.containers import config as configs
from dockertw.daemon.containers import listing
from dockertw.daemon.containers.names import check_name, generate_id, random_name
from dockertw.daemon.containers.record import Container, State
from dockertw.daemon.containers.running import Attachment, LogListener, Running
from dockertw.daemon.containers.store import ContainerStore
from dockertw.daemon.events import Event, EventBus
from dockertw.daemon.images.store import ImageStore, ImageUser
from dockertw.daemon.jsonlog import JSONLogFile, LogEntry, decode_entry
from dockertw.daemon.signals import parse_signal
from dockertw.daemon.workers import OneAtATime, PoolRunner, Runner, WorkerReactor
from dockertw.errdefs import (
    Conflict,
    DockerError,
    InvalidParameter,
    NotFound,
    NotModified,
    System,
)
from dockertw.filters import Filters
from dockertw.runtime.reaper import ExitWatcher
from dockertw.runtime.runc import Runc, RuncError, Stdio

__all__ = ["ContainerService", "CreateOptions", "ListOptions", "LogOptions"]

_log = Logger()
_OUTPUT_GRACE = 2.0  # seconds to drain the pipes after the init exited
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


@attrs.frozen
class LogOptions:
    """The query of ``GET /containers/{name}/logs`` (times in nanoseconds)."""

    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    since_ns: int = 0
    until_ns: int | None = None
    tail: int | None = None


def _exit_code_for(message: str) -> int:
    """Docker's exit code for a start failure: 127 not found, 126 not executable."""
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 128


def wait_result(state: State) -> dict[str, Any]:
    error = {"Message": state.error} if state.error else None
    return {"Error": error, "StatusCode": state.exit_code}


def _read_log(path: Path, limit: int | None, options: LogOptions) -> list[LogEntry]:
    """The log's entries written in its first ``limit`` bytes, filtered as asked."""
    try:
        with open(path, "rb") as file:
            data = file.read() if limit is None else file.read(limit)
    except FileNotFoundError:
        return []
    streams = {name for name, wanted in (("stdout", options.stdout),
                                          ("stderr", options.stderr)) if wanted}
    found = []
    for line in data.splitlines(keepends=True):
        if not line.strip():
            continue
        entry = decode_entry(line)
        if entry.stream not in streams or entry.time_ns <= options.since_ns:
            continue
        if options.until_ns is not None and entry.time_ns > options.until_ns:
            continue
        found.append(entry)
    if options.tail is not None:
        found = found[len(found) - options.tail:] if options.tail > 0 else []
    return found


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
    """Container records for the API: create, list, inspect, remove, rename, prune."""

    def __init__(self, store: ContainerStore, images: ImageStore, *,
                 call_from_thread: Callable[..., Any], events: EventBus, writer: Runner,
                 reader: Runner, runtime: str = "runc", cgroup_version: str = "2",
                 reactor: Any = None, runc: Runc | None = None) -> None:
        self._store = store
        self._images = images
        self._call = call_from_thread
        self._events = events
        self._writer = writer
        self._reader = reader
        self._runtime = runtime
        self._cgroup_version = cgroup_version
        self._prune_guard = OneAtATime("a prune operation is already running")
        self._count = store.count()
        self._reactor = reactor
        self._runc = runc
        self._running: dict[str, Running] = {}
        self._starting: set[str] = set()
        self._attachments: dict[str, list[Attachment]] = {}
        self._waiters: dict[str, list[tuple[str, Deferred[dict[str, Any]]]]] = {}
        images.image_users = self.image_users
        images.pinned_layers = self.pinned_layers

    @classmethod
    def open(cls, state_root: Path, images: ImageStore, events: EventBus,
             reactor: WorkerReactor, *, runtime: str = "runc",
             cgroup_version: str = "2") -> ContainerService:
        """Load the records under ``state_root`` (blocking: call it at start-up)."""
        store = ContainerStore.open(state_root)
        for container in store.all():  # the daemon stopped while it ran: it is gone now
            if container.running:
                bundles.release_rootfs(store.root / container.id)
                store.save_state(container.id, attrs.evolve(
                    container.state, running=False, pid=0, exit_code=255,
                    finished_ns=time.time_ns()))
        service = cls(store, images,
                      call_from_thread=reactor.callFromThread, events=events,
                      writer=PoolRunner(reactor, 1, "dockertw-container-writer"),
                      reader=PoolRunner(reactor, 2, "dockertw-container-reader"),
                      runtime=runtime, cgroup_version=cgroup_version, reactor=reactor,
                      runc=Runc(cast(Any, reactor), state_root / "runc", runtime))
        reactor.addSystemEventTrigger("before", "shutdown", service.shutdown)
        return service

    # -- figures and hooks -------------------------------------------------------------

    def container_count(self) -> int:
        """How many containers exist (all stopped: none can run yet)."""
        return self._count

    def pinned_layers(self) -> list[str]:
        """The image store's hook: layers of running containers' images stay."""
        pinned: list[str] = []
        for container_id in [*self._running, *self._starting]:
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
        self._call(self._published, event)

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
        log_path = self._store.root / container_id / f"{container_id}-json.log"
        container = Container(id=container_id, name=self._name_for(name, container_id),
                              created_ns=time.time_ns(), path=path, args=args,
                              config=config, host_config=host, image_id=image.id,
                              log_path=str(log_path))
        self._store.add(container)
        self._emit(container, "create")
        return {"Id": container_id, "Warnings": []}

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
        return container.inspect(self._image_size(container) if size else None)

    def _image_size(self, container: Container) -> int:
        try:
            return self._images.get(container.image_id).size
        except DockerError:
            return 0

    def list_containers(self, options: ListOptions) -> Deferred[list[dict[str, Any]]]:
        """``GET /containers/json``: summaries, newest first."""
        listing.check_list_filters(options.filters)
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
        return [c.summary(self._shown_image(c),
                          self._image_size(c) if options.size else None, now)
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

    def _shown_image(self, container: Container) -> str:
        """The reference used at create, or the image ID when it now names another."""
        reference = str(container.config.get("Image") or "")
        try:
            if self._images.get(reference).id == container.image_id:
                return reference
        except DockerError:
            pass
        return container.image_id

    # -- writes ------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False, volumes: bool = False,
               link: bool = False) -> Deferred[None]:
        """``DELETE /containers/{name}``; ``force`` kills a running container first."""
        if link:
            raise InvalidParameter("links are not supported by dockertw")
        return ensureDeferred(self._remove_async(name, force))

    async def _remove_async(self, name: str, force: bool) -> None:
        container = await self._reader(lambda: self._store.get(name))
        running = self._running.get(container.id)
        if running is not None or container.id in self._starting:
            if not force:
                raise Conflict(f"You cannot remove a running container {container.id}. "
                               "Stop the container before attempting removal or force "
                               "remove")
            if running is not None:
                running.removing = True
                self._signal(running, signal.SIGKILL)
                await _chained(running.finished)
        removed = await self._writer(lambda: self._remove(container.id))
        self._removed(removed.id, removed.state)
        for attachment in self._attachments.pop(container.id, []):
            attachment.end()

    def _remove(self, name: str) -> Container:
        container = self._store.get(name)
        bundles.release_rootfs(self._store.root / container.id)
        container = self._store.remove(container.id)
        self._emit(container, "destroy")
        return container

    def _removed(self, container_id: str, state: State) -> None:
        """Answer every waiter of a removed container (from the reactor thread)."""
        for _, waiter in self._waiters.pop(container_id, []):
            waiter.callback(wait_result(state))

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

    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]:
        """``POST /containers/prune``: ``{"ContainersDeleted": [...] | None, ...}``."""
        listing.check_prune_filters(filters)
        return self._prune_guard.run(lambda: self._writer(lambda: self._prune(filters)))

    def _prune(self, filters: Filters) -> dict[str, Any]:
        chosen = listing.prune_matches(filters)
        deleted = []
        for container in self._store.all():
            if chosen(container) and not container.running \
                    and container.id not in self._starting:
                try:
                    self._remove(container.id)
                except NotFound:
                    continue
                self._call(self._removed, container.id, container.state)
                deleted.append(container.id)
        self._call(self._events.emit, "container", "prune", "", reclaimed="0")
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": 0}

    # -- running -----------------------------------------------------------------------

    def _runc_or_fail(self) -> Runc:
        if self._runc is None or self._reactor is None:
            raise System("this engine cannot run containers")
        return self._runc

    def start(self, name: str) -> Deferred[bool]:
        """``POST /containers/{name}/start``: ``False`` when it already runs (304)."""
        return ensureDeferred(self._start(name))

    async def _start(self, name: str) -> bool:
        container = await self._reader(lambda: self._store.get(name))
        if container.id in self._running or container.id in self._starting:
            return False
        self._starting.add(container.id)
        try:
            await self._launch(container)
        finally:
            self._starting.discard(container.id)
        return True

    def _prepare(self, container: Container) -> Path:
        """Mount the root filesystem and write the bundle (writer thread)."""
        image = self._images.get(container.image_id)
        layers = ([layer.path for layer in self._images.layer_chain(image.chain[-1])]
                  if image.chain else [])
        return bundles.prepare_bundle(container, self._store.root / container.id, layers)

    async def _launch(self, container: Container) -> None:
        runc = self._runc_or_fail()
        container_id = container.id
        directory = self._store.root / container_id
        try:
            bundle = await self._writer(lambda: self._prepare(container))
        except DockerError as error:
            await self._start_failed(container, str(error), None)
            raise
        except OSError as error:
            await self._start_failed(container, str(error), None)
            raise System(str(error)) from None
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            pid = await runc.create(container_id, bundle, Stdio(stdin_r, stdout_w, stderr_w))
        except RuncError as error:
            for fd in (stdin_w, stdout_r, stderr_r):
                os.close(fd)
            message = f"OCI runtime create failed: {error}: unknown"
            code = _exit_code_for(str(error))
            await self._start_failed(container, message, bundle, code)
            if code in (126, 127):
                raise InvalidParameter(message) from None
            raise System(message) from None
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
        log = JSONLogFile(Path(container.log_path or directory / f"{container_id}-json.log"))
        running = Running(self._reactor, ExitWatcher(self._reactor, pid), stdin_w,
                          stdout_r, stderr_r, log)
        if not container.config.get("OpenStdin"):
            os.close(stdin_w)
            running.stdin = None
        self._running[container_id] = running
        for attachment in self._attachments.pop(container_id, []):
            if not attachment.detached:
                running.attachments.append(attachment)
                attachment.join(running)
        started: Deferred[None] = Deferred()
        ensureDeferred(self._watch(container, bundle, running, started))
        try:
            await runc.start(container_id, bundle)
        except RuncError as error:
            self._signal(running, signal.SIGKILL)
            started.callback(None)
            await _chained(running.finished)
            message = f"OCI runtime start failed: {error}: unknown"
            await self._writer(lambda: self._store.save_state(container_id, attrs.evolve(
                self._store.get(container_id).state, error=message, exit_code=128)))
            raise System(message) from None
        state = State(running=True, pid=pid, started_ns=time.time_ns())
        try:
            saved = await self._writer(lambda: self._store.save_state(container_id, state))
            self._emit(saved, "start")
        finally:
            started.callback(None)

    async def _start_failed(self, container: Container, message: str,
                            bundle: Path | None, code: int = 128) -> None:
        if bundle is not None:
            with contextlib.suppress(RuncError):
                await self._runc_or_fail().delete(container.id, bundle, force=True)

        def record() -> Container:
            bundles.release_rootfs(self._store.root / container.id)
            current = self._store.get(container.id)
            return self._store.save_state(container.id, attrs.evolve(
                current.state, error=message, exit_code=code))

        saved = await self._writer(record)
        for attachment in self._attachments.pop(container.id, []):
            attachment.end()
        for _condition, waiter in self._take_waiters(container.id, ("not-running",
                                                                    "next-exit")):
            waiter.callback(wait_result(saved.state))

    async def _watch(self, container: Container, bundle: Path, running: Running,
                     started: Deferred[None]) -> None:
        """Wait for the init to exit, then clean up and record the exit."""
        code = await running.watcher.exited
        drained = running.ended()
        timer = self._reactor.callLater(_OUTPUT_GRACE, drained.cancel)
        with contextlib.suppress(CancelledError):
            await drained
        if timer.active():
            timer.cancel()
        await started
        try:
            await self._finish_run(container, bundle, running, code)
        finally:
            self._running.pop(container.id, None)
            if not running.finished.called:
                running.finished.callback(code)

    async def _finish_run(self, container: Container, bundle: Path, running: Running,
                          code: int) -> None:
        running.close()
        try:
            await self._runc_or_fail().delete(container.id, bundle, force=True)
        except RuncError as error:
            _log.warn("runc delete {id}: {error}", id=container.id, error=str(error))
        container_id = container.id

        def record() -> Container:
            bundles.release_rootfs(self._store.root / container_id)
            current = self._store.get(container_id)
            return self._store.save_state(container_id, attrs.evolve(
                current.state, running=False, pid=0, exit_code=code,
                finished_ns=time.time_ns()))

        try:
            saved = await self._writer(record)
        except NotFound:
            saved = container
        self._running.pop(container_id, None)
        for attachment in running.attachments:
            attachment.end()
        self._emit(saved, "die", exitCode=str(code))
        for _condition, waiter in self._take_waiters(container_id, ("not-running",
                                                                   "next-exit")):
            waiter.callback(wait_result(saved.state))
        running.finished.callback(code)
        if saved.host_config.get("AutoRemove") and not running.removing:
            try:
                await self._remove_async(container_id, force=False)
            except DockerError as error:
                _log.warn("auto-remove {id}: {error}", id=container_id, error=str(error))

    def _take_waiters(self, container_id: str, conditions: tuple[str, ...]
                      ) -> list[tuple[str, Deferred[dict[str, Any]]]]:
        waiters = self._waiters.get(container_id, [])
        taken = [w for w in waiters if w[0] in conditions]
        self._waiters[container_id] = [w for w in waiters if w[0] not in conditions]
        return taken

    def _signal(self, running: Running, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            running.watcher.signal(signum)

    # -- attach ------------------------------------------------------------------------

    def attach(self, name: str, stdin: bool, stdout: bool, stderr: bool
               ) -> Deferred[tuple[Attachment, bool]]:
        """``POST /containers/{name}/attach`` (``stream=1``): the attachment and whether
        the container has a TTY.  Output flows from the current or the next run."""
        found = self._reader(lambda: self._store.get(name))

        def attach(container: Container) -> tuple[Attachment, bool]:
            streams = {s for s, wanted in (("stdout", stdout), ("stderr", stderr))
                       if wanted}
            config = container.config
            attachment = Attachment(streams, stdin and bool(config.get("OpenStdin")),
                                    bool(config.get("StdinOnce")))
            running = self._running.get(container.id)
            if running is not None:
                running.attachments.append(attachment)
                attachment.join(running)
            else:
                self._attachments.setdefault(container.id, []).append(attachment)
            self._emit(container, "attach")
            return attachment, bool(config.get("Tty"))

        return found.addCallback(attach)

    # -- wait --------------------------------------------------------------------------

    def wait(self, name: str, condition: str,
             ready: Callable[[], None]) -> Deferred[dict[str, Any]]:
        """``POST /containers/{name}/wait``; ``ready`` is called once the container is
        found (the router flushes the headers then)."""
        if condition not in WAIT_CONDITIONS:
            condition = "not-running"
        found = self._reader(lambda: self._store.get(name))

        def register(container: Container) -> Any:
            ready()
            active = container.id in self._running or container.id in self._starting
            if condition == "not-running" and not active:
                return wait_result(container.state)
            waiters = self._waiters.setdefault(container.id, [])

            def cancel(waiter: Deferred[dict[str, Any]]) -> None:
                entry = (condition, waiter)
                if entry in waiters:
                    waiters.remove(entry)

            waiter: Deferred[dict[str, Any]] = Deferred(cancel)
            waiters.append((condition, waiter))
            return waiter

        return found.addCallback(register)

    # -- kill, stop, restart -----------------------------------------------------------

    def kill(self, name: str, raw_signal: str = "") -> Deferred[None]:
        """``POST /containers/{name}/kill?signal=`` (default ``KILL``)."""
        signum = parse_signal(raw_signal) if raw_signal else int(signal.SIGKILL)
        return ensureDeferred(self._kill(name, signum))

    async def _kill(self, name: str, signum: int) -> None:
        container = await self._reader(lambda: self._store.get(name))
        running = self._running.get(container.id)
        if running is None:
            raise Conflict(f"Cannot kill container: {name}: Container {container.id} "
                           "is not running")
        self._signal(running, signum)
        self._emit(container, "kill", signal=str(signum))

    def stop(self, name: str, timeout: int | None = None) -> Deferred[None]:
        """``POST /containers/{name}/stop?t=``: StopSignal, then SIGKILL after ``t`` s."""
        return ensureDeferred(self._stop(name, timeout))

    async def _stop(self, name: str, timeout: int | None) -> None:
        container = await self._reader(lambda: self._store.get(name))
        running = self._running.get(container.id)
        if running is None:
            raise NotModified("Container already stopped")
        await self._stop_running(container, running, timeout)
        self._emit(container, "stop")

    async def _stop_running(self, container: Container, running: Running,
                            timeout: int | None) -> None:
        if timeout is None:
            configured = container.config.get("StopTimeout")
            timeout = 10 if configured is None else int(configured)
        signum = parse_signal(str(container.config.get("StopSignal") or "SIGTERM"))
        running.stopping = True
        self._signal(running, signum)
        self._emit(container, "kill", signal=str(signum))
        if timeout >= 0:
            finished = _chained(running.finished)
            timer = self._reactor.callLater(timeout, finished.cancel)
            try:
                await finished
                return
            except CancelledError:
                pass
            finally:
                if timer.active():
                    timer.cancel()
            self._signal(running, signal.SIGKILL)
            self._emit(container, "kill", signal=str(int(signal.SIGKILL)))
        await _chained(running.finished)

    def restart(self, name: str, timeout: int | None = None) -> Deferred[None]:
        """``POST /containers/{name}/restart?t=``: stop when running, then start."""
        return ensureDeferred(self._restart(name, timeout))

    async def _restart(self, name: str, timeout: int | None) -> None:
        container = await self._reader(lambda: self._store.get(name))
        running = self._running.get(container.id)
        if running is not None:
            await self._stop_running(container, running, timeout)
        await self._start(container.id)
        self._emit(container, "restart")

    # -- logs --------------------------------------------------------------------------

    def logs(self, name: str, options: LogOptions,
             send: Callable[[LogEntry], None]) -> Deferred[bool]:
        """Send the kept log entries, then (``follow``) new ones until the container
        stops; answers whether it has a TTY.  Cancelling stops following."""
        if not (options.stdout or options.stderr):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        return ensureDeferred(self._logs(name, options, send))

    async def _logs(self, name: str, options: LogOptions,
                    send: Callable[[LogEntry], None]) -> bool:
        container = await self._reader(lambda: self._store.get(name))
        path = Path(container.log_path)
        running = self._running.get(container.id) if options.follow else None
        if running is None:
            for entry in await self._reader(lambda: _read_log(path, None, options)):
                send(entry)
            return bool(container.config.get("Tty"))
        pending: list[LogEntry] = []
        streams = {"stdout"} if not options.stderr else (
            {"stderr"} if not options.stdout else {"stdout", "stderr"})

        def listener(entry: LogEntry) -> None:
            if entry.stream in streams:
                pending.append(entry)

        follow: LogListener = listener
        running.listeners.append(follow)
        limit = running.log.size
        try:
            for entry in await self._reader(lambda: _read_log(path, limit, options)):
                send(entry)
            for entry in pending:
                send(entry)

            def live(entry: LogEntry) -> None:
                if entry.stream in streams:
                    send(entry)

            running.listeners.remove(follow)
            follow = live
            running.listeners.append(follow)
            await _chained(running.finished)
        finally:
            if follow in running.listeners:
                running.listeners.remove(follow)
        return bool(container.config.get("Tty"))

    # -- shutdown ----------------------------------------------------------------------

    def shutdown(self) -> Deferred[Any] | None:
        """Kill every running container and wait for its clean-up (daemon shutdown)."""
        if not self._running:
            return None
        waits = []
        for running in list(self._running.values()):
            running.removing = True
            self._signal(running, signal.SIGKILL)
            waits.append(_chained(running.finished))
        from twisted.internet.defer import DeferredList
        return DeferredList(waits, consumeErrors=True)


def _chained(deferred: Deferred[int]) -> Deferred[int]:
    """A new Deferred that fires with ``deferred`` (cancelling it leaves ``deferred``)."""
    copy: Deferred[int] = Deferred()
    if deferred.called:
        copy.callback(cast(int, deferred.result))
    else:
        def fire(result: int) -> int:
            if not copy.called:
                copy.callback(result)
            return result
        deferred.addCallback(fire)
    return copy

"""Running containers: start, exit, wait, attach, kill, stop, restart, logs.

Everything here lives on the reactor thread; mounts and record writes go to the
container writer thread, record reads to the reader pool.  The container's init is a
child of the daemon (a subreaper), or with ``--live-restore`` of the one holder
process, and its stdio pipes are held by the daemon: no helper process runs per
container (see :mod:`~.running.running` and :mod:`~.running.keeping`).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredList, ensureDeferred

from dockertw.daemon.containers.records.networking import after_stop
from dockertw.daemon.containers.records.record import Container, State
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running import bundle as bundles
from dockertw.daemon.containers.running.keeping import (
    DaemonKeeper,
    Keeper,
    container_key,
    log_target,
)
from dockertw.daemon.containers.running.logs import LogOptions, LogSink, serve_log
from dockertw.daemon.containers.running.mountsetup import points_to_prepare, prepare_mounts
from dockertw.daemon.containers.running.namespaces import namespaces_of
from dockertw.daemon.containers.running.networking import ContainerNetworking, StartPlan
from dockertw.daemon.containers.running.restarts import (
    RestartPolicy,
    RestartSchedule,
    should_restart,
)
from dockertw.daemon.containers.running.running import Attachment, ExitWatch, Running, chained
from dockertw.daemon.containers.running.stdio import (
    ContainerIO,
    console_directory,
    create_container,
)
from dockertw.daemon.images.store import ImageStore
from dockertw.daemon.jsonlog import DiscardLog, JSONLogFile, LogEntry
from dockertw.daemon.logconfig import check_readable, open_log
from dockertw.daemon.signals import parse_signal
from dockertw.daemon.workers import Runner
from dockertw.errdefs import (
    Conflict,
    DockerError,
    InvalidParameter,
    NotFound,
    NotModified,
    System,
    from_os_error,
)
from dockertw.loglevel import Logger
from dockertw.runtime.runc import Runc, RuncError
from dockertw.runtime.spec import limits
from dockertw.streams.detachkeys import DEFAULT_DETACH_KEYS

__all__ = ["Lifecycle", "RunWatcher", "wait_result", "WAIT_CONDITIONS"]

_log = Logger()
_KILL_WAIT = 10.0  # seconds a SIGKILL waits for the exit before answering (moby)
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
_Waiter = tuple[str, Deferred[dict[str, Any]]]


class Emit(Protocol):
    """Publishes a container event (``action`` with extra attributes)."""

    def __call__(self, container: Container, action: str, **extra: str) -> None: ...


class RunWatcher(Protocol):
    """Follows runs: started (recorded), ended (before the exit is recorded), paused
    or resumed (the health monitor)."""

    def started(self, container: Container) -> None: ...
    def ended(self, container_id: str) -> None: ...
    def paused(self, container: Container, paused: bool) -> None: ...


class _NoWatcher:
    def started(self, container: Container) -> None:
        pass

    def ended(self, container_id: str) -> None:
        pass

    def paused(self, container: Container, paused: bool) -> None:
        pass


def _exit_code_for(message: str) -> int:
    """Docker's exit code for a start failure: 127 not found, 126 not executable."""
    lowered = message.lower()
    if "not found" in lowered or "no such file" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 128


def _ended_state(container: Container, code: int, by_user: bool,
                 oom_killed: bool = False) -> State:
    """The state after a run ended with ``code``: stopped, or waiting for a restart."""
    state = container.state.stopped(code, time.time_ns(), oom_killed)
    policy = RestartPolicy.of(container.host_config)
    if by_user or not should_restart(policy, code, state.manually_stopped,
                                     state.restart_count):
        return state
    return attrs.evolve(state, running=True, restarting=True,
                        restart_count=state.restart_count + 1)


def _no_timer(delay: float, call: Callable[[], None]) -> Any:
    raise System("this engine cannot restart containers")


def wait_result(state: State) -> dict[str, Any]:
    error = {"Message": state.error} if state.error else None
    return {"Error": error, "StatusCode": state.exit_code}


class Lifecycle:
    """The runs of containers: which are running or starting, and their clients."""

    def __init__(self, store: ContainerStore, images: ImageStore, *, emit: Emit,
                 writer: Runner, reader: Runner, reactor: Any, runc: Runc | None,
                 auto_remove: Callable[[str], Awaitable[None]],
                 cgroup_parent: str = "dockertw", preparer: Runner | None = None,
                 keeper: Keeper | None = None,
                 networking: ContainerNetworking | None = None) -> None:
        self._store = store
        self._images = images
        self._emit = emit
        self._writer = writer
        self._reader = reader
        self._reactor = reactor
        self._runc = runc
        self._auto_remove = auto_remove
        self._cgroup_parent = cgroup_parent
        self._preparer = preparer or writer  # mounts and bundles, several at once
        self.keeper: Keeper = keeper or DaemonKeeper(reactor)
        self.networking = networking or ContainerNetworking(store, None, writer=writer,
                                                            reader=reader)
        self._running: dict[str, Running] = {}
        self._starting: set[str] = set()
        self._attachments: dict[str, list[Attachment]] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        self._paused: set[str] = set()
        self._offline_copies: dict[str, int] = {}
        self._copy_waiters: dict[str, list[Deferred[None]]] = {}
        self._restarts = RestartSchedule(reactor.callLater if reactor else _no_timer)
        # whether the kernel killed a process of the container for memory (blocking)
        self.oom_killed: Callable[[Container], bool] = lambda container: False
        self.watcher: RunWatcher = _NoWatcher()

    def is_active(self, container_id: str) -> bool:
        """Whether the container runs, is being started or waits to be restarted."""
        return (container_id in self._running or container_id in self._starting
                or self._restarts.is_pending(container_id))

    def hold_stopped(self, container_id: str) -> Callable[[], None] | None:
        """Keep a stopped container from starting while a copy writes into its upper
        directory; answers the release (``None``, holding nothing, when it is active)."""
        if self.is_active(container_id):
            return None
        self._offline_copies[container_id] = self._offline_copies.get(container_id, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._offline_copies.pop(container_id) - 1
            if left:
                self._offline_copies[container_id] = left
                return
            for waiter in self._copy_waiters.pop(container_id, []):
                waiter.callback(None)

        return release

    async def _offline_copies_done(self, container_id: str) -> None:
        while container_id in self._offline_copies:
            waiter: Deferred[None] = Deferred()
            self._copy_waiters.setdefault(container_id, []).append(waiter)
            await waiter

    def run_of(self, container_id: str) -> Running | None:
        """The container's current run (``None`` unless it runs)."""
        return self._running.get(container_id)

    def active_ids(self) -> list[str]:
        return [*self._running, *self._starting]

    async def kill_for_removal(self, container: Container, force: bool) -> None:
        """Make way for removing ``container``: 409 when active unless ``force``; a
        copy into its upper directory finishes first."""
        await self._offline_copies_done(container.id)
        running = self._running.get(container.id)
        if self._restarts.is_pending(container.id):
            if not force:
                raise Conflict(f"You cannot remove a restarting container {container.id}. "
                               "Stop the container before attempting removal or force "
                               "remove")
            self._restarts.cancel(container.id)
        if running is None and container.id not in self._starting:
            return
        if not force:
            raise Conflict(f"You cannot remove a running container {container.id}. "
                           "Stop the container before attempting removal or force "
                           "remove")
        if running is not None:
            running.removing = True
            self._signal(running, signal.SIGKILL)
            self._thaw(container.id)
            await chained(running.finished)

    def removed(self, container_id: str, state: State) -> None:
        """Answer every waiter and end every attachment of a removed container."""
        self._restarts.reset(container_id)
        for _, waiter in self._waiters.pop(container_id, []):
            waiter.callback(wait_result(state))
        for attachment in self._attachments.pop(container_id, []):
            attachment.end()

    def _update_state(self, container_id: str, fields: dict[str, Any] | None = None,
                      **changes: Any) -> Container:
        """Record changes of the container's state, and ``fields`` of its record
        (writer thread)."""
        current = self._store.get(container_id)
        return self._store.save_state(container_id, attrs.evolve(current.state, **changes),
                                      **(fields or {}))

    # -- start -------------------------------------------------------------------------

    def _runc_or_fail(self) -> Runc:
        if self._runc is None or self._reactor is None:
            raise System("this engine cannot run containers")
        return self._runc

    def start(self, name: str) -> Deferred[bool]:
        """``POST /containers/{name}/start``: ``False`` when it already runs (304)."""
        return ensureDeferred(self._start(name))

    async def _start(self, name: str, by_user: bool = True) -> bool:
        container = await self._reader(lambda: self._store.get(name))
        await self._offline_copies_done(container.id)
        if container.id in self._running or container.id in self._starting:
            return False
        reset: dict[str, Any] = {}
        if by_user:  # the user's start forgets the policy's restarts (moby resets them)
            self._restarts.reset(container.id)
            reset = {"restart_count": 0, "manually_stopped": False}
        self._starting.add(container.id)
        try:
            await self._launch(container, **reset)
        except DockerError:
            self._starting.discard(container.id)
            if container.host_config.get("AutoRemove"):  # as moby: a failed --rm goes
                await self._auto_remove_quietly(container.id)
            raise
        finally:
            self._starting.discard(container.id)
        return True

    async def _auto_remove_quietly(self, container_id: str) -> None:
        try:
            await self._auto_remove(container_id)
        except DockerError as error:
            _log.warn("auto-remove {id}: {error}", id=container_id, error=str(error))

    def _restart_by_policy(self, container_id: str) -> None:
        """Start a container its restart policy brings back (its delay is over)."""
        def failed(error: Any) -> None:
            _log.warn("restart {id}: {error}", id=container_id,
                      error=error.getErrorMessage())

        ensureDeferred(self._start(container_id, by_user=False)).addErrback(failed)

    def start_by_policies(self, containers: list[Container]) -> None:
        """At daemon start: start the stopped containers their policies bring back."""
        for container in containers:
            state = container.state
            if not state.running and state.started_ns and should_restart(
                    RestartPolicy.of(container.host_config), state.exit_code,
                    state.manually_stopped, state.restart_count):
                self._restart_by_policy(container.id)

    def _prepare(self, container: Container, plan: StartPlan) -> Path:
        """Mount the root filesystem and write the bundle (preparer thread)."""
        layers = self._images.image_layers(container.image_id)
        points = points_to_prepare(container)
        return bundles.prepare_bundle(container, self._store.root / container.id, layers,
                                      self._cgroup_parent,
                                      lambda rootfs: prepare_mounts(points, rootfs),
                                      namespaces_of(container, self._store), plan.setup)

    async def _launch(self, container: Container, **state: Any) -> None:
        """Prepare the bundle while the network comes up, then create and start one
        run (``runc run --detach``); ``state`` joins the recorded start."""
        container_id = container.id
        bundle, network_fields = await self._network_up(container)
        log = await self._open_log_or_fail(container, bundle)
        try:
            pid, stdio = await self._create_or_fail(container, bundle)
            watch = await self._keep_or_fail(container, bundle, pid, stdio)
        except BaseException:
            log.close()
            raise
        running = self._track(container, watch, stdio, log)
        started: Deferred[None] = Deferred()
        ensureDeferred(self._watch(container, bundle, running, started))
        try:
            saved = await self._writer(lambda: self._update_state(
                container_id, running=True, restarting=False, pid=pid, exit_code=0,
                error="", started_ns=time.time_ns(), oom_killed=False,
                fields=network_fields, **state))
            self.networking.emit_endpoints(saved, "connect")
            self._emit(saved, "start")
            self.watcher.started(saved)
        finally:
            if not started.called:
                started.callback(None)

    async def _network_up(self, container: Container) -> tuple[Path, dict[str, Any]]:
        """The bundle and the network stack (the record fields it gives), made at the
        same time; on failure of either, nothing of both is left and the start is
        recorded as failed."""
        try:
            plan = self.networking.plan(container)
        except DockerError as error:
            await self._start_failed(container, str(error), None)
            raise
        bundle = ensureDeferred(self._prepare_or_fail(container, plan))
        try:
            fields = await self.networking.setup(container, plan)
        except DockerError as error:
            with contextlib.suppress(DockerError):
                await bundle
            await self._start_failed(container, str(error), None)
            raise
        except BaseException:
            with contextlib.suppress(DockerError):
                await bundle
            await self._start_failed(container, "network set-up failed", None)
            raise
        try:
            return await bundle, fields
        except BaseException:
            await self.networking.teardown(container.id)
            raise

    async def _prepare_or_fail(self, container: Container, plan: StartPlan) -> Path:
        try:
            return await self._preparer(lambda: self._prepare(container, plan))
        except DockerError as error:
            await self._start_failed(container, str(error), None)
            raise
        except OSError as error:
            failure = from_os_error(error)
            await self._start_failed(container, str(failure), None)
            raise failure from None

    async def _create_or_fail(self, container: Container, bundle: Path
                              ) -> tuple[int, ContainerIO]:
        try:
            return await create_container(
                self._runc_or_fail(), self._reactor, container.id, bundle,
                tty=bool(container.config.get("Tty")),
                open_stdin=bool(container.config.get("OpenStdin")), start=True,
                console_dir=console_directory(self._store.root))
        except RuncError as error:
            message = f"OCI runtime create failed: {error}: unknown"
            code = _exit_code_for(str(error))
            await self._start_failed(container, message, bundle, code)
            if code in (126, 127):
                raise InvalidParameter(message) from None
            raise System(message) from None

    async def _keep_or_fail(self, container: Container, bundle: Path, pid: int,
                            stdio: ContainerIO) -> ExitWatch:
        """Hand the new run's process to the keeper (the daemon, or the holder)."""
        try:
            return await self.keeper.keep(
                container_key(container.id), pid, stdio,
                tty=bool(container.config.get("Tty")),
                log=log_target(container, self._log_path(container)))
        except (DockerError, OSError) as error:
            stdio.close()
            failure = error if isinstance(error, DockerError) else from_os_error(error)
            await self._start_failed(container, str(failure), bundle)
            raise failure from None

    def _log_path(self, container: Container) -> Path:
        return Path(container.log_path or
                    self._store.root / container.id / f"{container.id}-json.log")

    def _open_log(self, container: Container) -> JSONLogFile:
        def failed(error: OSError | None) -> None:
            if error is not None:
                _log.error("the log of {id} cannot be written, its output is dropped: "
                           "{error}", id=container.id, error=str(from_os_error(error)))
            else:
                _log.info("the log of {id} is written again", id=container.id)

        return open_log(self._log_path(container), container.host_config.get("LogConfig"),
                        failed)

    async def _open_log_or_fail(self, container: Container, bundle: Path) -> JSONLogFile:
        try:
            return self._open_log(container)
        except OSError as error:
            failure = from_os_error(error)
            await self._start_failed(container, str(failure), bundle)
            raise failure from None

    def _track(self, container: Container, watch: ExitWatch, stdio: ContainerIO,
               log: JSONLogFile) -> Running:
        """Hold the new run's process, stdio and log; join the waiting attachments."""
        running = Running(self._reactor, watch, stdio, log)
        if running.stdin is not None:
            key = container_key(container.id)
            running.stdin.on_closed = lambda: self.keeper.input_closed(key)
        self._running[container.id] = running
        for attachment in self._attachments.pop(container.id, []):
            if not attachment.detached:
                running.attachments.append(attachment)
                attachment.join(running)
        return running

    async def _start_failed(self, container: Container, message: str,
                            bundle: Path | None, code: int = 128) -> None:
        if bundle is not None:
            with contextlib.suppress(RuncError):
                await self._runc_or_fail().delete(container.id, bundle, force=True)
        await self.networking.teardown(container.id)

        def record() -> Container:
            bundles.release_rootfs(self._store.root / container.id)
            current = self._store.get(container.id)
            return self._update_state(
                container.id, running=False, restarting=False, pid=0, error=message,
                exit_code=code,
                fields={"network_settings": after_stop(current.network_settings)})

        saved = await self._writer(record)
        for attachment in self._attachments.pop(container.id, []):
            attachment.end()
        for _condition, waiter in self._take_waiters(container.id, ("not-running",
                                                                    "next-exit")):
            waiter.callback(wait_result(saved.state))

    async def _watch(self, container: Container, bundle: Path, running: Running,
                     started: Deferred[None]) -> None:
        """Wait for the init to exit, then clean up and record the exit."""
        code = await running.exit_code(self._reactor)
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
        container_id = container.id
        by_user = running.stopping or running.removing
        self.watcher.ended(container_id)
        oom = await self._reader(lambda: self.oom_killed(container))  # before runc delete

        def record() -> Container:
            bundles.release_rootfs(self._store.root / container_id)
            current = self._store.get(container_id)
            return self._store.save_state(
                container_id, _ended_state(current, code, by_user, oom),
                network_settings=after_stop(current.network_settings))

        deleted = ensureDeferred(self._delete_runtime_state(container_id, bundle))
        network = ensureDeferred(self.networking.teardown(container_id))
        try:  # the record is written while runc deletes its state and CNI its endpoints
            saved = await self._writer(record)
        except NotFound:
            saved = container
        finally:
            await deleted
            await network
            self.keeper.release(container_key(container_id))
        self.networking.emit_endpoints(saved, "disconnect")
        self._running.pop(container_id, None)
        self._paused.discard(container_id)
        for attachment in running.attachments:
            attachment.end()
        if oom:
            self._emit(saved, "oom")
        self._emit(saved, "die", exitCode=str(code))
        for _condition, waiter in self._take_waiters(container_id, ("not-running",
                                                                   "next-exit")):
            waiter.callback(wait_result(saved.state))
        running.finished.callback(code)
        if saved.state.restarting:
            ran_for = (saved.state.finished_ns - saved.state.started_ns) / 1e9
            self._restarts.schedule(container_id, ran_for, self._restart_by_policy)
        elif saved.host_config.get("AutoRemove") and not running.removing:
            await self._auto_remove_quietly(container_id)

    async def _delete_runtime_state(self, container_id: str, bundle: Path) -> None:
        try:
            await self._runc_or_fail().delete(container_id, bundle, force=True)
        except RuncError as error:
            _log.warn("runc delete {id}: {error}", id=container_id, error=str(error))

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

    def attach(self, name: str, stdin: bool, stdout: bool, stderr: bool,
               detach_keys: bytes = DEFAULT_DETACH_KEYS
               ) -> Deferred[tuple[Attachment, bool]]:
        """``POST /containers/{name}/attach`` (``stream=1``): the attachment and whether
        the container has a TTY.  Output flows from the current or the next run; on a
        TTY, typing ``detach_keys`` ends the session (a ``detach`` event)."""
        found = self._reader(lambda: self._store.get(name))

        def attach(container: Container) -> tuple[Attachment, bool]:
            streams = {s for s, wanted in (("stdout", stdout), ("stderr", stderr))
                       if wanted}
            config = container.config
            attachment = Attachment(streams, stdin and bool(config.get("OpenStdin")),
                                    bool(config.get("StdinOnce")), bool(config.get("Tty")),
                                    detach_keys)
            attachment.on_detach = lambda: self._emit(container, "detach")
            running = self._running.get(container.id)
            if running is not None:
                running.attachments.append(attachment)
                attachment.join(running)
            else:
                self._attachments.setdefault(container.id, []).append(attachment)
            self._emit(container, "attach")
            return attachment, bool(config.get("Tty"))

        return found.addCallback(attach)

    # -- resize ------------------------------------------------------------------------

    def resize(self, name: str, height: int, width: int) -> Deferred[None]:
        """``POST /containers/{name}/resize``: 409 unless running; a container without
        a TTY accepts and ignores it (as containerd does); a ``resize`` event."""
        found = self._reader(lambda: self._store.get(name))

        def resize(container: Container) -> None:
            running = self._running.get(container.id)
            if running is None:
                raise Conflict(f"Container {container.id} is not running")
            try:
                running.resize(height, width)
            except OSError as error:
                raise System(f"resize: {error.strerror}") from None
            self._emit(container, "resize", height=str(height), width=str(width))

        return found.addCallback(resize)

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
        """``POST /containers/{name}/kill?signal=`` (default ``KILL``); with ``KILL``
        it answers once the container is down (or after 10 s), as moby does."""
        signum = parse_signal(raw_signal) if raw_signal else int(signal.SIGKILL)
        return ensureDeferred(self._kill(name, signum))

    async def _kill(self, name: str, signum: int) -> None:
        container = await self._reader(lambda: self._store.get(name))
        running = self._running.get(container.id)
        if running is None and not self._restarts.is_pending(container.id):
            raise Conflict(f"Cannot kill container: {name}: Container {container.id} "
                           "is not running")
        stop_signal = parse_signal(str(container.config.get("StopSignal") or "SIGTERM"))
        await self._stopped_by_user(container, running)
        if running is not None:
            if signum in (signal.SIGKILL, stop_signal):
                running.stopping = True  # this run ends for good (moby ExitOnNext)
                self._signal(running, signum)
                self._thaw(container.id)
            else:
                self._signal(running, signum)
        self._emit(container, "kill", signal=str(signum))
        if running is not None and signum == signal.SIGKILL:  # moby: SIGKILL and wait
            await self._exited_within(running, _KILL_WAIT)

    async def _stopped_by_user(self, container: Container, running: Running | None
                               ) -> None:
        """Record that the user stopped the container; a waiting restart is dropped."""
        changes: dict[str, Any] = {"manually_stopped": True}
        if running is None and self._restarts.cancel(container.id):
            changes.update(running=False, restarting=False)
        saved = await self._writer(lambda: self._update_state(container.id, **changes))
        if not saved.state.running:
            for _condition, waiter in self._take_waiters(container.id, ("not-running",)):
                waiter.callback(wait_result(saved.state))

    def stop(self, name: str, timeout: int | None = None,
             raw_signal: str = "") -> Deferred[None]:
        """``POST /containers/{name}/stop?t=&signal=``: ``signal`` (the container's
        StopSignal when empty), then SIGKILL after ``t`` s."""
        return ensureDeferred(self._stop(name, timeout, raw_signal))

    async def _stop(self, name: str, timeout: int | None, raw_signal: str) -> None:
        signum = _stop_signum(raw_signal)
        container = await self._reader(lambda: self._store.get(name))
        running = self._running.get(container.id)
        if running is None and not self._restarts.is_pending(container.id):
            raise NotModified("Container already stopped")
        await self._stopped_by_user(container, running)
        if running is not None:
            await self._stop_running(container, running, timeout, signum)
        self._emit(container, "stop")

    async def _stop_running(self, container: Container, running: Running,
                            timeout: int | None, signum: int | None = None) -> None:
        if timeout is None:
            configured = container.config.get("StopTimeout")
            timeout = 10 if configured is None else int(configured)
        if signum is None:
            signum = parse_signal(str(container.config.get("StopSignal") or "SIGTERM"))
        running.stopping = True
        self._signal(running, signum)
        self._thaw(container.id)
        self._emit(container, "kill", signal=str(signum))
        if timeout >= 0:
            if await self._exited_within(running, timeout):
                return
            self._signal(running, signal.SIGKILL)
            self._emit(container, "kill", signal=str(int(signal.SIGKILL)))
        await chained(running.finished)

    async def _exited_within(self, running: Running, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the run to end (its exit recorded)."""
        finished = chained(running.finished)
        timer = self._reactor.callLater(timeout, finished.cancel)
        try:
            await finished
            return True
        except CancelledError:
            return False
        finally:
            if timer.active():
                timer.cancel()

    def restart(self, name: str, timeout: int | None = None,
                raw_signal: str = "") -> Deferred[None]:
        """``POST /containers/{name}/restart?t=&signal=``: stop when running, then start."""
        return ensureDeferred(self._restart(name, timeout, raw_signal))

    async def _restart(self, name: str, timeout: int | None, raw_signal: str) -> None:
        signum = _stop_signum(raw_signal)
        container = await self._reader(lambda: self._store.get(name))
        running = self._running.get(container.id)
        self._restarts.cancel(container.id)
        if running is not None:
            await self._stop_running(container, running, timeout, signum)
        await self._start(container.id)
        self._emit(container, "restart")

    # -- pause -------------------------------------------------------------------------

    def pause(self, name: str) -> Deferred[None]:
        return ensureDeferred(self._freeze(name, True))

    def unpause(self, name: str) -> Deferred[None]:
        return ensureDeferred(self._freeze(name, False))

    async def _freeze(self, name: str, pause: bool) -> None:
        container = await self._reader(lambda: self._store.get(name))
        container_id = container.id
        if self._restarts.is_pending(container_id):
            raise Conflict(f"Container {container_id} is restarting, wait until the "
                           "container is running")
        if container_id not in self._running:
            raise Conflict(f"Container {container_id} is not running")
        if pause == (container_id in self._paused):
            raise Conflict(f"Container {container_id} is " +
                           ("already paused" if pause else "not paused"))
        bundle = bundles.bundle_of(self._store.root / container_id)
        runc = self._runc_or_fail()
        try:
            await (runc.pause if pause else runc.resume)(container_id, bundle)
        except RuncError as error:
            verb = "pause" if pause else "unpause"
            raise System(f"Cannot {verb} container {container_id}: {error}") from None
        (self._paused.add if pause else self._paused.discard)(container_id)
        saved = await self._writer(lambda: self._update_state(container_id, paused=pause))
        self._emit(saved, "pause" if pause else "unpause")
        self.watcher.paused(saved, pause)

    async def pause_for_commit(self, container_id: str) -> bool:
        """Pause a running, unpaused container; answers whether it did.  One that ends
        meanwhile (runc finds no process to freeze) is committed as it is."""
        if container_id not in self._running or container_id in self._paused:
            return False
        try:
            await self._freeze(container_id, True)
        except (Conflict, System) as error:
            _log.info("commit {id} without pausing: {error}", id=container_id,
                      error=str(error))
            return False
        return True

    async def unpause_after_commit(self, container_id: str) -> None:
        if container_id in self._paused:
            with contextlib.suppress(DockerError):
                await self._freeze(container_id, False)

    def _thaw(self, container_id: str) -> None:
        """Resume a paused container after a signal, so that it can act on it."""
        if container_id not in self._paused:
            return
        self._paused.discard(container_id)
        bundle = bundles.bundle_of(self._store.root / container_id)
        resumed = ensureDeferred(self._runc_or_fail().resume(container_id, bundle))
        resumed.addErrback(lambda failure: _log.warn(
            "resume {id}: {error}", id=container_id, error=failure.getErrorMessage()))

    # -- update ------------------------------------------------------------------------

    async def apply_limits(self, container: Container) -> None:
        """Give a running container the resource limits of its HostConfig."""
        if container.id not in self._running:
            return  # applied when it starts
        host = container.host_config
        resources = limits(int(host.get("Memory") or 0), int(host.get("NanoCpus") or 0),
                           int(host.get("CpuShares") or 0), int(host.get("PidsLimit") or 0))
        try:
            await self._runc_or_fail().update(
                container.id, bundles.bundle_of(self._store.root / container.id), resources)
        except RuncError as error:
            raise System(f"Cannot update container {container.id}: {error}") from None

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
        if not isinstance(send, LogSink):
            raise TypeError("logs are written to a LogSink")
        container = await self._reader(lambda: self._store.get(name))
        check_readable(container.host_config.get("LogConfig"))
        send.write(b"")  # the response starts
        await serve_log(Path(container.log_path), self._running.get(container.id), options,
                        send, self._reader)
        return bool(container.config.get("Tty"))

    # -- live restore ------------------------------------------------------------------

    def adopt(self, container: Container, watch: ExitWatch, stdio: ContainerIO) -> None:
        """Take back a container that kept running while the daemon was away (live
        restore): its output, attachments, waiters and health checks go on as for a
        run this daemon started."""
        try:
            log = self._open_log(container)
        except OSError as error:
            _log.error("the log of {id} cannot be opened, its output is dropped: {error}",
                       id=container.id, error=str(from_os_error(error)))
            log = DiscardLog()
        running = self._track(container, watch, stdio, log)
        if container.state.paused:
            self._paused.add(container.id)
        started: Deferred[None] = Deferred()
        started.callback(None)
        bundle = bundles.bundle_of(self._store.root / container.id)
        ensureDeferred(self._watch(container, bundle, running, started))
        if container.state.paused:
            self.watcher.paused(container, True)
        elif container.state.health is not None:
            self.watcher.paused(container, False)
        else:
            self.watcher.started(container)

    # -- shutdown ----------------------------------------------------------------------

    def shutdown(self) -> Deferred[Any] | None:
        """Kill every running container and wait for its clean-up (daemon shutdown);
        with live restore, leave them running, their unfinished lines logged."""
        self._restarts.cancel_all()
        if self.keeper.live:
            for running in self._running.values():
                running.flush()
            self.keeper.leave()
            return None
        if not self._running:
            return None
        waits = []
        for container_id, running in list(self._running.items()):
            running.removing = True
            self._signal(running, signal.SIGKILL)
            self._thaw(container_id)
            waits.append(chained(running.finished))
        return DeferredList(waits, consumeErrors=True)


def _stop_signum(raw_signal: str) -> int | None:
    """A stop's ``signal`` (400 when unknown); ``None``: the container's StopSignal."""
    return parse_signal(raw_signal) if raw_signal else None

"""Running containers: start, exit, wait, attach, kill, stop, restart, logs.

Everything here lives on the reactor thread; mounts and record writes go to the
container writer thread, record reads to the reader pool.  The container's init is a
child of the daemon (a subreaper), its stdio pipes are held by the daemon: no helper
process runs per container (see :mod:`dockertw.daemon.containers.running`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredList, ensureDeferred
from twisted.logger import Logger

from dockertw.daemon.containers import bundle as bundles
from dockertw.daemon.containers.logs import LogOptions, LogSink, serve_log
from dockertw.daemon.containers.record import Container, State
from dockertw.daemon.containers.running import Attachment, Running, chained
from dockertw.daemon.containers.store import ContainerStore
from dockertw.daemon.images.store import ImageStore
from dockertw.daemon.jsonlog import LogEntry
from dockertw.daemon.logconfig import check_readable, open_log
from dockertw.daemon.signals import parse_signal
from dockertw.daemon.workers import Runner
from dockertw.errdefs import Conflict, DockerError, InvalidParameter, NotFound, NotModified, System
from dockertw.runtime.reaper import ExitWatcher
from dockertw.runtime.runc import Runc, RuncError, Stdio

__all__ = ["Lifecycle", "wait_result", "WAIT_CONDITIONS"]

_log = Logger()
_OUTPUT_GRACE = 2.0  # seconds to drain the pipes after the init exited
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
_Waiter = tuple[str, Deferred[dict[str, Any]]]


class Emit(Protocol):
    """Publishes a container event (``action`` with extra attributes)."""

    def __call__(self, container: Container, action: str, **extra: str) -> None: ...


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


class Lifecycle:
    """The runs of containers: which are running or starting, and their clients."""

    def __init__(self, store: ContainerStore, images: ImageStore, *, emit: Emit,
                 writer: Runner, reader: Runner, reactor: Any, runc: Runc | None,
                 auto_remove: Callable[[str], Awaitable[None]]) -> None:
        self._store = store
        self._images = images
        self._emit = emit
        self._writer = writer
        self._reader = reader
        self._reactor = reactor
        self._runc = runc
        self._auto_remove = auto_remove
        self._running: dict[str, Running] = {}
        self._starting: set[str] = set()
        self._attachments: dict[str, list[Attachment]] = {}
        self._waiters: dict[str, list[_Waiter]] = {}

    def is_active(self, container_id: str) -> bool:
        """Whether the container runs or is being started."""
        return container_id in self._running or container_id in self._starting

    def active_ids(self) -> list[str]:
        return [*self._running, *self._starting]

    async def kill_for_removal(self, container: Container, force: bool) -> None:
        """Make way for removing ``container``: 409 when active unless ``force``."""
        running = self._running.get(container.id)
        if running is None and container.id not in self._starting:
            return
        if not force:
            raise Conflict(f"You cannot remove a running container {container.id}. "
                           "Stop the container before attempting removal or force "
                           "remove")
        if running is not None:
            running.removing = True
            self._signal(running, signal.SIGKILL)
            await chained(running.finished)

    def removed(self, container_id: str, state: State) -> None:
        """Answer every waiter and end every attachment of a removed container."""
        for _, waiter in self._waiters.pop(container_id, []):
            waiter.callback(wait_result(state))
        for attachment in self._attachments.pop(container_id, []):
            attachment.end()

    # -- start -------------------------------------------------------------------------

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
        log = open_log(Path(container.log_path or directory / f"{container_id}-json.log"),
                       container.host_config.get("LogConfig"))
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
            await chained(running.finished)
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
                await self._auto_remove(container_id)
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
            finished = chained(running.finished)
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
        await chained(running.finished)

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
        if not isinstance(send, LogSink):
            raise TypeError("logs are written to a LogSink")
        container = await self._reader(lambda: self._store.get(name))
        check_readable(container.host_config.get("LogConfig"))
        send.write(b"")  # the response starts
        await serve_log(Path(container.log_path), self._running.get(container.id), options,
                        send, self._reader)
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
            waits.append(chained(running.finished))
        return DeferredList(waits, consumeErrors=True)

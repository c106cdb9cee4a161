"""The health monitor: probes of running containers on reactor timers.

Each running container with a health check has one pending ``callLater`` while idle
(no thread, no process); when it fires, the probe runs as an exec through the exec
path (an ``exec_create``/``exec_start``/``exec_die`` trail, as in Docker), its
output collected, killed after ``Timeout``.  Results update ``State.Health`` in
memory (written with the next saved state, as moby), a change of status is a
``health_status: <status>`` event, and the next probe is scheduled (rules in
:mod:`dockertw.daemon.containers.records.health`).  When the container stops or is
paused the monitor stops and the status becomes ``unhealthy``, as in moby.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred

from dockertw.daemon.containers.records.health import (
    STARTING,
    UNHEALTHY,
    Health,
    HealthConfig,
    HealthResult,
    go_duration,
    limited_output,
    next_health,
    probe_interval,
)
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running.lifecycle import Emit
from dockertw.daemon.containers.running.running import chained
from dockertw.daemon.workers import Runner
from dockertw.errdefs import DockerError
from dockertw.loglevel import Logger

__all__ = ["HealthMonitor", "ProbeRun", "ProbeRunner"]

_log = Logger()
_KEPT_OUTPUT = 4097  # bytes of output worth keeping (4096, and one to see there is more)


@attrs.frozen
class ProbeRun:
    """A started probe: ``finished`` fires with its exit code; ``kill`` ends it."""

    finished: Deferred[int]
    kill: Callable[[], None]


class ProbeRunner(Protocol):
    """Starts a probe's command in a container (the exec service)."""

    def probe(self, container: Container, command: Sequence[str],
              output: Callable[[bytes], None]) -> Awaitable[ProbeRun]: ...


@attrs.define(eq=False)
class _Watch:
    """The monitor of one container's run."""

    config: HealthConfig
    started_ns: int
    health: Health
    timer: Any = None  # the IDelayedCall of the next probe
    probe: ProbeRun | None = None  # the probe running now
    active: bool = True


class _Output:
    """A probe's output, kept up to what the result shows."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if self._size < _KEPT_OUTPUT:
            self.chunks.append(data[:_KEPT_OUTPUT - self._size])
            self._size += len(self.chunks[-1])

    def text(self) -> str:
        return limited_output(self.chunks)


class HealthMonitor:
    """Health checks of the running containers (a ``RunWatcher`` of the lifecycle)."""

    def __init__(self, store: ContainerStore, probes: ProbeRunner, *, emit: Emit,
                 writer: Runner, reader: Runner, reactor: Any) -> None:
        self._store = store
        self._probes = probes
        self._emit = emit
        self._writer = writer
        self._reader = reader
        self._reactor = reactor
        self._watches: dict[str, _Watch] = {}

    # -- the lifecycle's hooks ---------------------------------------------------------

    def started(self, container: Container) -> None:
        """A run began: ``starting``, failing streak 0, the log kept (moby's
        ``initHealthMonitor``)."""
        health = attrs.evolve(container.state.health or Health(), status=STARTING,
                              failing_streak=0)
        if self._watch(container, health):
            self._keep(container.id, health)

    def ended(self, container_id: str) -> None:
        """The run ended: no more probes, and ``unhealthy``."""
        watch = self._unwatch(container_id)
        if watch is not None:
            self._keep(container_id, attrs.evolve(watch.health, status=UNHEALTHY))

    def paused(self, container: Container, paused: bool) -> None:
        """A paused container is not probed (and is ``unhealthy``); once resumed the
        probes go on from its current health."""
        if paused:
            self.ended(container.id)
        elif container.state.health is not None:
            self._watch(container, container.state.health)

    # -- scheduling ----------------------------------------------------------------

    def _watch(self, container: Container, health: Health) -> bool:
        config = HealthConfig.of(container.config)
        if config is None or self._reactor is None:
            return False
        self._unwatch(container.id)
        watch = _Watch(config, container.state.started_ns, health)
        self._watches[container.id] = watch
        self._schedule(container.id, watch)
        return True

    def _unwatch(self, container_id: str) -> _Watch | None:
        watch = self._watches.pop(container_id, None)
        if watch is None:
            return None
        watch.active = False
        if watch.timer is not None and watch.timer.active():
            watch.timer.cancel()
        if watch.probe is not None:
            watch.probe.kill()
        return watch

    def _schedule(self, container_id: str, watch: _Watch) -> None:
        delay = probe_interval(watch.config, watch.health.status, watch.started_ns,
                               time.time_ns())
        watch.timer = self._reactor.callLater(delay / 1e9, self._fire, container_id, watch)

    def _fire(self, container_id: str, watch: _Watch) -> None:
        probed = ensureDeferred(self._probe(container_id, watch))
        probed.addCallback(lambda result: self._handle(container_id, watch, result))
        probed.addErrback(lambda failure: _log.failure("health check {id}", failure,
                                                       id=container_id))

    # -- probes ------------------------------------------------------------------------

    async def _probe(self, container_id: str, watch: _Watch) -> HealthResult:
        """One run of the probe (moby's ``cmdProbe.run``); errors are results too."""
        start = time.time_ns()
        output = _Output()
        try:
            container = await self._reader(lambda: self._store.get(container_id))
            probe = await self._probes.probe(container, watch.config.command, output.write)
        except DockerError as error:
            return HealthResult(start, time.time_ns(), -1, str(error))
        if not watch.active:
            probe.kill()
        watch.probe = probe
        try:
            code = await self._exit_within(probe, watch.config.probe_timeout)
        finally:
            watch.probe = None
        if code is None:
            timeout = go_duration(watch.config.probe_timeout)
            shown = output.text()
            message = f"Health check exceeded timeout ({timeout})"
            return HealthResult(start, time.time_ns(), -1,
                                f"{message}: {shown}" if shown else message)
        return HealthResult(start, time.time_ns(), code, output.text())

    async def _exit_within(self, probe: ProbeRun, timeout: int) -> int | None:
        """The probe's exit code, or ``None`` (and the probe killed) after ``timeout``
        nanoseconds."""
        finished = chained(probe.finished)
        timer = self._reactor.callLater(timeout / 1e9, finished.cancel)
        try:
            return int(await finished)
        except CancelledError:
            probe.kill()
            await chained(probe.finished)  # no dying probes pile up
            return None
        finally:
            if timer.active():
                timer.cancel()

    def _handle(self, container_id: str, watch: _Watch, result: HealthResult) -> None:
        """Record the result (moby's ``handleProbeResult``) and schedule the next."""
        if not watch.active:
            return  # the run ended or was paused meanwhile
        before = watch.health.status
        watch.health = next_health(watch.health, result, watch.config, watch.started_ns)
        kept = self._keep(container_id, watch.health)
        if watch.health.status != before:
            action = "health_status: " + watch.health.status

            def announce(container: Container | None) -> None:
                if container is not None:
                    self._emit(container, action)

            kept.addCallback(announce)
        self._schedule(container_id, watch)

    def _keep(self, container_id: str, health: Health) -> Deferred[Container | None]:
        """Put ``health`` in the record, in memory, in order with its state writes."""
        kept = self._writer(lambda: self._store.keep_health(container_id, health))
        kept.addErrback(lambda failure: _log.failure("health {id}", failure,
                                                     id=container_id))
        return kept

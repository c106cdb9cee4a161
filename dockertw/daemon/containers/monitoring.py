"""What runs in a container and what it uses: ``docker top`` and ``docker stats``.

The processes and counters are read from the container's cgroup (see :mod:`~.top`,
:mod:`~.stats`); the stats conversation itself is :mod:`~.statsstream`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, succeed

from dockertw.daemon.containers.parts import ServiceParts
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.running import bundle as bundles
from dockertw.daemon.containers.running.running import Running
from dockertw.daemon.containers.usage import cgroups, top
from dockertw.daemon.containers.usage.sampler import (
    KeptFiles,
    SharedSampler,
    Target,
    read_samples,
)
from dockertw.daemon.containers.usage.stats import Sample
from dockertw.daemon.containers.usage.statsstream import (
    INTERVAL,
    StatsOptions,
    StatsSource,
    stream_stats,
)
from dockertw.errdefs import Conflict, InvalidParameter

__all__ = ["ContainerMonitor"]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


class ContainerMonitor:
    """``GET /containers/{name}/top`` and ``GET /containers/{name}/stats``."""

    def __init__(self, parts: ServiceParts, *, reactor: Any, cgroup_version: str,
                 cgroup_parent: str, machine_memory: int) -> None:
        self._parts = parts
        self._store = parts.store
        self._reactor = reactor
        self._cgroup_version = cgroup_version
        self._cgroup_parent = cgroup_parent
        self._machine_memory = machine_memory
        self._sampler = SharedSampler(reactor, INTERVAL, self._read_samples, self._idle)
        self._files = KeptFiles()

    def top(self, name: str, ps_args: str = "") -> Deferred[dict[str, Any]]:
        """``GET /containers/{name}/top?ps_args=``: the host's ``ps`` rows of the
        container's processes."""
        argv = top.ps_argv(ps_args)
        return ensureDeferred(self._top(name, argv))

    async def _top(self, name: str, argv: list[str]) -> dict[str, Any]:
        container = await self._running_container(name)
        path = bundles.cgroup_path(container, self._cgroup_parent)
        pids = await self._parts.reader(
            lambda: cgroups.read_pids(self._cgroup_version, path))
        listed = top.parse_ps_output(await top.run_ps(argv, pids, self._reactor), pids)
        self._parts.emit(container, "top")
        return listed

    def oom_killed(self, container: Container) -> bool:
        """Whether the kernel killed a process of the container's cgroup for memory
        (blocking: the cgroup must still be there, before ``runc delete``)."""
        path = bundles.cgroup_path(container, self._cgroup_parent)
        return cgroups.oom_kills(self._cgroup_version, path) > 0

    async def _running_container(self, name: str) -> Container:
        """The container named ``name``; 409 unless it runs."""
        container = await self._parts.reader(lambda: self._store.get(name))
        if self._parts.runs.run_of(container.id) is None:
            raise Conflict(f"Container {container.id} is not running")
        return container

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
        runs = self._parts.runs
        container = self._store.get(name)  # in memory
        if options.stream and options.one_shot:  # after the lookup, as moby: 404 first
            raise InvalidParameter("cannot have stream=true and one-shot=true")
        ready()
        source = StatsSource(find=lambda key: succeed(self._store.get(key)),
                             running=lambda key: runs.run_of(key) is not None,
                             sample=self._sample, clock=self._reactor,
                             next_sample=self._sampler.next)
        await stream_stats(source, container, options, send)

    async def _sample(self, container: Container) -> Sample | None:
        """The container's counters now; ``None`` unless it runs (or if its run ended
        while they were read)."""
        runs = self._parts.runs
        running = runs.run_of(container.id)
        if running is None:
            return None
        sample = await self._read_sample(container, running)
        return sample if runs.run_of(container.id) is running else None

    def _read_sample(self, container: Container, running: Running) -> Deferred[Sample]:
        """Read the container's counters in a worker thread."""
        target = self._target(container, running)
        read = self._parts.reader(lambda: read_samples(
            self._cgroup_version, [target], self._machine_memory, _CLK_TCK))
        return read.addCallback(lambda samples: samples[target.key])

    def _target(self, container: Container, running: Running) -> Target:
        host_network = container.host_config.get("NetworkMode") == "host"
        return Target(container.id, bundles.cgroup_path(container, self._cgroup_parent),
                      None if host_network else running.watcher.pid)

    def _read_samples(self, containers: list[Container]) -> Deferred[dict[str, Sample]]:
        """The shared pass: every running one of ``containers`` read in one job; those
        whose run ended meanwhile left out."""
        runs = {c.id: run for c in containers
                if (run := self._parts.runs.run_of(c.id)) is not None}
        targets = [self._target(c, runs[c.id]) for c in containers if c.id in runs]
        read = self._parts.reader(lambda: read_samples(
            self._cgroup_version, targets, self._machine_memory, _CLK_TCK,
            files=self._files))
        return read.addCallback(lambda samples: {
            key: sample for key, sample in samples.items()
            if self._parts.runs.run_of(key) is runs[key]})

    def _idle(self) -> None:
        """No stream follows any container: close the files the passes kept open."""
        self._parts.reader(self._files.close)

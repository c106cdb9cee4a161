"""One reading of every followed container's counters per interval, shared by all the
stats streams.

``docker stats`` follows every running container with a stream each.  Rather than a
timer and a worker-thread job per stream and second, the streams wait on
:class:`SharedSampler`: once per interval it reads, in one job, the counters of every
container a stream waits for (``/proc/stat`` once for all of them, as moby's collector
does) and hands each stream its container's sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from dockertw.daemon.containers.usage.cgroups import CGROUP_ROOT, cgroup_dir, read_files
from dockertw.daemon.containers.usage.stats import Sample, cgroup_files, parse_sample

__all__ = ["SharedSampler", "Target", "read_samples"]


@attrs.frozen
class Target:
    """What to read for one container: its cgroup, and the pid whose network
    namespace it uses (``None``: no network counters)."""

    key: str
    cgroup_path: str
    pid: int | None


def read_samples(version: str, targets: Sequence[Target], machine_memory: int,
                 clk_tck: int, root: Path = CGROUP_ROOT,
                 proc: Path = Path("/proc")) -> dict[str, Sample]:
    """Every target's sample, ``/proc/stat`` read once (blocking)."""
    proc_stat = read_files([("stat", proc / "stat")]).get("stat", "")
    wanted = cgroup_files(version)
    samples = {}
    for target in targets:
        files = read_files((name, cgroup_dir(version, controller, target.cgroup_path, root)
                            / name) for controller, name in wanted)
        net = read_files([("net", proc / str(target.pid) / "net" / "dev")]).get("net") \
            if target.pid else None
        samples[target.key] = parse_sample(version, files, proc_stat, net, time.time_ns(),
                                           machine_memory, clk_tck)
    return samples


ReadAll = Callable[[list[Any]], Deferred[dict[str, Any]]]
"""Reads the samples of the given containers: by container ID (missing: not running)."""


class SharedSampler:
    """Waiters for the next sample of a container, served by one pass per interval."""

    def __init__(self, clock: Any, interval: float, read_all: ReadAll) -> None:
        self._clock = clock
        self._interval = interval
        self._read_all = read_all
        self._waiting: dict[str, tuple[Any, list[Deferred[Any]]]] = {}
        self._timer: Any = None

    def next(self, container: Any) -> Deferred[Any]:
        """The container's sample of the next pass (``None`` if it does not run then);
        cancelling stops waiting."""
        waiter: Deferred[Any] = Deferred(lambda d: self._drop(container.id, d))
        _, waiters = self._waiting.get(container.id, (container, []))
        self._waiting[container.id] = (container, [*waiters, waiter])
        if self._timer is None:
            self._timer = self._clock.callLater(self._interval, self._pass)
        return waiter

    @property
    def waiting(self) -> int:
        """Containers waited for (for tests)."""
        return len(self._waiting)

    def _drop(self, key: str, waiter: Deferred[Any]) -> None:
        found = self._waiting.get(key)
        if found is None or waiter not in found[1]:
            return  # in the pass under way: it skips what is called
        left = [other for other in found[1] if other is not waiter]
        if left:
            self._waiting[key] = (found[0], left)
        else:
            del self._waiting[key]
        if not self._waiting and self._timer is not None and self._timer.active():
            self._timer.cancel()
            self._timer = None

    def _pass(self) -> None:
        self._timer = None
        waiting, self._waiting = self._waiting, {}
        if waiting:
            read = self._read_all([container for container, _ in waiting.values()])
            read.addBoth(self._deliver, waiting)

    @staticmethod
    def _deliver(samples: dict[str, Any] | Failure,
                 waiting: dict[str, tuple[Any, list[Deferred[Any]]]]) -> None:
        for key, (_, waiters) in waiting.items():
            for waiter in waiters:
                if waiter.called:
                    continue
                if isinstance(samples, Failure):
                    waiter.errback(samples)
                else:
                    waiter.callback(samples.get(key))

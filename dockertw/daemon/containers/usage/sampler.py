"""One reading of every followed container's counters per interval, shared by all the
stats streams.

``docker stats`` follows every running container with a stream each.  Rather than a
timer and a worker-thread job per stream and second, the streams wait on
:class:`SharedSampler`: once per interval it reads, in one job, the counters of every
container a stream waits for (``/proc/stat`` once for all of them, as moby's collector
does) and hands each stream its container's sample.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from dockertw.daemon.containers.usage.cgroups import CGROUP_ROOT, cgroup_dir
from dockertw.daemon.containers.usage.stats import (
    Sample,
    cgroup_files,
    parse_sample,
    system_cpu,
)

__all__ = ["SharedSampler", "Target", "KeptFiles", "read_samples"]


@attrs.frozen
class Target:
    """What to read for one container: its cgroup, and the pid whose network
    namespace it uses (``None``: no network counters)."""

    key: str
    cgroup_path: str
    pid: int | None


def read_samples(version: str, targets: Sequence[Target], machine_memory: int,
                 clk_tck: int, root: Path = CGROUP_ROOT, proc: Path = Path("/proc"),
                 files: KeptFiles | None = None) -> dict[str, Sample]:
    """Every target's sample, ``/proc/stat`` read once (blocking).  With ``files``,
    the descriptors of the targets' files are kept for the next pass and those of
    containers no longer read are closed."""
    if files is None:
        files = KeptFiles()
        try:
            return read_samples(version, targets, machine_memory, clk_tck, root, proc, files)
        finally:
            files.close()
    host_cpu = system_cpu(_read_once(f"{proc}/stat") or "", clk_tck)
    wanted = cgroup_files(version)
    samples = {}
    with files.pass_of({f"{target.key}/{target.pid}" for target in targets}):
        for target in targets:
            texts = files.read(f"{target.key}/{target.pid}",
                               partial(_paths, version, wanted, target, root, proc))
            net = texts.pop(_NET, None)
            samples[target.key] = parse_sample(version, texts, host_cpu, net,
                                               time.time_ns(), machine_memory, clk_tck)
    return samples


def _paths(version: str, wanted: Sequence[tuple[str, str]], target: Target, root: Path,
           proc: Path) -> dict[str, str]:
    """The files of ``target`` by name (the network counters as :data:`_NET`)."""
    paths = {name: f"{cgroup_dir(version, controller, target.cgroup_path, root)}/{name}"
             for controller, name in wanted}
    if target.pid:
        paths[_NET] = f"{proc}/{target.pid}/net/dev"
    return paths


_NET = "/net/dev"  # the key of the network counters among a target's files


class KeptFiles:
    """Open descriptors of the files samples are read from, kept between passes.

    cgroup and ``/proc`` files make their text anew at every read from the start, and
    opening one costs more than reading it: ``docker stats`` of a hundred containers
    reads over a thousand files a second.  A file that could not be opened is
    remembered as missing (blkio files of another scheduler); a descriptor that fails
    (the cgroup is gone) is closed.  Keys hold the container's run (its pid), so a
    restarted container's files are opened afresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, dict[str, int]] = {}  # key -> name -> fd, or -1 missing

    @contextlib.contextmanager
    def pass_of(self, keys: set[str]) -> Iterator[None]:
        """A pass reading ``keys``: the files of other keys are closed."""
        with self._lock:
            for key in [key for key in self._kept if key not in keys]:
                self._close(key)
            yield

    def close(self) -> None:
        """Close every descriptor (no one follows any container)."""
        with self.pass_of(set()):
            pass

    def read(self, key: str, paths: Callable[[], dict[str, str]]) -> dict[str, str]:
        """The texts of the files (by name) that could be read; ``paths`` names them
        when ``key`` is new."""
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = {name: _open(path) for name, path in paths().items()}
        texts = {}
        for name, fd in kept.items():
            if fd < 0:
                continue
            text = _read_from_start(fd)
            if text is None:
                os.close(fd)
                kept[name] = -1
                continue
            texts[name] = text
        return texts

    def _close(self, key: str) -> None:
        for fd in self._kept.pop(key).values():
            if fd >= 0:
                os.close(fd)


def _open(path: str) -> int:
    """A descriptor of ``path``, or -1 if it cannot be opened."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1


def _read_from_start(fd: int) -> str | None:
    """The whole text of ``fd`` read from offset 0 (``None`` on an error)."""
    try:
        chunks = [os.pread(fd, 65536, 0)]
        while len(chunks[-1]) == 65536:
            chunks.append(os.pread(fd, 65536, 65536 * len(chunks)))
    except OSError:
        return None
    return b"".join(chunks).decode("utf-8", "replace")


def _read_once(path: str) -> str | None:
    fd = _open(path)
    if fd < 0:
        return None
    try:
        return _read_from_start(fd)
    finally:
        os.close(fd)


ReadAll = Callable[[list[Any]], Deferred[dict[str, Any]]]
"""Reads the samples of the given containers: by container ID (missing: not running)."""


class SharedSampler:
    """Waiters for the next sample of a container, served by one pass per interval."""

    def __init__(self, clock: Any, interval: float, read_all: ReadAll,
                 idle: Callable[[], None] = lambda: None) -> None:
        self._clock = clock
        self._interval = interval
        self._read_all = read_all
        self._idle = idle  # called when the last waiter has gone
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
            self._idle()

    def _pass(self) -> None:
        self._timer = None
        waiting, self._waiting = self._waiting, {}
        if waiting:
            read = self._read_all([container for container, _ in waiting.values()])
            read.addBoth(self._deliver, waiting)

    def _deliver(self, samples: dict[str, Any] | Failure,
                 waiting: dict[str, tuple[Any, list[Deferred[Any]]]]) -> None:
        for key, (_, waiters) in waiting.items():
            for waiter in waiters:
                if waiter.called:
                    continue
                if isinstance(samples, Failure):
                    waiter.errback(samples)
                else:
                    waiter.callback(samples.get(key))
        if not self._waiting:  # every stream has ended meanwhile
            self._idle()

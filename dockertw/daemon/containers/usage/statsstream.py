"""The ``GET /containers/{id}/stats`` conversation: when to sample, what to send.

As moby's collector (``daemon/stats.go``, ``daemon/stats/collector.go``): a sample a
second, read for every stream at once (:mod:`~.sampler`); a stream sends every one
(the first, read on its own, with zero ``precpu_stats``), zeroed ones while the
container does not run (real ones again once it runs, after a restart), and ends when
the container is removed or the client leaves (cancelling stops waiting).
``stream=false`` answers with the second sample (``precpu`` filled), at once with
``one_shot``, or with the zeroed object when the container does not run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from twisted.internet.task import deferLater

from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.usage import stats
from dockertw.errdefs import NotFound

__all__ = ["StatsOptions", "StatsSource", "stream_stats", "INTERVAL"]

INTERVAL = 1.0
Send = Callable[[dict[str, Any]], None]


@attrs.frozen
class StatsOptions:
    """The query of ``GET /containers/{id}/stats``."""

    stream: bool = True
    one_shot: bool = False


@attrs.frozen
class StatsSource:
    """What the conversation asks of the service."""

    find: Callable[[str], Awaitable[Container]]  # by ID; NotFound once removed
    running: Callable[[str], bool]  # whether the container runs now
    sample: Callable[[Container], Awaitable[stats.Sample | None]]  # None: not running
    clock: Any  # IReactorTime
    next_sample: Callable[[Container], Awaitable[stats.Sample | None]]  # the shared pass's


async def stream_stats(source: StatsSource, container: Container, options: StatsOptions,
                       send: Send) -> None:
    """Send the stats objects of one request."""
    if not options.stream and not source.running(container.id):
        send(stats.zero_stats(container.name, container.id))
        return
    current = await source.sample(container)
    if not options.stream:
        previous = None
        if not options.one_shot:  # the first sample only fills precpu_stats
            await deferLater(source.clock, INTERVAL, lambda: None)
            previous, current = current, await source.sample(container)
        send(stats.stats_json(container.name, container.id, current, previous))
        return
    send(stats.stats_json(container.name, container.id, current))
    await _follow(source, container, current, send)


async def _follow(source: StatsSource, container: Container,
                  previous: stats.Sample | None, send: Send) -> None:
    """An object a second until the container is removed (or the client leaves)."""
    while True:
        current = await source.next_sample(container)
        try:
            container = await source.find(container.id)
        except NotFound:
            return
        send(stats.stats_json(container.name, container.id, current, previous))
        previous = current

"""The ``GET /containers/{id}/stats`` conversation: when to sample, what to send.

Samples are taken by a callable the service gives (it reads in a worker thread);
one object a second while streaming, until the container's run ends or the
request is cancelled (the client left: the timer is stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred, succeed

from dockertw.daemon.containers import stats
from dockertw.daemon.containers.running import Running, chained

__all__ = ["StatsOptions", "Ticker", "stream_stats"]

INTERVAL = 1.0


@attrs.frozen
class StatsOptions:
    """The query of ``GET /containers/{id}/stats``."""

    stream: bool = True
    one_shot: bool = False


class Ticker:
    """Fires every :data:`INTERVAL` seconds, at once when the run has ended."""

    def __init__(self, reactor: Any, finished: Deferred[Any]) -> None:
        self._reactor = reactor
        self._next: Deferred[None] | None = None
        self._timer: Any = None
        self.ended = False
        chained(finished).addCallback(self._end)

    def _end(self, _: object) -> None:
        self.ended = True
        self._fire()

    def _stop_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _fire(self) -> None:
        self._stop_timer()
        tick, self._next = self._next, None
        if tick is not None:
            tick.callback(None)

    def _cancelled(self, _: Deferred[None]) -> None:
        self._stop_timer()
        self._next = None

    def wait(self) -> Deferred[None]:
        """The next tick (cancelling it stops the timer)."""
        if self.ended:
            return succeed(None)
        self._next = Deferred(self._cancelled)
        self._timer = self._reactor.callLater(INTERVAL, self._fire)
        return self._next


async def stream_stats(name: str, container_id: str, running: Running | None,
                       options: StatsOptions, sample: Callable[[], Deferred[stats.Sample]],
                       send: Callable[[dict[str, Any]], None], reactor: Any) -> None:
    """Send the stats objects of one request; zeroes when the container is stopped."""
    if running is None:
        send(stats.zero_stats(name, container_id))
        return
    ticker = Ticker(reactor, running.finished)
    previous = None
    if not options.stream and not options.one_shot:
        previous = await sample()
        await ticker.wait()
    sent = False
    while not (ticker.ended or running.watcher.exited.called):
        current = await sample()
        send(stats.stats_json(name, container_id, current, previous))
        sent = True
        if not options.stream:
            return
        previous = current
        await ticker.wait()
    if not sent:
        send(stats.zero_stats(name, container_id))

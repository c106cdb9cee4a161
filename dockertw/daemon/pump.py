"""Bytes made in a worker thread, written by the reactor thread, with backpressure.

A :class:`Pump` is the ``IPushProducer`` registered with whatever consumes the bytes
(an HTTP response).  The worker hands over one chunk at a time and waits until the
reactor has written it, and while the consumer has paused it; once the consumer stops
it (the client went away), the worker's next call raises ``CancelledError``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw.loglevel import Logger

__all__ = ["Pump", "Begin", "cancelling"]

_POLL_SECONDS = 1.0
_log = Logger()

#: Called in the reactor thread with the pump before the first chunk; answers the
#: function that writes a chunk (there, too).
Begin = Callable[["Pump"], Callable[[bytes], None]]


@implementer(IPushProducer)
class Pump:
    """Moves chunks from one worker thread to a writer in the reactor thread."""

    def __init__(self, call_from_thread: Callable[..., Any]) -> None:
        self._call = call_from_thread
        self._running = threading.Event()
        self._running.set()
        self._stopped = False
        self._write: Callable[[bytes], None] | None = None

    # IPushProducer, called in the reactor thread

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's interface
        self._running.clear()

    def resumeProducing(self) -> None:  # noqa: N802
        self._running.set()

    def stopProducing(self) -> None:  # noqa: N802
        self._stopped = True
        self._running.set()

    # the worker side

    def begin(self, begin: Begin) -> None:
        """Start the output (in the reactor thread) and wait until that is done."""
        def start() -> None:
            self._write = begin(self)

        self._in_reactor(start)

    def push(self, chunk: bytes) -> None:
        """Write ``chunk`` once the consumer wants more; wait until it is written."""
        while not self._running.wait(_POLL_SECONDS):
            pass
        write = self._write
        assert write is not None, "push() before begin()"
        self._in_reactor(lambda: write(chunk))

    def _in_reactor(self, action: Callable[[], None]) -> None:
        if self._stopped:
            raise CancelledError("the consumer went away")
        done = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                if not self._stopped:
                    action()
            except BaseException as error:  # handed to the worker thread
                errors.append(error)
            finally:
                done.set()

        self._call(run)
        while not done.wait(_POLL_SECONDS):
            if self._stopped:
                break
        if errors:
            raise errors[0]
        if self._stopped:
            raise CancelledError("the consumer went away")


def cancelling(work: Deferred[None], pump: Pump) -> Deferred[None]:
    """A Deferred for ``work`` whose cancellation stops ``pump`` (the worker then ends);
    once cancelled, the work's own late outcome is dropped (it has no one to go to)."""
    result: Deferred[None] = Deferred(lambda _: pump.stopProducing())

    def forward(outcome: Any) -> None:
        if not result.called:
            if isinstance(outcome, Failure):
                result.errback(outcome)
            else:
                result.callback(outcome)
        elif isinstance(outcome, Failure) and not outcome.check(CancelledError):
            _log.error("A cancelled stream failed: {error}", error=outcome.value)

    work.addBoth(forward)
    return result

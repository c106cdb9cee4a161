"""``cancelling``: a cancelled stream's late outcome goes nowhere (no double call)."""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred

from dockertw.daemon.pump import Pump, cancelling


def test_a_late_outcome_after_cancel_is_dropped() -> None:
    work: Deferred[None] = Deferred()
    pump = Pump(lambda action: action())
    result = cancelling(work, pump)
    failures: list[object] = []
    result.addErrback(failures.append)
    result.cancel()
    assert failures and failures[0].check(CancelledError)  # type: ignore[attr-defined]
    work.errback(CancelledError("the consumer went away"))  # no AlreadyCalledError
    assert len(failures) == 1


def test_outcomes_are_forwarded() -> None:
    work: Deferred[None] = Deferred()
    result = cancelling(work, Pump(lambda action: action()))
    done: list[object] = []
    result.addCallback(done.append)
    work.callback(None)
    assert done == [None]

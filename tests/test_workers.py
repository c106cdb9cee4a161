"""The one-at-a-time guard shared by the prune operations."""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred, fail

from dockertw.daemon.workers import OneAtATime
from dockertw.errdefs import Conflict


def test_a_second_run_is_refused_until_the_first_ends():
    guard = OneAtATime("a prune operation is already running")
    first: Deferred[int] = Deferred()
    results: list[int] = []
    guard.run(lambda: first).addCallback(results.append)
    with pytest.raises(Conflict, match="a prune operation is already running"):
        guard.run(Deferred)
    first.callback(3)
    assert results == [3]
    again: Deferred[int] = Deferred()
    guard.run(lambda: again)
    again.callback(4)


def test_a_failed_run_frees_the_guard():
    guard = OneAtATime("busy")
    guard.run(lambda: fail(ValueError("boom"))).addErrback(lambda failure: None)
    done: Deferred[int] = Deferred()
    guard.run(lambda: done)
    done.callback(1)

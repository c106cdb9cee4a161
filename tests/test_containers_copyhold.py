"""A copy into a stopped container's upper directory holds off its start and removal."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import ensureDeferred

from dockertw.daemon.containers.running.lifecycle import Lifecycle


def lifecycle() -> Lifecycle:
    nothing = cast(Any, None)
    return Lifecycle(nothing, nothing, emit=nothing, writer=nothing, reader=nothing,
                     reactor=None, runc=None, auto_remove=nothing)


def test_waiters_run_after_the_last_release() -> None:
    runs = lifecycle()
    first, second = runs.hold_stopped("c1"), runs.hold_stopped("c1")
    assert first is not None and second is not None
    waited = ensureDeferred(runs._offline_copies_done("c1"))
    first()
    first()  # a release twice counts once
    assert not waited.called
    second()
    assert waited.called
    assert ensureDeferred(runs._offline_copies_done("c1")).called


def test_an_active_container_is_not_held() -> None:
    runs = lifecycle()
    runs._starting.add("c1")
    assert runs.hold_stopped("c1") is None

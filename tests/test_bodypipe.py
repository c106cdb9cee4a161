"""The pipe between the reactor receiving a request body and a worker reading it."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from dockertw.daemon.bodypipe import BodyLost, BodyPipe


class _Network:
    """Records pause/resume; "reactor" calls run at once (the test is single-threaded
    where it matters, or checks the calls afterwards)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pipe(self, high: int = 100, low: int = 40) -> BodyPipe:
        return BodyPipe(lambda: self.calls.append("pause"),
                        lambda: self.calls.append("resume"), self._now, high, low)

    @staticmethod
    def _now(call: Callable[[], None]) -> None:
        call()


def test_chunks_come_out_in_order_cut_at_the_limit_without_copies() -> None:
    pipe = _Network().pipe()
    pipe.write(b"abc")
    pipe.write(b"defgh")
    pipe.end()
    first = pipe.read_chunks(5)
    assert [bytes(chunk) for chunk in first] == [b"abc", b"de"]
    assert isinstance(first[1], memoryview)
    assert pipe.read(100) == b"fgh"
    assert pipe.read_chunks(10) == [] and pipe.read() == b""
    assert pipe.tell() == 8


def test_the_network_pauses_above_high_water_and_resumes_under_low_water() -> None:
    network = _Network()
    pipe = network.pipe(high=100, low=40)
    for _ in range(6):
        pipe.write(b"x" * 20)  # 120 bytes waiting: over 100 once, one pause
    assert network.calls == ["pause"]
    pipe.read(50)  # 70 left: still above low water
    assert network.calls == ["pause"]
    pipe.read(40)  # 30 left
    assert network.calls == ["pause", "resume"]
    pipe.read(40)
    assert network.calls == ["pause", "resume"]


def test_a_reader_waits_for_data_from_another_thread() -> None:
    pipe = _Network().pipe()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read()))
    reader.start()
    for part in (b"one ", b"two ", b"three"):
        pipe.write(part)
    pipe.end()
    reader.join(10)
    assert received == [b"one two three"]


def test_a_lost_connection_fails_the_reader_after_what_arrived() -> None:
    pipe = _Network().pipe()
    pipe.write(b"partial")
    pipe.fail(BodyLost("gone"))
    assert pipe.read(100) == b"partial"
    with pytest.raises(BodyLost):
        pipe.read(100)


def test_failure_after_the_end_changes_nothing() -> None:
    pipe = _Network().pipe()
    pipe.write(b"all")
    pipe.end()
    pipe.fail(BodyLost("closed afterwards"))
    assert pipe.read() == b"all"


def test_discard_drops_what_waits_and_what_comes_and_resumes_the_network() -> None:
    network = _Network()
    pipe = network.pipe(high=10, low=5)
    pipe.write(b"x" * 20)
    pipe.discard()
    pipe.write(b"more")
    assert network.calls == ["pause", "resume"]
    assert pipe.read(100) == b"" and pipe.tell() == 24

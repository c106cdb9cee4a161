"""Reading json-file logs for ``docker logs``: chunks, framing, tail, follow."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.defer import Deferred, ensureDeferred, succeed

from dockertw.daemon.containers.running import logs
from dockertw.daemon.containers.running.logs import Framing, LogOptions, LogSink
from dockertw.daemon.containers.running.running import Running
from dockertw.daemon.jsonlog import JSONLogFile, LogEntry, read_entries
from dockertw.streams.stdcopy import StdcopyDecoder

T0 = 1_795_827_747_652_875_996


_ODDITIES = {10: ' "quoted"', 20: "\\", 21: "\\\\", 30: "\t\u00e9\u20ac", 40: "\\n"}


def _text(index: int) -> str:
    return f"line {index}" + _ODDITIES.get(index % 50, "") + "\n"


def _write_log(path: Path, lines: int, **rotation: int) -> JSONLogFile:
    log = JSONLogFile(path, **rotation)
    for index in range(lines):
        stream = "stderr" if index % 7 == 0 else "stdout"
        log.write([LogEntry(stream, T0 + index * 1000, _text(index).encode())])
    return log


class _Collect(LogSink):
    def __init__(self) -> None:
        super().__init__(Framing())
        self.data = b""

    def write(self, data: bytes) -> Deferred[None] | None:
        self.data += data
        return None

    def texts(self) -> list[str]:
        return [chunk.data.decode() for chunk in StdcopyDecoder().feed(self.data)]


@pytest.mark.parametrize("chunk", [100, 1000, logs.CHUNK])
def test_chunks_frame_as_entry_by_entry(tmp_path, monkeypatch, chunk):
    path = tmp_path / "c-json.log"
    log = _write_log(path, 300, max_size=5000, max_files=50)
    log.write([LogEntry("stdout", T0 + 10**9, b"partial")])
    log.close()
    monkeypatch.setattr(logs, "CHUNK", chunk)
    for out, err, tail, tty, stamps in itertools.product(
            [True, False], [True, False], [None, 0, 5, 100, 1000], [True, False],
            [True, False]):
        if out or err:
            options = LogOptions(stdout=out, stderr=err, tail=tail)
            framing = Framing(tty=tty, timestamps=stamps)
            parts = logs.open_files(path)
            fast = b"".join(logs.read_chunks(parts, options, framing))
            logs.close_files(parts)
            wanted = [e for e in read_entries(path, tail=tail) if e.stream in options.streams]
            assert fast == logs.render_entries(wanted, framing)


def test_since_and_until_by_time_stamp(tmp_path):
    path = tmp_path / "c-json.log"
    _write_log(path, 20).close()
    options = LogOptions(since_ns=T0 + 4000, until_ns=T0 + 8000)
    sink = _Collect()
    ensureDeferred(logs.serve_log(path, None, options, sink, _now))
    assert sink.texts() == [_text(i) for i in range(5, 9)]


def test_tail_spans_rotated_files(tmp_path):
    path = tmp_path / "c-json.log"
    _write_log(path, 100, max_size=700, max_files=100).close()
    assert len(list(tmp_path.iterdir())) > 5
    sink = _Collect()
    ensureDeferred(logs.serve_log(path, None, LogOptions(tail=30), sink, _now))
    assert sink.texts() == [_text(i) for i in range(70, 100)]


def _now(work: Callable[[], Any]) -> Deferred[Any]:
    return succeed(work())


class _Run:
    """What ``serve_log`` uses of a Running: its log, listeners and end."""

    def __init__(self, log: JSONLogFile) -> None:
        self.log = log
        self.listeners: list[Callable[[LogEntry], None]] = []
        self.finished: Deferred[int] = Deferred()
        self.next = 0

    def write(self, count: int) -> None:
        for _ in range(count):
            entries = [LogEntry("stdout", T0 + self.next, f"{self.next}\n".encode())]
            self.next += 1
            self.log.write(entries)
            for listener in list(self.listeners):
                listener(entries[0])


def test_a_follower_sees_every_entry_once_across_rotations(tmp_path):
    path = tmp_path / "c-json.log"
    run = _Run(JSONLogFile(path, max_size=200, max_files=2))
    run.write(20)

    def reader(work: Callable[[], Any]) -> Deferred[Any]:
        run.write(15)  # the container goes on writing (and rotating) meanwhile
        return succeed(work())

    sink = _Collect()
    done = ensureDeferred(logs.serve_log(path, cast(Running, run),
                                         LogOptions(follow=True), sink, reader))
    run.write(10)
    run.finished.callback(0)
    assert done.called and run.listeners == []
    numbers = [int(text) for text in sink.texts()]
    assert numbers == list(range(numbers[0], run.next))  # contiguous to the end
    assert numbers[0] <= 20 - 2  # what two files of 200 bytes held at the start
    run.log.close()

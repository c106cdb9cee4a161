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
        """The lines sent, whatever frames carried them."""
        joined = "".join(chunk.data.decode() for chunk in StdcopyDecoder().feed(self.data))
        return [line + "\n" for line in joined.split("\n")[:-1]]


def _runs(data: bytes, framing: Framing) -> list[tuple[int, bytes]]:
    """What a client makes of ``data``: the bytes of each run of one stream."""
    if framing.tty:
        return [(1, data)]
    runs: list[tuple[int, bytes]] = []
    for chunk in StdcopyDecoder().feed(data):
        if runs and runs[-1][0] == chunk.stream:
            runs[-1] = (chunk.stream, runs[-1][1] + chunk.data)
        else:
            runs.append((chunk.stream, chunk.data))
    return runs


@pytest.mark.parametrize("chunk", [100, 1000, logs.CHUNK])
def test_chunks_frame_as_entry_by_entry(tmp_path, monkeypatch, chunk):
    path = tmp_path / "c-json.log"
    log = _write_log(path, 300, max_size=5000, max_files=50)
    log.write([LogEntry("stdout", T0 + 10**9, b"partial")])
    log.close()
    monkeypatch.setattr(logs, "CHUNK", chunk)
    for out, err, tail, tty, stamps, coalesce in itertools.product(
            [True, False], [True, False], [None, 0, 5, 100, 1000], [True, False],
            [True, False], [True, False]):
        if out or err:
            options = LogOptions(stdout=out, stderr=err, tail=tail)
            framing = Framing(tty=tty, timestamps=stamps, coalesce=coalesce)
            parts = logs.open_files(path)
            fast = b"".join(logs.read_chunks(parts, options, framing))
            logs.close_files(parts)
            wanted = [e for e in read_entries(path, tail=tail) if e.stream in options.streams]
            slow = logs.render_entries(wanted, framing)
            if stamps or tty or not coalesce:
                assert fast == slow
            else:  # coalesced frames end where a chunk does
                assert _runs(fast, framing) == _runs(slow, framing)


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    return [(chunk.stream, chunk.data) for chunk in StdcopyDecoder().feed(data)]


@pytest.mark.parametrize("chunk", [1000, logs.CHUNK])
def test_entries_of_one_stream_share_frames_of_whole_lines(tmp_path, monkeypatch, chunk):
    whole = chunk > logs.FRAME * 4
    monkeypatch.setattr(logs, "CHUNK", chunk)
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path)
    lines = [b"%05d " % i + b"x" * 94 + b"\n" for i in range(1000)]
    log.write([LogEntry("stdout", T0 + i, line) for i, line in enumerate(lines)])
    log.write([LogEntry("stderr", T0 + 2000, b"oops\n"), LogEntry("stdout", T0 + 2001, b"end\n")])
    log.close()
    parts = logs.open_files(path)
    frames = _frames(b"".join(logs.read_chunks(parts, LogOptions(), Framing(coalesce=True))))
    logs.close_files(parts)
    assert b"".join(data for _, data in frames[:-2]) == b"".join(lines)
    assert all(stream == 1 and data.endswith(b"\n") and len(data) <= logs.FRAME
               for stream, data in frames[:-2])
    if whole:  # blocks of nearly a frame each, not a frame per line
        assert len(frames) - 2 == -(-len(b"".join(lines)) // logs.FRAME)
    assert frames[-2:] == [(2, b"oops\n"), (1, b"end\n")]
    parts = logs.open_files(path)
    stamped = _frames(b"".join(logs.read_chunks(parts, LogOptions(), Framing(timestamps=True))))
    logs.close_files(parts)
    assert len(stamped) == len(lines) + 2  # with time stamps: a frame per entry, as Docker
    parts = logs.open_files(path)
    followed = _frames(b"".join(logs.read_chunks(parts, LogOptions(follow=True), Framing())))
    logs.close_files(parts)
    assert followed[:2] == [(1, lines[0]), (1, lines[1])]  # a follower: a frame per entry
    assert len(followed) == len(lines) + 2


def test_a_frame_ends_after_a_newline_or_at_the_frame_size():
    line = b"y" * (logs.FRAME * 2 + 10) + b"\n"
    rendered = logs.render_entries([LogEntry("stdout", T0, b"a\n"),
                                    LogEntry("stdout", T0, line)], Framing(coalesce=True))
    sizes = [len(data) for _, data in _frames(rendered)]
    assert sizes == [2, logs.FRAME, logs.FRAME, len(line) - 2 * logs.FRAME]


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
        self.listeners: list[Callable[[list[LogEntry]], None]] = []
        self.finished: Deferred[int] = Deferred()
        self.next = 0

    def write(self, count: int) -> None:
        for _ in range(count):
            entries = [LogEntry("stdout", T0 + self.next, f"{self.next}\n".encode())]
            self.next += 1
            self.log.write(entries)
            for listener in list(self.listeners):
                listener(entries)


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

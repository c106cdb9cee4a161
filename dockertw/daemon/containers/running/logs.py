"""Serving a container's json-file log for ``GET /containers/{name}/logs``.

The log (the current file and its rotated ones) is read in a worker thread in chunks
of a MiB, each decoded and framed into one block of bytes: memory stays bounded, and
the next chunk is read while the previous one is being sent.  ``tail`` reads backwards
from the end.  Most lines are decoded by one regular expression over the whole chunk;
the others one by one.  Without a TTY and without time stamps, consecutive entries
of one stream go out as one stdcopy frame of up to :data:`FRAME` bytes, so that a
client writes in blocks rather than once per line.

Following a running container joins its live output without losing or repeating an
entry, even across a rotation: in one reactor turn the follower starts buffering live
entries and opens every log file, noting the current file's size.  What the files held
then is read through those descriptors (renames and removals do not affect them), and
the buffer is sent after it.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterator
from itertools import compress, groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from dockertw.daemon.containers.running.running import LogListener, Running, chained
from dockertw.daemon.jsonlog import (
    LogEntry,
    decode_entry,
    format_time,
    log_files,
    parse_time,
)
from dockertw.daemon.workers import Runner

__all__ = ["LogOptions", "Framing", "LogSink", "LogPart", "open_files", "close_files",
           "read_chunks", "serve_log", "render_entries", "CHUNK", "FRAME"]

CHUNK = 1 << 20
FRAME = 1 << 15  # payload bytes of a frame of coalesced entries
_BACK = 1 << 16
_SEPARATOR = b'\\n","stream":"std'
_OPENING = b'{"log":"'
_BETWEEN = b'"}\n{"log":"'  # after a 30-character time stamp
_STREAMS = frozenset({b"out", b"err"})
_STDERR = b'\\n","stream":"stderr"'
# what is left of plain lines without their other bytes: one backslash, one newline each
_NOT_BACKSLASH_NOR_NEWLINE = bytes(sorted(set(range(256)) - set(b"\\\n")))
_STREAM = itemgetter(slice(0, 3))
_TIME = itemgetter(slice(13, 43))
_MIDDLE = itemgetter(slice(43, 54))
_TEXT = itemgetter(slice(54, None))
_ROW_STREAM = itemgetter(1)
_HEADER = struct.Struct(">B3xI")  # stdcopy (dockertw.streams.stdcopy)
_STREAM_IDS = {"stdout": 1, "stderr": 2}
_STAMP_WIDTH = 30  # 2026-11-28T01:02:27.652875996Z

Row = tuple[bytes, int, bytes]  # data, stream (1 stdout, 2 stderr), time stamp


@attrs.frozen
class LogOptions:
    """The query of ``GET /containers/{name}/logs`` (times in nanoseconds)."""

    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    since_ns: int = 0
    until_ns: int | None = None
    tail: int | None = None

    @property
    def streams(self) -> frozenset[str]:
        return frozenset(name for name, wanted in (("stdout", self.stdout),
                                                   ("stderr", self.stderr)) if wanted)


@attrs.frozen
class Framing:
    """How entries go on the wire: raw for a TTY, else stdcopy frames; time prefixes.

    ``coalesce``: consecutive entries of one stream share frames (of up to
    :data:`FRAME` bytes) when there are no time prefixes, so a client writes in blocks.
    Only for a read of what is kept: a follower gets a frame per entry as Docker's
    give, which clients iterating a stream (docker-py) take as one line each.
    """

    tty: bool = False
    timestamps: bool = False
    coalesce: bool = False


class LogSink:
    """Takes the framed output of a log; ``write`` answers a Deferred to pause on.

    Calling it with one entry frames and writes that entry (live output).
    """

    def __init__(self, framing: Framing) -> None:
        self.framing = framing

    def write(self, data: bytes) -> Deferred[None] | None:
        raise NotImplementedError

    def __call__(self, entry: LogEntry) -> None:
        self.write(render_entries([entry], self.framing))


@attrs.frozen
class LogPart:
    """Bytes ``[start, limit)`` of one open log file."""

    fd: int
    start: int
    limit: int


def open_files(path: Path, current_size: int | None = None) -> list[LogPart]:
    """Every file of the log, oldest first, opened; the current one up to ``current_size``."""
    parts = []
    for file in log_files(path):
        try:
            fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:  # rotated away meanwhile (no writer holds it still)
            continue
        size = os.fstat(fd).st_size
        if file == path and current_size is not None:
            size = min(size, current_size)
        parts.append(LogPart(fd, 0, size))
    return parts


def close_files(parts: list[LogPart]) -> None:
    for part in parts:
        os.close(part.fd)


def read_chunks(parts: list[LogPart], options: LogOptions,
                framing: Framing) -> Iterator[bytes]:
    """The kept entries of ``parts``, filtered and framed, a block per chunk read."""
    if options.tail is not None:
        parts = _tail_parts(parts, options.tail)
    keep = _RowFilter(options)
    for chunk in _chunks(parts):
        blob = _fast_render(chunk, options, framing)
        if blob is None:
            blob = _render(keep(_rows(chunk)), framing)
        if blob:
            yield blob


def render_entries(entries: list[LogEntry], framing: Framing) -> bytes:
    """Entries (live output) framed as the kept ones are."""
    return _render([(entry.data, _STREAM_IDS.get(entry.stream, 1),
                     format_time(entry.time_ns).encode() if framing.timestamps else b"")
                    for entry in entries], framing)


def _chunks(parts: list[LogPart]) -> Iterator[bytes]:
    """Whole lines of ``parts``, about a MiB at a time."""
    for part in parts:
        rest = b""
        offset = part.start
        while offset < part.limit:
            data = os.pread(part.fd, min(CHUNK, part.limit - offset), offset)
            if not data:
                break
            offset += len(data)
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                yield data[:cut]


def _tail_parts(parts: list[LogPart], lines: int) -> list[LogPart]:
    """The ends of ``parts`` holding their last ``lines`` lines."""
    kept: list[LogPart] = []
    for part in reversed(parts):
        if lines <= 0:
            break
        start, lines = _tail_start(part, lines)
        kept.append(attrs.evolve(part, start=start))
    return kept[::-1]


def _tail_start(part: LogPart, lines: int) -> tuple[int, int]:
    """Where the last ``lines`` lines of ``part`` start, and how many more are wanted."""
    need = lines + 1  # the newline before the first line wanted
    end = part.limit
    while end > part.start:
        begin = max(part.start, end - _BACK)
        block = os.pread(part.fd, end - begin, begin)
        count = block.count(b"\n")
        if count < need:
            need -= count
            end = begin
            continue
        index = len(block)
        for _ in range(need):
            index = block.rfind(b"\n", 0, index)
        return begin + index + 1, 0
    return part.start, need - 1


def _rows(chunk: bytes) -> list[Row]:
    """The entries of whole log lines, decoded one by one."""
    rows = []
    for line in chunk.splitlines(keepends=True):
        if line.strip():
            entry = decode_entry(line)
            rows.append((entry.data, _STREAM_IDS.get(entry.stream, 1),
                         format_time(entry.time_ns).encode()))
    return rows


class _Headers(dict[tuple[bytes, int], bytes]):
    """stdcopy headers by (``b"out"`` or ``b"err"``, text length), made once each."""

    def __init__(self, extra: int) -> None:
        super().__init__()
        self._extra = extra  # the bytes framed with each text: newline, time stamp

    def __missing__(self, key: tuple[bytes, int]) -> bytes:
        stream, length = key
        header = self[key] = _HEADER.pack(1 if stream == b"out" else 2, length + self._extra)
        return header


_HEADERS = {False: _Headers(1), True: _Headers(_STAMP_WIDTH + 2)}


def _fast_render(chunk: bytes, options: LogOptions, framing: Framing) -> bytes | None:
    """Frame a chunk of lines without a Python step per line (``None``: not for this)."""
    columns = None if options.since_ns or options.until_ns is not None else _columns(chunk)
    if columns is None:
        return None
    texts, streams, rest = columns
    stamps = list(map(_TIME, rest)) if framing.timestamps else None
    if not (options.stdout and options.stderr):
        wanted = [stream == (b"out" if options.stdout else b"err") for stream in streams]
        texts, streams = list(compress(texts, wanted)), list(compress(streams, wanted))
        stamps = None if stamps is None else list(compress(stamps, wanted))
    if stamps is None and not framing.tty and framing.coalesce:
        return _coalesced(texts, streams)
    return _interleave(texts, streams, stamps, framing.tty)


def _coalesced(texts: list[bytes], streams: list[bytes]) -> bytes:
    """Each run of lines of one stream, newlines put back, in frames."""
    pieces: list[bytes | memoryview] = []
    start = 0
    for stream, run in groupby(streams):
        end = start + len(list(run))
        _frame(pieces, 1 if stream == b"out" else 2,
               b"\n".join([*texts[start:end], b""]))
        start = end
    return b"".join(pieces)


def _frame(pieces: list[bytes | memoryview], stream: int, payload: bytes) -> None:
    """Append ``payload`` as frames of up to :data:`FRAME` bytes, cut after a newline
    where the window holds one."""
    view, start, end = memoryview(payload), 0, len(payload)
    while end - start > FRAME:
        cut = payload.rfind(b"\n", start, start + FRAME) + 1
        if cut <= start:
            cut = start + FRAME
        pieces += (_HEADER.pack(stream, cut - start), view[start:cut])
        start = cut
    if end > start:
        pieces += (_HEADER.pack(stream, end - start), view[start:])


def _columns(chunk: bytes) -> tuple[list[bytes], list[bytes], list[bytes]] | None:
    """Texts, streams and the pieces holding the time stamps of a chunk of whole lines.

    Lines ``{"log":"<text>\\n","stream":"std…","time":"<30>"}`` (the text of a line
    that ended in a newline) all hold ``\\n","stream":"std``: split there, each piece
    is the previous line's stream and time and the next line's text, at fixed places.
    """
    pieces = chunk.split(_SEPARATOR)
    count = len(pieces) - 1
    marks = chunk.translate(None, _NOT_BACKSLASH_NOR_NEWLINE)
    if marks.count(b"\n") != count or not pieces[0].startswith(_OPENING):
        return None
    rest = pieces[1:]
    if _STDERR in chunk:
        streams = list(map(_STREAM, rest))
        if set(streams) - _STREAMS:
            return None
    else:
        streams = [b"out"] * count
    if set(map(_MIDDLE, rest[:-1])) - {_BETWEEN} or rest[-1][43:] != b'"}\n':
        return None
    texts = [pieces[0][len(_OPENING):], *map(_TEXT, rest[:-1])]
    if marks == b"\\\n" * count:
        return texts, streams, rest
    unescaped = _unescaped(texts)  # escapes in some texts
    return None if unescaped is None else (unescaped, streams, rest)


def _unescaped(texts: list[bytes]) -> list[bytes] | None:
    """JSON string contents decoded all at once (``None``: not plain contents)."""
    if b"\\\0" in b"\0".join(texts) + b"\0":  # a text ending in a backslash
        return None
    try:
        decoded = json.loads(b'["' + b'","'.join(texts) + b'"]')
        if len(decoded) != len(texts):
            return None
        return list(map(str.encode, decoded))
    except (ValueError, TypeError, UnicodeError):
        return None


def _interleave(texts: list[bytes], streams: list[bytes], stamps: list[bytes] | None,
                tty: bool) -> bytes:
    """Join [header] [stamp " "] text "\\n" for every line."""
    columns: list[list[bytes]] = []
    if not tty:
        headers = _HEADERS[stamps is not None]
        columns.append(list(map(headers.__getitem__, zip(streams, map(len, texts), strict=True))))
    if stamps is not None:
        columns += [stamps, [b" "] * len(texts)]
    columns += [texts, [b"\n"] * len(texts)]
    joined: list[bytes] = [b""] * (len(texts) * len(columns))
    for index, column in enumerate(columns):
        joined[index::len(columns)] = column
    return b"".join(joined)


class _RowFilter:
    """Keeps the rows of the wanted streams within ``(since, until]``."""

    def __init__(self, options: LogOptions) -> None:
        self._all = options.stdout and options.stderr
        self._stream = 1 if options.stdout else 2
        self._since = options.since_ns
        self._until = options.until_ns
        self._low = format_time(self._since).encode()
        self._high = None if self._until is None else format_time(self._until).encode()

    def __call__(self, rows: list[Row]) -> list[Row]:
        if self._all and not self._since and self._until is None:
            return rows
        return [row for row in rows if (self._all or row[1] == self._stream)
                and self._within(row[2])]

    def _within(self, stamp: bytes) -> bool:
        if len(stamp) != _STAMP_WIDTH:
            stamp = format_time(parse_stamp(stamp)).encode()
        return stamp > self._low and (self._high is None or stamp <= self._high)

    def keeps(self, entry: LogEntry) -> bool:
        """Whether a live entry is wanted."""
        return ((self._all or _STREAM_IDS.get(entry.stream) == self._stream)
                and entry.time_ns > self._since
                and (self._until is None or entry.time_ns <= self._until))


def parse_stamp(stamp: bytes) -> int:
    return parse_time(stamp.decode())


def _render(rows: list[Row], framing: Framing) -> bytes:
    if framing.timestamps:
        rows = [(_stamp(stamp) + b" " + data, stream, stamp) for data, stream, stamp in rows]
    if framing.tty:
        return b"".join([data for data, _, _ in rows])
    if framing.coalesce and not framing.timestamps:
        pieces: list[bytes | memoryview] = []
        for stream, run in groupby(rows, _ROW_STREAM):
            _frame(pieces, stream, b"".join([data for data, _, _ in run]))
        return b"".join(pieces)
    pack = _HEADER.pack
    return b"".join([pack(stream, len(data)) + data for data, stream, _ in rows])


def _stamp(stamp: bytes) -> bytes:
    """Docker's fixed-width stamp (the log's own unless written by someone else)."""
    if len(stamp) == _STAMP_WIDTH:
        return stamp
    return format_time(parse_stamp(stamp)).encode()


async def serve_log(path: Path, running: Running | None, options: LogOptions,
                    sink: LogSink, reader: Runner) -> None:
    """Send the kept entries, then (``follow``) live ones until the run ends."""
    if running is None:
        parts = await reader(lambda: open_files(path))
        await _send_kept(parts, options, sink, reader)
        return
    pending: list[LogEntry] = []
    listener: LogListener = pending.extend
    if options.follow:
        running.listeners.append(listener)
    parts = open_files(path, running.log.size)  # in the same turn: nothing lost
    try:
        await _send_kept(parts, options, sink, reader)
        if options.follow:
            keep = _RowFilter(options).keeps
            live = [entry for entry in pending if keep(entry)]
            if live:
                sink.write(render_entries(live, sink.framing))
            running.listeners.remove(listener)
            listener = _live(keep, sink)
            running.listeners.append(listener)
            await chained(running.finished)
    finally:
        if listener in running.listeners:
            running.listeners.remove(listener)


def _live(keep: Callable[[LogEntry], bool], sink: LogSink) -> LogListener:
    """Send each batch of live entries (one read of the container's output) at once."""
    def send(entries: list[LogEntry]) -> None:
        kept = [entry for entry in entries if keep(entry)]
        if kept:
            sink.write(render_entries(kept, sink.framing))
    return send


async def _send_kept(parts: list[LogPart], options: LogOptions, sink: LogSink,
                     reader: Runner) -> None:
    """Read, frame and send ``parts`` in a worker, a chunk ahead of the sending."""
    chunks = read_chunks(parts, options, sink.framing)
    job = reader(lambda: next(chunks, None))
    try:
        while True:
            blob = await _shielded(job)
            if blob is None:
                return
            job = reader(lambda: next(chunks, None))
            waiting = sink.write(blob)
            if waiting is not None:
                await waiting
    finally:
        job.addBoth(lambda _: close_files(parts))


def _shielded(job: Deferred[Any]) -> Deferred[Any]:
    """A Deferred firing as ``job`` does; cancelling it leaves ``job`` running."""
    copy: Deferred[Any] = Deferred()

    def forward(result: Any) -> None:
        if not copy.called:
            if isinstance(result, Failure):
                copy.errback(result)
            else:
                copy.callback(result)

    job.addBoth(forward)
    return copy

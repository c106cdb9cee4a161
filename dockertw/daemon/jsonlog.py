"""Container logs in Docker's ``json-file`` format, with size-based rotation.

Each line of output is one JSON object on one line::

    {"log":"out1\\n","stream":"stdout","time":"2026-11-28T01:02:27.652875996Z"}

Writing encodes only the payload string; reading takes the common case (a line of
text ending in a newline, nothing else to unescape) by slicing bytes, without a JSON
decode, and falls back to ``json.loads`` for anything else.
"""

from __future__ import annotations

import calendar
import functools
import json
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs

__all__ = ["LogEntry", "encode_entry", "decode_entry", "format_time", "parse_time",
           "LineSplitter", "JSONLogFile", "read_entries", "MAX_LINE"]

MAX_LINE = 16 * 1024  # Docker splits longer partial lines at this size
_SUFFIX_MARK = b',"stream":"'


@attrs.frozen
class LogEntry:
    stream: str  # "stdout" or "stderr"
    time_ns: int
    data: bytes


@functools.lru_cache(maxsize=64)
def _second_text(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def format_time(time_ns: int) -> str:
    """RFC 3339 in UTC with nine fraction digits (Docker's fixed-width log timestamps)."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return f"{_second_text(seconds)}.{nanos:09d}Z"


@functools.lru_cache(maxsize=64)
def _seconds(stamp: str) -> int:
    return calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))


def parse_time(text: str) -> int:
    """The nanoseconds of a ``format_time`` string (or Go's zero-trimmed RFC3339Nano)."""
    stamp, _, fraction = text.rstrip("Z").partition(".")
    return _seconds(stamp) * 1_000_000_000 + int((fraction + "000000000")[:9])


def encode_entry(entry: LogEntry) -> bytes:
    payload = json.dumps(entry.data.decode("utf-8", "replace"), ensure_ascii=False)
    return (f'{{"log":{payload},"stream":"{entry.stream}",'
            f'"time":"{format_time(entry.time_ns)}"}}\n').encode()


def decode_entry(line: bytes) -> LogEntry:
    """One line of a json-file log."""
    mark = line.rfind(_SUFFIX_MARK)
    if line.startswith(b'{"log":"') and mark > 0:
        text = line[7:mark]
        rest = line[mark + len(_SUFFIX_MARK):]
        stream, _, stamp = rest.partition(b'","time":"')
        stamp = stamp.rstrip(b'}\n"')
        if text.endswith(b'\\n"') and b"\\" not in text[1:-3] and b'"' not in text[1:-3]:
            data = text[1:-3] + b"\n"
        else:
            data = json.loads(text).encode()
        return LogEntry(stream.decode(), parse_time(stamp.decode()), data)
    decoded = json.loads(line)
    return LogEntry(decoded.get("stream", "stdout"), parse_time(decoded["time"]),
                    decoded["log"].encode())


class LineSplitter:
    """Cuts a byte stream into log messages: whole lines, or 16 KiB pieces of long ones."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, data: bytes) -> list[bytes]:
        pieces = (self._pending + data).split(b"\n")
        self._pending = pieces.pop()
        messages = []
        for piece in pieces:
            while len(piece) >= MAX_LINE:
                messages.append(piece[:MAX_LINE])
                piece = piece[MAX_LINE:]
            messages.append(piece + b"\n")
        while len(self._pending) >= MAX_LINE:
            messages.append(self._pending[:MAX_LINE])
            self._pending = self._pending[MAX_LINE:]
        return messages

    def flush(self) -> list[bytes]:
        rest, self._pending = self._pending, b""
        return [rest] if rest else []


class JSONLogFile:
    """Appends entries to ``path``; past ``max_size`` bytes it rotates, keeping ``max_files``."""

    def __init__(self, path: Path, max_size: int = 0, max_files: int = 1) -> None:
        self.path = path
        self._max_size = max_size
        self._max_files = max(1, max_files)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = os.fstat(self._fd).st_size

    @property
    def size(self) -> int:
        """Bytes in the current file (everything written so far, without rotation)."""
        return self._size

    def write(self, entries: Iterable[LogEntry]) -> None:
        data = b"".join(encode_entry(entry) for entry in entries)
        if self._max_size and self._size and self._size + len(data) > self._max_size:
            self._rotate()
        os.write(self._fd, data)
        self._size += len(data)

    def close(self) -> None:
        os.close(self._fd)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self._max_files == 1:
            self.path.unlink(missing_ok=True)
        for index in range(self._max_files - 1, 0, -1):
            older = _rotated(self.path, index - 1)
            if older.exists():
                os.replace(older, _rotated(self.path, index))
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._size = 0


def _rotated(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


def _files_oldest_first(path: Path, max_files: int) -> list[Path]:
    return [p for p in (_rotated(path, i) for i in range(max_files - 1, -1, -1)) if p.exists()]


def read_entries(path: Path, max_files: int = 1, tail: int | None = None,
                 since_ns: int = 0, until_ns: int | None = None) -> Iterator[LogEntry]:
    """Kept entries oldest first, within ``(since, until]``, the last ``tail`` of them."""
    def every() -> Iterator[LogEntry]:
        for file in _files_oldest_first(path, max_files):
            with open(file, "rb") as lines:
                for line in lines:
                    if line.strip():
                        entry = decode_entry(line)
                        if entry.time_ns > since_ns and (until_ns is None
                                                         or entry.time_ns <= until_ns):
                            yield entry

    if tail is None:
        yield from every()
    elif tail > 0:
        yield from deque(every(), maxlen=tail)

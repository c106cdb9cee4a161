"""Container logs in Docker's ``json-file`` format, with size-based rotation.

Each line of output is one JSON object on one line::

    {"log":"out1\\n","stream":"stdout","time":"2026-11-28T01:02:27.652875996Z"}

Writing encodes a batch of lines read at once (same stream, same time) with one
``bytes.replace`` when no character needs escaping, and entry by entry otherwise;
reading takes the common case (a line of text ending in a newline, nothing else to
unescape) by slicing bytes, without a JSON decode, and falls back to ``json.loads``.

Past ``max_size`` bytes the log rotates as Docker's does: ``<id>-json.log`` becomes
``.1``, ``.1`` becomes ``.2``…, keeping ``max_files`` files in all.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import NamedTuple

__all__ = ["LogEntry", "encode_entry", "encode_entries", "encode_lines", "decode_entry",
           "format_time", "parse_time", "LineSplitter", "JSONLogFile", "DiscardLog",
           "log_files", "read_entries", "MAX_LINE"]

MAX_LINE = 16 * 1024  # Docker splits longer partial lines at this size
_SUFFIX_MARK = b',"stream":"'
# the bytes a JSON string holds as they are: deleting them leaves the ones to escape
_VERBATIM = bytes(set(range(256)) - set(range(0x20)) - set(b'"\\')) + b"\n"
_STREAM_TIME = itemgetter(0, 1)
_LAST = itemgetter(slice(-1, None))
_DECODE = methodcaller("decode", "utf-8", "replace")


class LogEntry(NamedTuple):
    """One message of a container's output (a named tuple: made by the million)."""

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


def _plain(blob: bytes) -> bool:
    """Whether ``blob`` goes into a JSON string as it is (newlines aside)."""
    if blob.translate(None, _VERBATIM):
        return False
    if blob.isascii():
        return True
    try:
        blob.decode()
    except UnicodeDecodeError:
        return False
    return True


def encode_entries(entries: Sequence[LogEntry]) -> bytes:
    """The log lines of ``entries``; one ``replace`` for a batch of plain whole lines."""
    if entries and len(set(map(_STREAM_TIME, entries))) == 1:
        return encode_lines(entries[0].stream, entries[0].time_ns,
                            [entry.data for entry in entries])
    return b"".join([encode_entry(entry) for entry in entries])


def encode_lines(stream: str, time_ns: int, messages: Sequence[bytes]) -> bytes:
    """The log lines of messages read at once (one stream, one time).

    Plain whole lines are joined and cut with one ``replace``; others are escaped by
    one ``json.dumps`` of them all, cut the same way.
    """
    if not messages:
        return b""
    tail = f',"stream":"{stream}","time":"{format_time(time_ns)}"}}\n'.encode()
    blob = b"".join(messages)
    if (b"".join(map(_LAST, messages)) == b"\n" * len(messages)
            and blob.count(b"\n") == len(messages) and _plain(blob)):
        return b'{"log":"' + blob[:-1].replace(b"\n", b'\\n"' + tail + b'{"log":"') \
            + b'\\n"' + tail
    texts = json.dumps(list(map(_DECODE, messages)), ensure_ascii=False,
                       separators=(",", ":")).encode()  # ["…","…"]: no "," inside
    return b'{"log":' + texts[1:-1].replace(b'","', b'"' + tail + b'{"log":"') + tail


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
        if max(map(len, pieces), default=0) < MAX_LINE:
            messages = [piece + b"\n" for piece in pieces]
        else:
            messages = []
            for piece in pieces:
                parts, rest = _pieces(piece)
                messages += parts
                messages.append(rest + b"\n")
        if len(self._pending) >= MAX_LINE:
            parts, self._pending = _pieces(self._pending)
            messages += parts
        return messages

    def flush(self) -> list[bytes]:
        rest, self._pending = self._pending, b""
        return [rest] if rest else []


def _pieces(data: bytes) -> tuple[list[bytes], bytes]:
    """``data`` cut in MAX_LINE pieces, and the shorter rest."""
    whole = len(data) // MAX_LINE * MAX_LINE
    return [data[i:i + MAX_LINE] for i in range(0, whole, MAX_LINE)], data[whole:]


class JSONLogFile:
    """Appends entries to ``path``; past ``max_size`` bytes it rotates, keeping ``max_files``.

    A file stays within ``max_size`` unless one entry alone is larger.  Rotation renames
    before it opens the new file, so a daemon killed in between loses nothing.  A write
    that fails (a full disk) drops what it could not write whole and leaves no half
    line; writing goes on with the next output.  ``on_error`` hears of the first failure
    (the error) and of the first success after it (``None``).
    """

    def __init__(self, path: Path, max_size: int = 0, max_files: int = 1,
                 on_error: Callable[[OSError | None], None] | None = None) -> None:
        self.path = path
        self._max_size = max_size
        self._max_files = max(1, max_files)
        self._fd = _open_append(path)
        self._size = os.fstat(self._fd).st_size
        self.failing: OSError | None = None
        self._on_error = on_error or _ignore

    @property
    def size(self) -> int:
        """Bytes in the current file."""
        return self._size

    def write(self, entries: Sequence[LogEntry]) -> None:
        self._write(encode_entries(entries))

    def write_lines(self, stream: str, time_ns: int, messages: Sequence[bytes]) -> None:
        """Append messages read at once, without making an entry of each."""
        self._write(encode_lines(stream, time_ns, messages))

    def _write(self, data: bytes) -> None:
        try:
            self._write_rotating(data)
        except OSError as error:
            if self.failing is None:
                self.failing = error
                self._on_error(error)
            return
        if self.failing is not None:
            self.failing = None
            self._on_error(None)

    def _write_rotating(self, data: bytes) -> None:
        limit = self._max_size
        while limit and data and self._size + len(data) > limit:
            cut = data.rfind(b"\n", 0, max(0, limit - self._size)) + 1
            if not self._size:  # an empty file takes one entry at least
                cut = cut or data.index(b"\n") + 1
            elif not cut:
                self._rotate()
                continue
            self._append(data[:cut])
            data = data[cut:]
        self._append(data)

    def close(self) -> None:
        os.close(self._fd)

    def _append(self, data: bytes) -> None:
        """Write ``data`` whole, or nothing of it (a short write is undone)."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        if self._max_files == 1:
            self.path.unlink(missing_ok=True)
        for index in range(self._max_files - 1, 0, -1):
            older = _rotated(self.path, index - 1)
            if older.exists():
                os.replace(older, _rotated(self.path, index))
        fd, self._fd = self._fd, _open_append(self.path)
        os.close(fd)
        self._size = 0


class DiscardLog(JSONLogFile):
    """The ``none`` logging driver: output goes to attached clients only."""

    def __init__(self) -> None:  # no file at all
        self._size = 0

    def write(self, entries: Sequence[LogEntry]) -> None:
        pass

    def write_lines(self, stream: str, time_ns: int, messages: Sequence[bytes]) -> None:
        pass

    def close(self) -> None:
        pass


def _ignore(error: OSError | None) -> None:
    pass


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)


def _rotated(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


def log_files(path: Path) -> list[Path]:
    """``path`` and its rotated files that exist, oldest first."""
    prefix = path.name + "."
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    indexes = sorted((int(name[len(prefix):]) for name in names
                      if name.startswith(prefix) and name[len(prefix):].isdigit()),
                     reverse=True)
    found = [_rotated(path, index) for index in indexes]
    return found + [path] if path.name in names else found


def read_entries(path: Path, tail: int | None = None, since_ns: int = 0,
                 until_ns: int | None = None) -> Iterator[LogEntry]:
    """Kept entries oldest first, within ``(since, until]``, the last ``tail`` of them.

    Simple and whole-file: for tests and tools; the daemon streams (``containers.logs``).
    """
    def every() -> Iterator[LogEntry]:
        for file in log_files(path):
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

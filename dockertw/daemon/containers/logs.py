"""Reading a container's json-file log for ``GET /containers/{name}/logs``.

The kept entries are read in a worker thread; following a running container joins its
live output without losing or repeating an entry: the follower registers first and
buffers, the file is read up to the size it had then, and the buffer is replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from dockertw.daemon.containers.running import LogListener, Running, chained
from dockertw.daemon.jsonlog import LogEntry, decode_entry
from dockertw.daemon.workers import Runner

__all__ = ["LogOptions", "read_log", "follow_log"]


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


def read_log(path: Path, limit: int | None, options: LogOptions) -> list[LogEntry]:
    """The log's entries written in its first ``limit`` bytes, filtered as asked."""
    try:
        with open(path, "rb") as file:
            data = file.read() if limit is None else file.read(limit)
    except FileNotFoundError:
        return []
    streams = options.streams
    found = []
    for line in data.splitlines(keepends=True):
        if not line.strip():
            continue
        entry = decode_entry(line)
        if entry.stream not in streams or entry.time_ns <= options.since_ns:
            continue
        if options.until_ns is not None and entry.time_ns > options.until_ns:
            continue
        found.append(entry)
    if options.tail is not None:
        found = found[len(found) - options.tail:] if options.tail > 0 else []
    return found


async def follow_log(path: Path, running: Running, options: LogOptions,
                     send: Callable[[LogEntry], None], reader: Runner) -> None:
    """Send the kept entries, then live ones until the run ends (or cancellation)."""
    streams = options.streams
    pending: list[LogEntry] = []

    def buffer(entry: LogEntry) -> None:
        if entry.stream in streams:
            pending.append(entry)

    def live(entry: LogEntry) -> None:
        if entry.stream in streams:
            send(entry)

    follow: LogListener = buffer
    running.listeners.append(follow)
    limit = running.log.size
    try:
        for entry in await reader(lambda: read_log(path, limit, options)):
            send(entry)
        for entry in pending:
            send(entry)
        running.listeners.remove(follow)
        follow = live
        running.listeners.append(follow)
        await chained(running.finished)
    finally:
        if follow in running.listeners:
            running.listeners.remove(follow)


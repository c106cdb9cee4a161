"""A body (of a request, or of a registry's response) handed to a worker thread while it
still arrives.

The reactor writes the chunks it decodes; a worker thread reads them as a file.  When
more than ``high_water`` bytes wait, the network is paused (``pause``); the reader asks
for ``resume`` (through ``call_in_reactor``) once they fall under ``low_water``.  So an
upload of any size holds a few MiB of memory and is never written to a temporary file.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

__all__ = ["BodyPipe", "BodyLost"]


class BodyLost(OSError):
    """The connection closed before the whole body arrived."""


class BodyPipe:
    """Written by the reactor thread, read (blocking) by one worker thread."""

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None],
                 call_in_reactor: Callable[[Callable[[], None]], None],
                 high_water: int = 8 << 20, low_water: int = 2 << 20) -> None:
        self._pause, self._resume, self._call_in_reactor = pause, resume, call_in_reactor
        self._high, self._low = high_water, low_water
        self._chunks: deque[bytes | memoryview] = deque()
        self._buffered = 0
        self._received = 0
        self._paused = False
        self._discarding = False
        self._ended = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()

    # ------------------------------------------------------------ reactor side

    def write(self, data: bytes) -> None:
        """A chunk of the body arrived."""
        with self._ready:
            self._received += len(data)
            if self._discarding or not data:
                return
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > self._high and not self._paused:
                self._paused = True
                self._pause()
            self._ready.notify()

    def end(self) -> None:
        """The whole body arrived."""
        with self._ready:
            self._ended = True
            self._ready.notify_all()

    def fail(self, error: BaseException) -> None:
        """The body will never be complete: readers get ``error``."""
        with self._ready:
            if not self._ended:
                self._error = error
            self._ready.notify_all()

    def discard(self) -> None:
        """Nobody will read any more: drop what waits and what still comes."""
        with self._ready:
            self._discarding = True
            self._chunks.clear()
            self._buffered = 0
            self._ready.notify_all()
            self._resume_reading()

    @property
    def ended(self) -> bool:
        return self._ended

    def tell(self) -> int:
        """Bytes received so far (what a spooled body's position would be)."""
        return self._received

    # ------------------------------------------------------------ worker side

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all that is left when negative), blocking until
        some arrive; ``b""`` at the end of the body."""
        if size < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        return b"".join(self.read_chunks(size))

    def read_chunks(self, limit: int) -> list[bytes | memoryview]:
        """The chunks as they arrived, at most ``limit`` bytes in all (the last one
        cut without a copy), blocking until some arrive; ``[]`` at the end."""
        with self._ready:
            while not self._chunks and not self._finished():
                self._ready.wait()
            if self._error is not None and not self._chunks:
                raise self._error
            taken = self._take(limit)
            if self._paused and self._buffered < self._low:
                self._resume_reading()
            return taken

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.discard()

    def _finished(self) -> bool:
        return self._ended or self._error is not None or self._discarding

    def _take(self, limit: int) -> list[bytes | memoryview]:
        taken: list[bytes | memoryview] = []
        room = limit
        while self._chunks and room > 0:
            chunk = self._chunks.popleft()
            if len(chunk) > room:
                view = memoryview(chunk)
                self._chunks.appendleft(view[room:])
                chunk = view[:room]
            taken.append(chunk)
            room -= len(chunk)
        self._buffered -= limit - room
        return taken

    def _resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._call_in_reactor(self._resume)

"""Docker's multiplexed stdio framing ("stdcopy"), sans-IO.

A frame is an 8-byte header — stream byte, three zero bytes, big-endian payload
length — then the payload.  Stream 0 is stdin (read as stdout), 1 stdout, 2 stderr,
3 an error from the daemon.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import attrs

__all__ = ["Stream", "Chunk", "StdcopyError", "DaemonStreamError", "encode_frame",
           "StdcopyDecoder"]

_HEADER = struct.Struct(">B3xI")


class Stream(IntEnum):
    STDIN = 0
    STDOUT = 1
    STDERR = 2
    SYSTEMERR = 3


class StdcopyError(ValueError):
    """The byte stream is not stdcopy framing."""


class DaemonStreamError(StdcopyError):
    """The daemon reported an error in-band (stream 3)."""


@attrs.frozen
class Chunk:
    stream: Stream
    data: bytes


def encode_frame(stream: Stream, data: bytes) -> bytes:
    """One frame carrying ``data``; an empty write produces nothing, as Docker's writer."""
    if not data:
        return b""
    return _HEADER.pack(stream, len(data)) + data


class StdcopyDecoder:
    """Feed bytes as they arrive; get whole frames back as :class:`Chunk` values.

    Frames split across reads and several frames per read are both fine.  A frame on
    stream 3 raises :class:`DaemonStreamError` with the daemon's message.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Chunk]:
        self._buffer += data
        chunks: list[Chunk] = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + length
            if kind > Stream.SYSTEMERR:
                raise StdcopyError(f"unrecognized stream: {kind}")
            if len(self._buffer) < end:
                break
            payload = bytes(self._buffer[_HEADER.size:end])
            del self._buffer[:end]
            if kind == Stream.SYSTEMERR:
                raise DaemonStreamError(
                    f"error from daemon in stream: {payload.decode('utf-8', 'replace')}")
            stream = Stream.STDOUT if kind == Stream.STDIN else Stream(kind)
            chunks.append(Chunk(stream, payload))
        return chunks

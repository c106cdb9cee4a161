"""Tar-split: keep a layer tar's own bytes so an unpacked layer can be saved byte-exact.

A layer's diff ID is the sha256 of its tar exactly as received, and layers are kept
unpacked, so ``docker save`` must rebuild those exact bytes.  As Docker's tar-split
does, the extractor records everything that is not regular-file content (headers,
PAX and GNU long-name blocks, padding, end-of-archive blocks, trailing bytes) and,
per regular file written to disk, its path and size.  Replaying the record with the
file contents read back from the layer directory yields the original stream.

The record is a gzip stream of items, after a magic line:

* ``S`` + 4-byte big-endian length + raw bytes;
* ``F`` + 8-byte big-endian size + 4-byte big-endian path length + the path (bytes,
  relative to the layer directory, components separated by ``/``).

:class:`Recorder` is sans-IO: it is fed the uncompressed bytes in order, told which
byte ranges are file contents, and writes items to a binary file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dockertw.errdefs import System

__all__ = ["MAGIC", "Recorder", "replay", "read_items", "stream_size"]

MAGIC = b"dockertw-tar-split 1\n"
_CHUNK = 1 << 20
_FLUSH_AT = 1 << 16
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Recorder:
    """Builds the record of one tar stream into ``output`` (an open binary file)."""

    def __init__(self, output: IO[bytes]) -> None:
        self._out = gzip.GzipFile(fileobj=output, mode="wb", compresslevel=6, mtime=0)
        self._out.write(MAGIC)
        self._fed = 0  # stream position of the next byte fed
        self._pending = bytearray()  # bytes from ``_pending_start`` not yet written
        self._pending_start = 0
        self._skip_until = 0  # bytes below this position are file contents

    def feed(self, data: bytes | memoryview) -> None:
        """The next bytes of the uncompressed stream, in order."""
        start, self._fed = self._fed, self._fed + len(data)
        if start < self._skip_until:
            data = data[self._skip_until - start:]
        self._pending += data

    def settle(self, position: int) -> None:
        """Bytes before ``position`` can no longer be file contents: write them out."""
        if len(self._pending) >= _FLUSH_AT:
            self._write_segment(min(position, self._fed))

    def file(self, offset: int, size: int, path: str) -> None:
        """Bytes ``offset`` to ``offset + size`` are the contents of ``path``."""
        if offset < self._pending_start or offset > self._fed:
            raise ValueError(f"file contents at {offset} are not where the stream is")
        self._write_segment(offset)
        name = os.fsencode(path)
        self._out.write(b"F" + struct.pack(">QI", size, len(name)) + name)
        end = offset + size
        del self._pending[:max(0, min(end, self._fed) - offset)]
        self._pending_start = end
        self._skip_until = end

    def close(self) -> None:
        """Write what is left (the end of the archive and any trailing bytes)."""
        self._write_segment(self._fed)
        self._out.close()

    def _write_segment(self, end: int) -> None:
        count = end - self._pending_start
        if count <= 0:
            return
        self._out.write(b"S" + struct.pack(">I", count) + bytes(self._pending[:count]))
        del self._pending[:count]
        self._pending_start = end


# -- reading a record ----------------------------------------------------------------


def _exact(source: gzip.GzipFile, count: int) -> bytes:
    data = source.read(count)
    if len(data) != count:
        raise System("the layer's tar-split record is truncated")
    return data


def read_items(record: IO[bytes]) -> Iterator[bytes | tuple[str, int]]:
    """The items of a record: raw bytes, or ``(path, size)`` for a file's contents."""
    with gzip.GzipFile(fileobj=record, mode="rb") as source:
        if source.read(len(MAGIC)) != MAGIC:
            raise System("the layer's tar-split record is not in a known format")
        while kind := source.read(1):
            if kind == b"S":
                (count,) = struct.unpack(">I", _exact(source, 4))
                yield _exact(source, count)
            elif kind == b"F":
                size, length = struct.unpack(">QI", _exact(source, 12))
                yield os.fsdecode(_exact(source, length)), size
            else:
                raise System("the layer's tar-split record is corrupt")


def stream_size(record: Path) -> int:
    """The length of the tar stream ``record`` describes (no file is read)."""
    with record.open("rb") as source:
        return sum(len(item) if isinstance(item, bytes) else item[1]
                   for item in read_items(source))


# -- replay --------------------------------------------------------------------------


def _open_inside(root: Path, path: str) -> int:
    """Open the regular file ``path`` under ``root``, following no symbolic link."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise System(f'the layer\'s tar-split record names a bad path "{path}"')
    current = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=current)
            os.close(current)
            current = child
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=current)
    finally:
        os.close(current)


def _file_contents(root: Path, path: str, size: int) -> Iterator[bytes]:
    try:
        descriptor = _open_inside(root, path)
    except OSError as error:
        raise System(f'cannot read "{path}" of the layer: {error.strerror}') from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode) or info.st_size != size:
            raise System(f'"{path}" of the layer changed since it was unpacked '
                         f"(expected a {size}-byte file)")
        left = size
        while left:
            chunk = os.read(descriptor, min(_CHUNK, left))
            if not chunk:
                raise System(f'"{path}" of the layer is shorter than recorded')
            left -= len(chunk)
            yield chunk
    finally:
        os.close(descriptor)


def _chunks(record: Path, root: Path) -> Iterator[bytes]:
    with record.open("rb") as source:
        for item in read_items(source):
            if isinstance(item, bytes):
                yield item
            else:
                yield from _file_contents(root, *item)


def replay(record: Path, root: Path, expected_diff_id: str) -> Iterator[bytes]:
    """The original layer tar, from ``record`` and the files under ``root``.

    The stream is hashed as it goes; its last piece is held back until the hash is
    known, and a mismatch with ``expected_diff_id`` raises ``System`` instead.
    """
    digest = hashlib.sha256()
    held = b""
    for chunk in _chunks(record, root):
        if held:
            yield held
        digest.update(chunk)
        held = chunk
    found = "sha256:" + digest.hexdigest()
    if found != expected_diff_id:
        raise System(f"layer {expected_diff_id} cannot be saved: its replayed tar stream "
                     f"hashes to {found}")
    if held:
        yield held

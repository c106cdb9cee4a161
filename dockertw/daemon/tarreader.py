"""A streaming tar reader that hands file contents on without copying them.

:mod:`tarfile` in stream mode copies every byte of a member two or three times before
the caller sees it; at a few hundred MB/s that is most of the cost of ``docker cp``
into a container.  :class:`TarReader` parses headers (with :meth:`tarfile.TarInfo.
frombuf`, plus PAX and GNU long-name records) and gives a member's contents as the
very chunks its source produced, ready for ``os.writev`` (:func:`write_all`).

A source is anything with ``read_chunks(limit)`` (:class:`ChunkSource`): a list of
bytes-like chunks of at most ``limit`` bytes in all, empty at the end.
:func:`open_source` adapts a file object and undoes gzip, bzip2 and xz compression, as
Docker accepts them for ``PUT /containers/{id}/archive``.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import re
import tarfile
from collections import deque
from collections.abc import Iterator
from typing import IO, Any, Protocol

__all__ = ["ChunkSource", "FileChunks", "TarReader", "open_source", "peek", "write_all"]

Chunk = bytes | memoryview
_BLOCK = 512
_IOV_MAX = 1024
_ZERO_BLOCK = bytes(_BLOCK)
_ZEROS = memoryview(bytes(1 << 20))  # a sparse file's holes are handed on from here
_MAX_SPARSE_LINES = 1 << 20
_SPARSE_00 = re.compile(rb"\d+ GNU\.sparse\.(?:offset|numbytes)=(\d+)\n")
_number = tarfile.nti  # type: ignore[attr-defined]  # a header's number field
_HEADER_ONLY = {tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE,
                tarfile.DIRTYPE, tarfile.FIFOTYPE}
_PAX_STRINGS = {"path": "name", "linkpath": "linkname", "uname": "uname",
                "gname": "gname"}
_PAX_INTEGERS = {"size", "uid", "gid"}
_COMPRESSED: tuple[tuple[bytes, Any], ...] = (
    (b"\x1f\x8b\x08", lambda raw: gzip.GzipFile(fileobj=raw)), (b"BZh", bz2.BZ2File),
    (b"\xfd7zXZ\x00", lzma.LZMAFile))


class ChunkSource(Protocol):
    def read_chunks(self, limit: int) -> list[Chunk]: ...


class FileChunks:
    """A file object (anything with ``read(size)``) as a :class:`ChunkSource`."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read_chunks(self, limit: int) -> list[Chunk]:
        data = self._stream.read(limit)
        return [data] if data else []


class _Replayed:
    """Chunks already read, then the rest of ``source``; also a file for decompressors."""

    def __init__(self, first: list[Chunk], source: ChunkSource) -> None:
        self._first, self._source = deque(first), source

    def read_chunks(self, limit: int) -> list[Chunk]:
        if not self._first:
            return self._source.read_chunks(limit)
        chunk = self._first.popleft()
        if len(chunk) > limit:
            self._first.appendleft(memoryview(chunk)[limit:])
            chunk = memoryview(chunk)[:limit]
        return [chunk]

    def read(self, size: int = -1) -> bytes:
        return b"".join(self.read_chunks(size if size >= 0 else 1 << 20))

    def readinto(self, buffer: Any) -> int:
        """``read`` into ``buffer`` (what ISA-L's gzip reader asks of its source)."""
        target = memoryview(buffer).cast("B")
        filled = 0
        for chunk in self.read_chunks(len(target)):
            target[filled:filled + len(chunk)] = chunk
            filled += len(chunk)
        return filled

    def readable(self) -> bool:
        return True


def peek(source: ChunkSource | IO[bytes], size: int) -> tuple[bytes, _Replayed]:
    """The first ``size`` bytes of ``source`` (a chunk source or a file; fewer if it
    ends sooner), and ``source`` read from its start again (also as a file)."""
    chunks: ChunkSource = source if hasattr(source, "read_chunks") else FileChunks(source)
    head: list[Chunk] = []
    count = 0
    while count < size:
        more = chunks.read_chunks(size - count)
        if not more:
            break
        head += more
        count += sum(len(chunk) for chunk in more)
    return b"".join(head), _Replayed(head, chunks)


def open_source(source: ChunkSource | IO[bytes]) -> ChunkSource:
    """``source`` (a chunk source or a file) with gzip, bzip2 or xz compression undone."""
    magic, replayed = peek(source, 6)
    for prefix, opener in _COMPRESSED:
        if magic.startswith(prefix):
            return FileChunks(opener(replayed))
    return replayed


def write_all(fd: int, chunks: list[Chunk]) -> None:
    """All of ``chunks``, in as few ``writev`` calls as the kernel allows."""
    while chunks:
        written = os.writev(fd, chunks[:_IOV_MAX])
        while chunks and written >= len(chunks[0]):
            written -= len(chunks[0])
            chunks = chunks[1:]
        if written:
            chunks = [memoryview(chunks[0])[written:], *chunks[1:]]


class TarReader:
    """The members of an uncompressed tar stream, in order.

    Iterate for :class:`tarfile.TarInfo` values (names, link names, sizes, owners and
    times with PAX and GNU long-name records applied); before moving on, the current
    member's contents can be read with :meth:`contents`.  As :mod:`tarfile` does, each
    member's ``pax_headers`` holds its PAX records (the global ones merged with its
    own), ``offset`` is where its first header starts and ``offset_data`` where its
    contents start, counted in bytes of the stream; :attr:`offset` is how many bytes
    have been taken from the source and :attr:`member_end` where the current member's
    contents and their padding end.  Malformed or truncated input raises
    :class:`tarfile.TarError`.  Sparse members are refused unless ``sparse`` is true:
    then, as with :mod:`tarfile`, their ``sparse`` is the map of their data and
    ``size`` and contents are the whole file's, holes given as zeros (GNU's old format
    and PAX formats 0.0, 0.1 and 1.0).
    """

    def __init__(self, source: ChunkSource, chunk_limit: int = 1 << 20, *,
                 sparse: bool = False) -> None:
        self._source = source
        self._limit = chunk_limit
        self._sparse = sparse
        self._pending: deque[Chunk] = deque()
        self._left = 0  # contents of the current member not read yet
        self._padding = 0  # then this many bytes to the next block
        self._map: list[tuple[int, int]] | None = None  # a sparse member's (offset, size)
        self._real_size = 0  # a sparse member's file size
        self._global: dict[str, str] = {}
        self.offset = 0  # bytes taken from the source
        self.member_end = 0

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while (member := self._next()) is not None:
            yield member

    def contents(self) -> Iterator[list[Chunk]]:
        """The current member's contents, as lists of chunks."""
        if self._map is None:
            yield from self._stored(self._left)
            return
        segments, self._map = self._map, None
        position = 0
        for offset, size in segments:
            yield from _zeros(offset - position, self._limit)
            yield from self._stored(size)
            position = offset + size
        yield from _zeros(self._real_size - position, self._limit)

    def write_contents(self, fd: int) -> None:
        """Write the current member's contents to the file ``fd``."""
        for chunks in self.contents():
            write_all(fd, chunks)

    def _stored(self, size: int) -> Iterator[list[Chunk]]:
        """The next ``size`` bytes of the member's data, as lists of chunks."""
        while size:
            chunks = self._take(min(size, self._limit))
            if not chunks:
                raise tarfile.ReadError("unexpected end of data")
            count = sum(len(chunk) for chunk in chunks)
            size -= count
            self._left -= count
            yield chunks

    def _next(self) -> tarfile.TarInfo | None:
        for _ in self._stored(self._left):
            pass
        self._map = None
        if self._padding and not self._read_exact(self._padding, at_end_ok=True):
            return None  # the end, without padding or end blocks: Go's reader stops too
        self._padding = 0
        start = self.offset
        pax: dict[str, str] = {}  # PAX records and GNU long names, the later winning
        headers: dict[str, str] = {}  # the PAX records only
        while True:
            block = self._read_exact(_BLOCK, at_end_ok=True)
            if not block or block == _ZERO_BLOCK:
                return None  # what follows the end-of-archive block is not read
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            if not self._read_extension(info, pax, headers):
                info.offset = start
                info.pax_headers = {**self._global, **headers}
                return self._member(info, pax)

    def _read_extension(self, info: tarfile.TarInfo, pax: dict[str, str],
                        headers: dict[str, str]) -> bool:
        """Take in a PAX or GNU long-name header; ``False`` for a member's header."""
        if info.type == tarfile.XHDTYPE:
            data = self._read_record(info.size)
            records = _pax_records(data)
            pax.update(records)
            headers.update(records)
            if "GNU.sparse.offset" in records:  # PAX sparse format 0.0 repeats its keys
                pax["GNU.sparse.map"] = ",".join(
                    number.decode() for number in _SPARSE_00.findall(data))
        elif info.type == tarfile.XGLTYPE:
            self._global.update(_pax_records(self._read_record(info.size)))
        elif info.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK):
            text = self._read_record(info.size).split(b"\0", 1)[0]
            key = "path" if info.type == tarfile.GNUTYPE_LONGNAME else "linkpath"
            pax[key] = text.decode("utf-8", "surrogateescape")
        else:
            return False
        return True

    def _member(self, info: tarfile.TarInfo, pax: dict[str, str]) -> tarfile.TarInfo:
        records = {**self._global, **pax}
        sparse = info.type == tarfile.GNUTYPE_SPARSE or any(
            key.startswith("GNU.sparse.") for key in records)
        if sparse and not self._sparse:
            raise tarfile.HeaderError(f"{info.name}: sparse files are not supported")
        segments = self._gnu_sparse_map(info) if info.type == tarfile.GNUTYPE_SPARSE else []
        info.offset_data = self.offset
        _apply_pax(info, records)
        if info.type in _HEADER_ONLY:
            info.size = 0
        self._left = info.size
        self._padding = -info.size % _BLOCK
        self.member_end = self.offset + info.size + self._padding
        if sparse:
            try:
                self._start_sparse(info, records, segments)
            except ValueError:
                raise tarfile.HeaderError(f"{info.name}: invalid sparse map") from None
        return info

    def _gnu_sparse_map(self, info: tarfile.TarInfo) -> list[tuple[int, int]]:
        """GNU's old sparse format: the map in the header, and in blocks after it."""
        segments, extended, self._real_size = info._sparse_structs  # type: ignore[attr-defined]
        while extended:
            block = self._read_exact(_BLOCK)
            for position in range(0, 21 * 24, 24):
                segments.append((_number(block[position:position + 12]),
                                 _number(block[position + 12:position + 24])))
            extended = bool(block[504])
        return list(segments)

    def _start_sparse(self, info: tarfile.TarInfo, records: dict[str, str],
                      segments: list[tuple[int, int]]) -> None:
        """Take in a sparse member's map; its size becomes the file's."""
        if "GNU.sparse.map" in records:  # PAX formats 0.1 and (made so above) 0.0
            numbers = [int(number) for number in records["GNU.sparse.map"].split(",")]
            segments = list(zip(numbers[::2], numbers[1::2], strict=True))
        elif (records.get("GNU.sparse.major"), records.get("GNU.sparse.minor")) == ("1", "0"):
            segments = self._read_sparse_map()
            info.offset_data = self.offset
        elif info.type != tarfile.GNUTYPE_SPARSE:
            raise ValueError("an unknown sparse format")
        if info.type != tarfile.GNUTYPE_SPARSE:
            real = records.get("GNU.sparse.realsize") or records.get("GNU.sparse.size")
            if real is None:
                raise ValueError("no file size")
            self._real_size = int(real)
        info.name = records.get("GNU.sparse.name", info.name)
        segments = [(offset, size) for offset, size in segments if size]
        position = 0
        for offset, size in segments:
            if offset < position or size < 0:
                raise ValueError("segments out of order")
            position = offset + size
        if position > self._real_size or sum(size for _, size in segments) > self._left:
            raise ValueError("segments out of the file")
        info.sparse = segments  # type: ignore[assignment]  # typeshed says bytes; it is not
        info.size, self._map = self._real_size, segments

    def _read_sparse_map(self) -> list[tuple[int, int]]:
        """PAX format 1.0: the map in decimal lines, whole blocks before the data."""
        lines: list[bytes] = []
        tail = b""
        while not lines or len(lines) < 2 * int(lines[0]) + 1:
            if self._left < _BLOCK or len(lines) > _MAX_SPARSE_LINES:
                raise ValueError("the map does not end")
            *complete, tail = (tail + self._read_exact(_BLOCK)).split(b"\n")
            self._left -= _BLOCK
            lines += complete
        numbers = [int(line) for line in lines[1:2 * int(lines[0]) + 1]]
        return list(zip(numbers[::2], numbers[1::2], strict=True))

    def _read_record(self, size: int) -> bytes:
        """An extension header's contents, its padding skipped."""
        data = self._read_exact(size)
        self._read_exact(-size % _BLOCK)
        return data

    def _read_exact(self, size: int, at_end_ok: bool = False) -> bytes:
        parts: list[Chunk] = []
        wanted = size
        while wanted:
            chunks = self._take(wanted)
            if not chunks:
                if at_end_ok and wanted == size:
                    return b""
                raise tarfile.ReadError("unexpected end of data")
            parts += chunks
            wanted -= sum(len(chunk) for chunk in chunks)
        return b"".join(parts)

    def _take(self, limit: int) -> list[Chunk]:
        """At most ``limit`` bytes: what is pending, else the source's next chunks."""
        chunks = list(self._pending) if self._pending else self._source.read_chunks(limit)
        self._pending.clear()
        taken: list[Chunk] = []
        left = limit
        for chunk in chunks:
            if left <= 0:
                self._pending.append(chunk)
            elif len(chunk) > left:
                view = memoryview(chunk)
                taken.append(view[:left])
                self._pending.append(view[left:])
                left = 0
            else:
                taken.append(chunk)
                left -= len(chunk)
        self.offset += limit - left
        return taken


def _zeros(count: int, limit: int) -> Iterator[list[Chunk]]:
    while count > 0:
        size = min(count, limit, len(_ZEROS))
        yield [_ZEROS[:size]]
        count -= size


def _pax_records(data: bytes) -> dict[str, str]:
    """``"<length> <key>=<value>\\n"`` records, as POSIX defines them."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position] != 0:
        space = data.find(b" ", position)
        try:
            length = int(data[position:space])
        except ValueError:
            raise tarfile.HeaderError("invalid PAX record") from None
        record = data[space + 1:position + length]
        if length <= 0 or space < 0 or not record.endswith(b"\n") or b"=" not in record:
            raise tarfile.HeaderError("invalid PAX record")
        key, value = record[:-1].split(b"=", 1)
        records[key.decode("utf-8", "surrogateescape")] = value.decode(
            "utf-8", "surrogateescape")
        position += length
    return records


def _apply_pax(info: tarfile.TarInfo, records: dict[str, str]) -> None:
    try:
        for key, value in records.items():
            if key in _PAX_STRINGS:
                setattr(info, _PAX_STRINGS[key], value)
            elif key in _PAX_INTEGERS:
                setattr(info, key, int(value))
            elif key == "mtime":
                info.mtime = float(value)
    except ValueError:
        raise tarfile.HeaderError(f"invalid PAX value in {info.name!r}") from None
    if info.isdir():
        info.name = info.name.rstrip("/") or info.name

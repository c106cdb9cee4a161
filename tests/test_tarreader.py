"""The streaming tar reader against archives written by :mod:`tarfile` (and by hand)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockertw.daemon.tarreader import Chunk, FileChunks, TarReader, open_source, write_all
from tests.archives import gnu_sparse, pax_sparse, sparse_content


class _Trickle:
    """A chunk source giving at most ``step`` bytes per call (every boundary tried)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._step, self._at = data, step, 0

    def read_chunks(self, limit: int) -> list[Chunk]:
        size = min(limit, self._step, len(self._data) - self._at)
        chunk = memoryview(self._data)[self._at:self._at + size]
        self._at += size
        return [chunk] if size else []


def _archive(format: int, *members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _read_all(source: object) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    reader = TarReader(open_source(source))  # type: ignore[arg-type]
    for member in reader:
        yield member, b"".join(b"".join(chunks) for chunks in reader.contents())


LONG = "deep/" + "n" * 150 + "/file"
SAMPLE = (
    (_info("dir", tarfile.DIRTYPE, mode=0o750, uid=7, gid=8, mtime=1_600_000_000), b""),
    (_info("dir/file", mode=0o640, uid=1000, gid=1001), b"x" * 70_000),
    (_info(LONG), b"long name"),
    (_info("link", tarfile.SYMTYPE, linkname="l" * 120), b""),
    (_info("hard", tarfile.LNKTYPE, linkname="dir/file"), b""),
    (_info("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
    (_info("fifo", tarfile.FIFOTYPE), b""),
    (_info("empty"), b""),
)


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("step", [1, 511, 512, 4096, 1 << 20])
def test_members_and_contents_match_tarfile(format: int, step: int) -> None:
    data = _archive(format, *SAMPLE)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = [(m.name, m.type, m.mode, m.uid, m.gid, int(m.mtime), m.linkname,
                     m.devmajor, m.devminor, tar.extractfile(m).read() if m.isreg() else b"")
                    for m in tar]  # type: ignore[union-attr]
    got = [(m.name, m.type, m.mode, m.uid, m.gid, int(m.mtime), m.linkname, m.devmajor,
            m.devminor, contents) for m, contents in _read_all(_Trickle(data, step))]
    assert got == expected
    assert [name for name, *_ in got][2] == LONG


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("step", [1, 700, 1 << 20])
def test_offsets_and_pax_headers_match_tarfile(format: int, step: int) -> None:
    xattr = _info("xattr", mtime=7)
    xattr.pax_headers = {"SCHILY.xattr.user.k": "v\n=", "mtime": "7.25"}
    data = _archive(format, *SAMPLE, (xattr, b"123"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        expected = [(m.name, m.offset, m.offset_data, m.pax_headers, m.sparse)
                    for m in tar]
    reader = TarReader(_Trickle(data, step))
    got = [(m.name, m.offset, m.offset_data, m.pax_headers, m.sparse) for m in reader]
    assert got == expected
    if format == tarfile.PAX_FORMAT:  # GNU's format has no PAX records
        assert expected[-1][3]["SCHILY.xattr.user.k"] == "v\n="
    end = expected[-1][2] + 2 * 512  # the last member's contents, then one end block
    assert reader.offset == end


def test_pax_headers_merge_the_global_records_with_the_members_own() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"uid": "77", "comment": "global"}) as tar:
        own = _info("a")
        own.pax_headers = {"comment": "own", "SCHILY.xattr.user.x": "1"}
        tar.addfile(own, io.BytesIO(b""))
        tar.addfile(_info("b"), io.BytesIO(b""))
    headers = [m.pax_headers for m, _ in _read_all(io.BytesIO(buffer.getvalue()))]
    assert headers == [{"uid": "77", "comment": "own", "SCHILY.xattr.user.x": "1"},
                       {"uid": "77", "comment": "global"}]


def test_gnu_long_names_are_not_pax_headers() -> None:
    data = _archive(tarfile.GNU_FORMAT, (_info(LONG), b"x"))
    [(member, _)] = list(_read_all(io.BytesIO(data)))
    assert (member.name, member.pax_headers, member.offset_data) == (LONG, {}, 1536)


def test_write_all_writes_every_chunk_in_order(tmp_path: Path) -> None:
    chunks: list[Chunk] = [bytes([n % 251]) * (n % 7 + 1) for n in range(3000)]
    chunks.append(memoryview(b"tail"))
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        write_all(fd, chunks)
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == b"".join(chunks)


def test_contents_arrive_as_the_sources_own_chunks() -> None:
    data = _archive(tarfile.PAX_FORMAT, (_info("f"), b"a" * 3000))
    reader = TarReader(_Trickle(data, 1024), chunk_limit=1 << 20)
    next(iter(reader))
    sizes = [[len(chunk) for chunk in chunks] for chunks in reader.contents()]
    assert sum(map(sum, sizes)) == 3000 and all(len(chunks) == 1 for chunks in sizes)


def test_unread_contents_are_skipped() -> None:
    data = _archive(tarfile.USTAR_FORMAT, (_info("a"), b"1" * 1000), (_info("b"), b"2"))
    reader = TarReader(FileChunks(io.BytesIO(data)))
    names = [member.name for member in reader]
    assert names == ["a", "b"]


def test_pax_records_override_the_header() -> None:
    info = _info("short", mtime=5)
    info.pax_headers = {"path": "from/pax", "uid": "4294967", "mtime": "1234.5",
                        "uname": "ü", "SCHILY.xattr.user.x": "ignored"}
    data = _archive(tarfile.PAX_FORMAT, (info, b"body"))
    [(member, contents)] = list(_read_all(io.BytesIO(data)))
    assert (member.name, member.uid, member.mtime, member.uname, contents) == (
        "from/pax", 4294967, 1234.5, "ü", b"body")


def test_a_global_pax_header_applies_to_every_member() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"uid": "77"}) as tar:
        for name in ("a", "b"):
            tar.addfile(_info(name), io.BytesIO(b""))
    assert [m.uid for m, _ in _read_all(io.BytesIO(buffer.getvalue()))] == [77, 77]


def test_empty_input_and_end_blocks_only_hold_no_members() -> None:
    assert list(_read_all(io.BytesIO(b""))) == []
    assert list(_read_all(io.BytesIO(bytes(10240)))) == []


def test_what_follows_the_end_of_the_archive_is_not_read() -> None:
    data = _archive(tarfile.USTAR_FORMAT, (_info("a"), b"1")) + b"trailing junk"
    assert [m.name for m, _ in _read_all(io.BytesIO(data))] == ["a"]


def test_an_archive_without_end_blocks_ends_at_a_member_boundary() -> None:
    data = _archive(tarfile.USTAR_FORMAT, (_info("a"), b"1"))  # as Go's reader
    assert [m.name for m, _ in _read_all(io.BytesIO(data[:1024]))] == ["a"]


@pytest.mark.parametrize("cut", [100, 512, 700, 1600])
def test_truncated_archives_are_errors(cut: int) -> None:
    data = _archive(tarfile.USTAR_FORMAT, (_info("a"), b"x" * 1000), (_info("b"), b"y"))
    with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        list(_read_all(io.BytesIO(data[:cut])))


def test_a_bad_checksum_is_an_error() -> None:
    data = bytearray(_archive(tarfile.USTAR_FORMAT, (_info("a"), b"x")))
    data[0] ^= 0xFF
    with pytest.raises(tarfile.HeaderError):
        list(_read_all(io.BytesIO(bytes(data))))


@pytest.mark.parametrize("record", [b"8 path=x\n", b"x path=y\n", b"12 pathxyzw\n",
                                    b"13 mtime=abc\n"])
def test_malformed_pax_records_are_errors(record: bytes) -> None:
    header = _info("././@PaxHeader", tarfile.XHDTYPE, size=len(record)).tobuf(
        tarfile.USTAR_FORMAT)
    data = header + record.ljust(512, b"\0") + _archive(tarfile.USTAR_FORMAT,
                                                        (_info("a"), b""))
    with pytest.raises(tarfile.HeaderError):
        list(_read_all(io.BytesIO(data)))


def test_sparse_members_are_refused() -> None:
    info = _info("sparse")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with pytest.raises(tarfile.HeaderError, match="sparse"):
        list(_read_all(io.BytesIO(_archive(tarfile.PAX_FORMAT, (info, b"data")))))


SPARSE_SEGMENTS = [(1000 * n * n, 700) for n in range(1, 9)]  # 8: past the header's 4
SPARSE_FILE = sparse_content(300_000, SPARSE_SEGMENTS)


SPARSE_KINDS = {
    "gnu": lambda name: gnu_sparse(name, SPARSE_FILE, SPARSE_SEGMENTS),
    "pax-0.1": lambda name: pax_sparse("0.1", name, SPARSE_FILE, SPARSE_SEGMENTS),
    "pax-1.0": lambda name: pax_sparse("1.0", name, SPARSE_FILE, SPARSE_SEGMENTS),
}


@pytest.mark.parametrize("kind", SPARSE_KINDS)
@pytest.mark.parametrize("step", [1000, 1 << 20])
def test_sparse_members_read_as_tarfile_reads_them(kind: str, step: int) -> None:
    data = (SPARSE_KINDS[kind]("holes") + _archive(tarfile.USTAR_FORMAT,
                                                   (_info("after"), b"next")))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        expected = [(m.name, m.size, m.offset, m.offset_data, m.sparse is not None,
                     tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    reader = TarReader(_Trickle(data, step), sparse=True)
    got = []
    for member in reader:
        contents = b"".join(b"".join(chunks) for chunks in reader.contents())
        got.append((member.name, member.size, member.offset, member.offset_data,
                    member.sparse is not None, contents))
    assert got == expected
    assert got[0][5] == SPARSE_FILE and got[0][4]


@pytest.mark.parametrize("kind", SPARSE_KINDS)
def test_unread_sparse_members_are_skipped(kind: str) -> None:
    data = SPARSE_KINDS[kind]("holes") + _archive(tarfile.USTAR_FORMAT,
                                                  (_info("after"), b"next"))
    assert [m.name for m, _ in _read_all_sparse(data, read={"after"})] == ["holes", "after"]


def _read_all_sparse(data: bytes, read: set[str]) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    reader = TarReader(FileChunks(io.BytesIO(data)), sparse=True)
    for member in reader:
        yield member, (b"".join(b"".join(c) for c in reader.contents())
                       if member.name in read else b"")


@pytest.mark.parametrize("segments", [[(5000, 10), (100, 10)], [(0, 10), (5, 10)],
                                      [(299_990, 100)]])
@pytest.mark.parametrize("version", ["0.1", "1.0"])
def test_bad_sparse_maps_are_errors(segments: list[tuple[int, int]], version: str) -> None:
    data = pax_sparse(version, "bad", bytes(300_000), segments)
    with pytest.raises(tarfile.HeaderError, match="bad: invalid sparse map"):
        list(_read_all_sparse(data, read=set()))


@pytest.mark.parametrize("records", [
    {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "9"},
    {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"},
    {"GNU.sparse.major": "2", "GNU.sparse.minor": "0", "GNU.sparse.realsize": "9"}])
def test_sparse_members_without_a_readable_map_are_errors(records: dict[str, str]) -> None:
    info = _info("bad")
    info.pax_headers = records
    data = _archive(tarfile.PAX_FORMAT, (info, b"1" * 2000))  # no line ends the map
    with pytest.raises(tarfile.HeaderError, match="bad: invalid sparse map"):
        list(_read_all_sparse(data, read=set()))


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
@pytest.mark.parametrize("options", [["--format=gnu"]] + [
    ["--format=posix", f"--sparse-version={version}"] for version in ("0.0", "0.1", "1.0")])
def test_gnu_tars_sparse_archives(tmp_path: Path, options: list[str]) -> None:
    with (tmp_path / "holes").open("wb") as sparse:
        for offset, size in SPARSE_SEGMENTS:
            sparse.seek(offset)
            sparse.write(SPARSE_FILE[offset:offset + size])
        sparse.truncate(len(SPARSE_FILE))
    data = subprocess.run(["tar", "-C", str(tmp_path), "-cSf", "-", *options, "holes"],
                          check=True, capture_output=True).stdout
    [(member, contents)] = list(_read_all_sparse(data, read={"holes"}))
    assert (member.name, member.size, contents) == ("holes", len(SPARSE_FILE), SPARSE_FILE)


@pytest.mark.parametrize("compress", [lambda b: gzip.compress(b) + gzip.compress(b""),
                                      bz2.compress, lzma.compress])
def test_compressed_archives_are_undone(compress: Callable[[bytes], bytes]) -> None:
    data = _archive(tarfile.PAX_FORMAT, *SAMPLE)
    names = [m.name for m, _ in _read_all(_Trickle(compress(data), 3))]
    assert names == [info.name for info, _ in SAMPLE]

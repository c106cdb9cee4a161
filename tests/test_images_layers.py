"""Layer tars: diff and chain IDs, safe extraction, whiteouts, metadata."""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from collections import deque
from pathlib import Path

import pytest

from dockertw.daemon.images import layers as layers_module
from dockertw.daemon.images.layers import (
    chain_id,
    chain_ids,
    diff_id,
    extract_layer,
    open_uncompressed,
)
from dockertw.daemon.tarreader import Chunk, ChunkSource
from dockertw.errdefs import InvalidParameter

MTIME = 1_600_000_000
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _info(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def _file(name: str, data: bytes = b"", **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    info = _info(name, **fields)
    info.size = len(data)
    return info, data


def _dir(name: str, **fields: object) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.DIRTYPE, **fields), None


def _symlink(name: str, target: str, **fields: object) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.SYMTYPE, linkname=target, **fields), None


def _hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    return _info(name, tarfile.LNKTYPE, linkname=target), None


def _tar(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _extract(data: bytes, target: Path, **options: bool):
    target.mkdir(exist_ok=True)
    return extract_layer(io.BytesIO(data), target, **options)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``(root, outside)``: the extraction target and a sibling that must stay empty."""
    outside = tmp_path / "outside"
    outside.mkdir()
    return tmp_path / "root", outside


# -- digests -----------------------------------------------------------------------


def test_diff_id_is_the_sha256_of_the_uncompressed_stream(tmp_path: Path):
    data = _tar(_file("a", b"hello"))
    assert diff_id(io.BytesIO(data)) == _sha(data)
    assert diff_id(io.BytesIO(gzip.compress(data))) == _sha(data)
    assert diff_id(io.BytesIO(bz2.compress(data))) == _sha(data)
    assert diff_id(io.BytesIO(lzma.compress(data))) == _sha(data)
    result = _extract(gzip.compress(data), tmp_path / "r")
    assert result.diff_id == _sha(data)


def test_diff_id_covers_trailing_bytes_after_the_end_marker(tmp_path: Path):
    data = _tar(_file("a", b"x")) + b"\0" * 4096
    assert _extract(data, tmp_path / "r").diff_id == _sha(data)


def _drained(source: ChunkSource) -> bytes:
    return b"".join(b"".join(chunks) for chunks in iter(
        lambda: source.read_chunks(1 << 20), []))


class _Body:
    """A chunk source handing on its chunks as they are (as a streamed request body)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = deque(chunks)

    def read_chunks(self, limit: int) -> list[Chunk]:
        if not self.chunks:
            return []
        chunk = self.chunks.popleft()
        if len(chunk) > limit:
            self.chunks.appendleft(memoryview(chunk)[limit:])
            chunk = memoryview(chunk)[:limit]
        return [chunk]


def test_open_uncompressed_passes_plain_tar_through():
    data = _tar(_file("a", b"x"))
    assert _drained(open_uncompressed(io.BytesIO(data))) == data
    assert _drained(open_uncompressed(io.BytesIO(gzip.compress(data)))) == data
    first, rest = data[:1024], data[1024:]
    source = open_uncompressed(_Body(first, rest))
    assert b"".join(source.read_chunks(6) + source.read_chunks(1 << 20)) == first
    [chunk] = source.read_chunks(1 << 20)
    assert chunk is rest  # not copied


def test_a_streamed_body_is_unpacked_from_its_own_chunks(tmp_path: Path):
    contents = os.urandom(300_000)
    data = _tar(_file("a", contents)) + b"trailing"
    body = _Body(*(data[at:at + 65536] for at in range(0, len(data), 65536)))
    (tmp_path / "r").mkdir()
    assert extract_layer(body, tmp_path / "r").diff_id == _sha(data)
    assert (tmp_path / "r" / "a").read_bytes() == contents


def test_chain_ids_follow_the_docker_formula():
    first, second, third = (_sha(bytes([n])) for n in range(3))
    two = "sha256:" + hashlib.sha256(f"{first} {second}".encode()).hexdigest()
    three = "sha256:" + hashlib.sha256(f"{two} {third}".encode()).hexdigest()
    assert chain_ids([first, second, third]) == [first, two, three]
    assert chain_id(None, first) == first
    assert chain_id(two, third) == three
    assert chain_ids([]) == []


def test_empty_stream_is_an_empty_layer(tmp_path: Path):
    result = _extract(b"", tmp_path / "r")
    assert result.diff_id == _sha(b"") and result.size == 0
    assert list((tmp_path / "r").iterdir()) == []


def test_garbage_and_truncated_input_are_invalid(tmp_path: Path):
    with pytest.raises(InvalidParameter, match="invalid tar stream"):
        _extract(b"this is not a tar archive" * 40, tmp_path / "a")
    truncated = gzip.compress(_tar(_file("a", os.urandom(4096))))[:-40]
    with pytest.raises(InvalidParameter, match="gzip"):
        _extract(truncated, tmp_path / "b")
    cut = _tar(_file("a", b"x" * 5000))[:1500]
    with pytest.raises(InvalidParameter):
        _extract(cut, tmp_path / "c")


def test_zstd_is_refused_clearly(tmp_path: Path):
    with pytest.raises(InvalidParameter, match="zstd"):
        _extract(b"\x28\xb5\x2f\xfd" + b"\0" * 100, tmp_path / "r")


# -- plain extraction and metadata -------------------------------------------------


def test_files_directories_modes_and_size(tmp_path: Path):
    root = tmp_path / "r"
    data = _tar(
        _dir("bin", mode=0o750),
        _file("bin/tool", b"#!/bin/sh\n", mode=0o4755),
        _file("./etc/conf", b"k=v\n", mode=0o600),  # parent created implicitly
        _symlink("bin/sh", "/bin/tool"),
        _hardlink("bin/again", "bin/tool"),
    )
    result = _extract(data, root)
    assert (root / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((root / "bin/tool").stat().st_mode) == 0o4755
    assert stat.S_IMODE((root / "bin").stat().st_mode) == 0o750
    assert stat.S_IMODE((root / "etc/conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o755
    assert os.readlink(root / "bin/sh") == "/bin/tool"
    assert (root / "bin/again").stat().st_ino == (root / "bin/tool").stat().st_ino
    assert result.size == len(b"#!/bin/sh\n") + len(b"k=v\n") + len("/bin/tool")
    assert result.diff_id == _sha(data)


def test_modification_times_are_kept_including_directories(tmp_path: Path):
    root = tmp_path / "r"
    entry, _ = _file("d/f", b"x")
    entry.pax_headers = {"mtime": "1500000000.123456789"}
    _extract(_tar(_dir("d", mtime=1_400_000_000), (entry, b"x"),
                  _symlink("d/l", "f", mtime=1_300_000_000)), root)
    assert (root / "d").stat().st_mtime_ns == 1_400_000_000 * 10**9
    assert (root / "d/f").stat().st_mtime_ns == 1_500_000_000_123_456_789
    assert os.lstat(root / "d/l").st_mtime_ns == 1_300_000_000 * 10**9


@ROOT_ONLY
def test_ownership_is_kept(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(_dir("d", uid=1000, gid=1001), _file("d/f", b"x", uid=1234, gid=5678),
                  _symlink("d/l", "f", uid=42, gid=43)), root)
    assert (os.stat(root / "d").st_uid, os.stat(root / "d").st_gid) == (1000, 1001)
    assert (os.stat(root / "d/f").st_uid, os.stat(root / "d/f").st_gid) == (1234, 5678)
    assert (os.lstat(root / "d/l").st_uid, os.lstat(root / "d/l").st_gid) == (42, 43)


@ROOT_ONLY
def test_setuid_survives_chown(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(_file("su", b"x", mode=0o6755, uid=0, gid=0)), root)
    assert stat.S_IMODE((root / "su").stat().st_mode) == 0o6755


def test_xattrs_are_kept_and_overlay_ones_dropped(tmp_path: Path):
    root = tmp_path / "r"
    capability = b"\x01\x00\x00\x02\x00\x20\x00\x00" + b"\0" * 12
    entry, data = _file("ping", b"x")
    entry.pax_headers = {
        "SCHILY.xattr.user.comment": "hello",
        "SCHILY.xattr.security.capability": capability.decode("utf-8", "surrogateescape"),
        "SCHILY.xattr.trusted.overlay.redirect": "/etc",
    }
    _extract(_tar((entry, data)), root)
    assert os.getxattr(root / "ping", "user.comment") == b"hello"
    if os.geteuid() == 0:
        assert os.getxattr(root / "ping", "security.capability") == capability
    assert "trusted.overlay.redirect" not in os.listxattr(root / "ping")


@ROOT_ONLY
def test_device_nodes_and_fifos(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(
        (_info("null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), None),
        (_info("loop9", tarfile.BLKTYPE, devmajor=7, devminor=9, mode=0o660), None),
        (_info("pipe", tarfile.FIFOTYPE, mode=0o620), None),
    ), root)
    null = os.lstat(root / "null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert os.minor(null.st_rdev) == 3 and stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(root / "loop9")
    assert stat.S_ISBLK(loop.st_mode) and os.minor(loop.st_rdev) == 9
    pipe = os.lstat(root / "pipe")
    assert stat.S_ISFIFO(pipe.st_mode) and stat.S_IMODE(pipe.st_mode) == 0o620


def test_large_file_is_streamed(tmp_path: Path):
    root = tmp_path / "r"
    payload = os.urandom(3 << 20)
    data = _tar(_file("big", payload))
    result = _extract(gzip.compress(data, compresslevel=1), root)
    assert (root / "big").read_bytes() == payload
    assert result.size == len(payload) and result.diff_id == _sha(data)


def test_later_entries_replace_earlier_ones(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(_file("x", b"file"), _dir("x"), _file("x/in", b"1"),
                  _symlink("y", "x"), _file("y", b"plain"),
                  _dir("z", mode=0o700), _file("z/keep", b"k"), _dir("z", mode=0o711)), root)
    assert (root / "x").is_dir() and (root / "x/in").read_bytes() == b"1"
    assert not (root / "y").is_symlink() and (root / "y").read_bytes() == b"plain"
    assert (root / "z/keep").exists() and stat.S_IMODE((root / "z").stat().st_mode) == 0o711


def test_unknown_entry_types_are_refused(tmp_path: Path):
    with pytest.raises(InvalidParameter, match='"odd": unsupported tar entry type'):
        _extract(_tar(_file("odd", b"", type=b"Z")), tmp_path / "r")


# -- escapes -----------------------------------------------------------------------


def _assert_empty(outside: Path) -> None:
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("name", ["../outside/evil", "a/../../outside/evil", "..", "./../x"])
def test_dot_dot_paths_are_refused(layout: tuple[Path, Path], name: str):
    root, outside = layout
    with pytest.raises(InvalidParameter, match="escapes the layer root") as caught:
        _extract(_tar(_file(name, b"pwned")), root)
    assert f'"{name}"' in str(caught.value)
    _assert_empty(outside)


def test_absolute_paths_land_inside_the_root(layout: tuple[Path, Path]):
    root, outside = layout
    _extract(_tar(_file(str(outside / "abs"), b"in"), _file("/etc/x", b"y"),
                  _file("/../up", b"z")), root)
    _assert_empty(outside)
    assert (root / str(outside).lstrip("/") / "abs").read_bytes() == b"in"
    assert (root / "etc/x").read_bytes() == b"y" and (root / "up").read_bytes() == b"z"


@pytest.mark.parametrize("target", ["../outside", "../../../../../etc/passwd", "a/../../.."])
def test_symlinks_pointing_out_are_refused(layout: tuple[Path, Path], target: str):
    root, outside = layout
    with pytest.raises(InvalidParameter, match=r'"evil": symlink target .* escapes'):
        _extract(_tar(_symlink("evil", target)), root)
    assert not (root / "evil").is_symlink()


def test_relative_symlinks_inside_are_allowed(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(_symlink("a/b/up", "../../top"), _symlink("a/self", ".")), root)
    assert os.readlink(root / "a/b/up") == "../../top"


@pytest.mark.parametrize("link_target", ["OUTSIDE", "/", "inside"])
def test_writing_through_an_earlier_symlink_is_refused(layout: tuple[Path, Path],
                                                       link_target: str):
    root, outside = layout
    target = str(outside) if link_target == "OUTSIDE" else link_target
    data = _tar(_dir("inside"), _symlink("link", target), _file("link/pwned", b"!"))
    with pytest.raises(InvalidParameter,
                       match='"link/pwned": "link" is a symbolic link; refusing'):
        _extract(data, root)
    _assert_empty(outside)
    assert not (root / "inside/pwned").exists()


def test_deep_write_through_symlink_is_refused(layout: tuple[Path, Path]):
    root, outside = layout
    data = _tar(_dir("a"), _symlink("a/b", str(outside)), _dir("a/b/c"), _file("a/b/c/d", b"!"))
    with pytest.raises(InvalidParameter, match='"a/b" is a symbolic link'):
        _extract(data, root)
    _assert_empty(outside)


def test_write_under_a_file_is_refused(tmp_path: Path):
    with pytest.raises(InvalidParameter, match='"f/x": "f" is not a directory'):
        _extract(_tar(_file("f", b"1"), _file("f/x", b"2")), tmp_path / "r")


def test_hardlinks_pointing_out_are_refused(layout: tuple[Path, Path]):
    root, outside = layout
    secret = outside.parent / "secret"
    secret.write_bytes(b"secret")
    with pytest.raises(InvalidParameter, match='"h": hardlink target escapes'):
        _extract(_tar(_hardlink("h", "../secret")), root)
    with pytest.raises(InvalidParameter, match="does not exist"):
        _extract(_tar(_hardlink("h", str(secret))), root)  # absolute: inside the root
    assert secret.stat().st_nlink == 1
    _assert_empty(outside)


def test_hardlink_through_a_symlink_is_refused(layout: tuple[Path, Path]):
    root, outside = layout
    (outside / "target").write_bytes(b"t")
    with pytest.raises(InvalidParameter, match='"l" is a symbolic link'):
        _extract(_tar(_symlink("l", str(outside)), _hardlink("h", "l/target")), root)
    assert (outside / "target").stat().st_nlink == 1


def test_hardlink_to_a_symlink_links_the_symlink_itself(layout: tuple[Path, Path]):
    root, outside = layout
    (outside / "t").write_bytes(b"t")
    _extract(_tar(_symlink("s", str(outside / "t")), _hardlink("h", "s")), root)
    assert (root / "h").is_symlink() and (outside / "t").stat().st_nlink == 1


def test_hardlink_to_a_directory_is_refused(tmp_path: Path):
    with pytest.raises(InvalidParameter, match="is a directory"):
        _extract(_tar(_dir("d"), _hardlink("h", "d")), tmp_path / "r")


def test_nothing_escapes_a_malicious_sequence(layout: tuple[Path, Path]):
    root, outside = layout
    attempts = [
        _tar(_symlink("x", str(outside)), _file("x/1", b"!")),
        _tar(_symlink("x", "/"), _symlink("x/y", "/"), _file("x/y/2", b"!")),
        _tar(_dir("d"), _symlink("d/e", ".."), _file("d/e/../3", b"!")),
        _tar(_symlink("x", str(outside)), _hardlink("x/4", "x")),
        _tar(_file(".wh...", b"")),
    ]
    for data in attempts:
        with contextlib.suppress(InvalidParameter):
            _extract(data, root)
    _assert_empty(outside)
    assert sorted(p.name for p in outside.parent.iterdir()) == ["outside", "root"]
    assert (root / "d/3").read_bytes() == b"!"  # "d/e/../3" is cleaned lexically


# -- whiteouts ---------------------------------------------------------------------


def _lower(root: Path) -> None:
    _extract(_tar(_file("gone", b"1"), _dir("tree"), _file("tree/leaf", b"2"),
                  _dir("opaque"), _file("opaque/old", b"3"), _dir("opaque/sub"),
                  _file("opaque/sub/old2", b"4"), _file("kept", b"5")), root)


def test_whiteouts_delete_lower_files_and_directories(tmp_path: Path):
    root = tmp_path / "r"
    _lower(root)
    _extract(_tar(_file(".wh.gone"), _file(".wh.tree"), _file(".wh.never-there")), root)
    assert sorted(p.name for p in root.iterdir()) == ["kept", "opaque"]


def test_opaque_directory_keeps_only_this_layers_entries(tmp_path: Path):
    root = tmp_path / "r"
    _lower(root)
    _extract(_tar(_dir("opaque"), _file("opaque/before", b"b"), _dir("opaque/sub"),
                  _file("opaque/sub/mine", b"m"), _file("opaque/.wh..wh..opq"),
                  _file("opaque/after", b"a")), root)
    names = sorted(str(p.relative_to(root)) for p in (root / "opaque").rglob("*"))
    assert names == ["opaque/after", "opaque/before", "opaque/sub", "opaque/sub/mine"]
    assert (root / "kept").exists() and not (root / "opaque/.wh..wh..opq").exists()


def test_opaque_directory_keeps_implicit_parents_of_this_layers_entries(tmp_path: Path):
    root = tmp_path / "r"
    _lower(root)
    _extract(_tar(_file("opaque/sub/deep/mine", b"m"), _file("opaque/.wh..wh..opq")), root)
    names = sorted(str(p.relative_to(root)) for p in (root / "opaque").rglob("*"))
    assert names == ["opaque/sub", "opaque/sub/deep", "opaque/sub/deep/mine"]


@pytest.mark.parametrize("name", [".wh.", ".wh..", "d/.wh..."])
def test_whiteouts_naming_no_file_are_refused(tmp_path: Path, name: str):
    root = tmp_path / "r"
    _lower(root)
    with pytest.raises(InvalidParameter, match="whiteout names no file"):
        _extract(_tar(_dir("d"), _file(name)), root)
    assert (root / "kept").exists()


def test_whiteout_through_a_symlink_is_refused(layout: tuple[Path, Path]):
    root, outside = layout
    (outside / "victim").write_bytes(b"v")
    with pytest.raises(InvalidParameter, match="symbolic link"):
        _extract(_tar(_symlink("l", str(outside)), _file("l/.wh.victim")), root)
    with pytest.raises(InvalidParameter, match="symbolic link"):
        _extract(_tar(_file("l/.wh..wh..opq")), root)
    assert (outside / "victim").exists()


def test_aufs_metadata_is_skipped(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(_dir(".wh..wh.plnk"), _file(".wh..wh.plnk/123.4", b"x"),
                  _file(".wh..wh.aufs")), root)
    assert list(root.iterdir()) == []


@ROOT_ONLY
def test_overlay_whiteouts_become_devices_and_opaque_xattrs(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(_file(".wh.gone", uid=0), _dir("d"), _file("d/.wh..wh..opq"),
                  _file("d/new", b"n"), _file("e/.wh.x")), root, overlay_whiteouts=True)
    gone = os.lstat(root / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == os.makedev(0, 0)
    assert stat.S_ISCHR(os.lstat(root / "e/x").st_mode)
    assert os.getxattr(root / "d", "trusted.overlay.opaque") == b"y"
    assert sorted(p.name for p in (root / "d").iterdir()) == ["new"]
    assert not any(p.name.startswith(".wh.") for p in root.rglob("*"))


@ROOT_ONLY
def test_overlay_root_opaque_marker(tmp_path: Path):
    root = tmp_path / "r"
    _extract(_tar(_file(".wh..wh..opq")), root, overlay_whiteouts=True)
    assert os.getxattr(root, "trusted.overlay.opaque") == b"y"


def test_unprivileged_extraction_skips_devices_and_ownership(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(layers_module.os, "geteuid", lambda: 1000)
    root = tmp_path / "r"
    _extract(_tar(
        (_info("null", tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (_info("pipe", tarfile.FIFOTYPE, mode=0o600), None),
        _file("owned", b"x", uid=1234, gid=5678),
    ), root)
    assert sorted(p.name for p in root.iterdir()) == ["owned", "pipe"]
    assert (root / "owned").stat().st_uid == os.getuid()

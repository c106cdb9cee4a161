"""``docker cp``'s tar work on a plain directory as the root: escapes are refused or
land inside; modes, times and contents survive."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockertw.api.routers.containers import negotiate_encoding
from dockertw.daemon.containers.files import archive, inroot
from dockertw.errdefs import InvalidParameter, NotFound

Root = tuple[Path, inroot.RootView]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Root]:
    top = tmp_path / "root"
    (top / "dest").mkdir(parents=True)
    (top / "etc").mkdir()
    (top / "etc" / "hostname").write_text("inside\n")
    (top / "escape").symlink_to("/")
    (top / "host").symlink_to(tmp_path)
    (tmp_path / "victim").write_text("host\n")
    fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    try:
        yield top, inroot.RootView(fd)
    finally:
        os.close(fd)


def make_tar(*members: tuple[str, str, bytes | str]) -> io.BytesIO:
    """Members as (name, kind, data or link target); kind: file, dir, sym, link."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_000_000_000
            info.mode = 0o751 if kind == "dir" else 0o640
            if kind == "file":
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "link": tarfile.LNKTYPE}[kind]
            info.linkname = str(data)
            tar.addfile(info)
    buffer.seek(0)
    return buffer


def extract(root: Root, tar: io.BytesIO, dest: str = "/dest",
            **options: bool) -> None:
    archive.extract(root[1], archive.destination(root[1], dest, "c"), tar,
                    archive.ExtractOptions(**options))


def test_files_dirs_modes_times(root: Root) -> None:
    extract(root, make_tar(("d", "dir", ""), ("d/f", "file", b"data"),
                           ("d/l", "sym", "f"), ("d/h", "link", "d/f")))
    top = root[0] / "dest"
    assert (top / "d" / "f").read_bytes() == b"data"
    assert (top / "d" / "f").stat().st_mode & 0o7777 == 0o640
    assert (top / "d").stat().st_mode & 0o7777 == 0o751
    assert (top / "d").stat().st_mtime == 1_000_000_000
    assert (top / "d" / "f").stat().st_mtime == 1_000_000_000
    assert os.readlink(top / "d" / "l") == "f"
    assert (top / "d" / "h").stat().st_ino == (top / "d" / "f").stat().st_ino


@pytest.mark.parametrize("name", ["../x", "a/../../x", ".."])
def test_dotdot_members_are_refused(root: Root, name: str) -> None:
    with pytest.raises(InvalidParameter, match="outside of the destination"):
        extract(root, make_tar((name, "file", b"pwned")))


def test_absolute_members_are_rebased(root: Root) -> None:
    extract(root, make_tar(("/etc/x", "file", b"in"), ("/../y", "file", b"in")))
    assert (root[0] / "dest" / "etc" / "x").read_bytes() == b"in"
    assert (root[0] / "dest" / "y").read_bytes() == b"in"


def test_links_leaving_the_destination_are_refused(root: Root) -> None:
    with pytest.raises(InvalidParameter, match="invalid link"):
        extract(root, make_tar(("l", "sym", "../../..")))
    with pytest.raises(InvalidParameter, match="invalid link"):
        extract(root, make_tar(("h", "link", "../etc/hostname")))


def test_symlink_then_write_stays_inside(root: Root) -> None:
    victim = root[0].parent / "victim"
    extract(root, make_tar(("a", "sym", "/"), (f"a{victim}", "file", b"pwned"),
                           ("b", "sym", str(victim.parent)), ("b/victim", "file", b"pwned")))
    assert victim.read_text() == "host\n"
    assert (root[0] / str(victim).lstrip("/")).read_bytes() == b"pwned"


def test_destination_links_resolve_inside(root: Root) -> None:
    victim = root[0].parent / "victim"
    extract(root, make_tar(("victim", "file", b"pwned")), dest="/escape/etc")
    assert (root[0] / "etc" / "victim").read_bytes() == b"pwned"
    with pytest.raises(NotFound):
        extract(root, make_tar(("victim", "file", b"pwned")), dest="/host")
    assert victim.read_text() == "host\n"


def test_an_existing_link_is_replaced_not_followed(root: Root) -> None:
    victim = root[0].parent / "victim"
    (root[0] / "dest" / "f").symlink_to(victim)
    extract(root, make_tar(("f", "file", b"new")))
    assert not (root[0] / "dest" / "f").is_symlink()
    assert (root[0] / "dest" / "f").read_bytes() == b"new"
    assert victim.read_text() == "host\n"


def test_no_overwrite_dir_non_dir(root: Root) -> None:
    (root[0] / "dest" / "d").mkdir()
    with pytest.raises(InvalidParameter, match="cannot overwrite directory"):
        extract(root, make_tar(("d", "file", b"x")), no_overwrite_dir_non_dir=True)
    extract(root, make_tar(("d", "file", b"x")))
    assert (root[0] / "dest" / "d").read_bytes() == b"x"


def test_not_a_directory(root: Root) -> None:
    with pytest.raises(InvalidParameter, match="not a directory"):
        extract(root, make_tar(), dest="/etc/hostname")


def test_archive_through_links_reads_inside(root: Root) -> None:
    found, resolved = archive.path_stat(root[1], "/escape/etc/", "c")
    chunks: list[bytes] = []
    try:
        archive.write_archive(resolved, archive.archive_name(found["name"]),
                              chunks.append)
    finally:
        os.close(resolved.parent)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.extractfile("etc/hostname")
        assert member is not None and member.read() == b"inside\n"
    assert found["name"] == "etc" and found["mode"] & (1 << 31)


def test_stat_of_a_link(root: Root) -> None:
    found, resolved = archive.path_stat(root[1], "/host", "c")
    os.close(resolved.parent)
    assert found["linkTarget"] == str(root[0].parent)  # lexically, inside the root
    with pytest.raises(NotFound, match="Could not find the file /host/victim in"):
        archive.path_stat(root[1], "/host/victim", "c")


@pytest.mark.parametrize(("accept", "chosen"), [
    ("", ""), ("identity", ""), ("gzip", "gzip"), ("deflate, gzip", "gzip"),
    ("gzip;q=0.5, deflate", "deflate"), ("*", "gzip"), ("gzip;q=0", ""),
    ("br, deflate;q=0.1", "deflate"),
])
def test_negotiate_encoding(accept: str, chosen: str) -> None:
    assert negotiate_encoding(accept) == chosen


def test_encoder_round_trip() -> None:
    for encoding, wbits in (("gzip", 31), ("deflate", -15), ("", 0)):
        out: list[bytes] = []
        encoder = archive.Encoder(out.append, encoding)
        encoder.push(b"abc" * 1000)
        encoder.close()
        data = b"".join(out)
        assert (zlib.decompress(data, wbits) if wbits else data) == b"abc" * 1000


def _tree(top: Path) -> dict[str, tuple[int, str, bytes]]:
    """Every entry under ``top``: (mode, link target, contents)."""
    found = {}
    for path in sorted(top.rglob("*")):
        info = path.lstat()
        found[str(path.relative_to(top))] = (
            info.st_mode, os.readlink(path) if path.is_symlink() else "",
            path.read_bytes() if path.is_file() and not path.is_symlink() else b"")
    return found


def test_an_archived_tree_unpacks_to_the_same_tree(root: Root) -> None:
    tree = root[0] / "tree"
    (tree / "sub" / ("n" * 120)).mkdir(parents=True)
    big = bytes(range(256)) * 1200 + b"tail"  # not a whole number of blocks
    (tree / "big.bin").write_bytes(big)
    (tree / "sub" / "small").write_bytes(b"s" * 700)
    (tree / "sub" / "empty").touch()
    os.link(tree / "big.bin", tree / "sub" / "hard")
    (tree / "sub" / "rel").symlink_to("../big.bin")
    (tree / "sub" / "small").chmod(0o4755)
    found, resolved = archive.path_stat(root[1], "/tree", "c")
    chunks: list[bytes] = []
    try:
        archive.write_archive(resolved, found["name"], chunks.append)
    finally:
        os.close(resolved.parent)
    assert max(map(len, chunks)) >= len(big)  # big contents went on in one piece
    extract(root, io.BytesIO(b"".join(chunks)))
    assert _tree(root[0] / "dest" / "tree") == _tree(tree)
    copied = root[0] / "dest" / "tree"
    assert (copied / "sub" / "hard").stat().st_ino == (copied / "big.bin").stat().st_ino


def test_sockets_are_skipped_and_a_tree_is_written_without_its_root(
        root: Root) -> None:
    tree = root[0] / "tree"
    tree.mkdir()
    (tree / "kept").write_text("kept\n")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tree / "sock"))
        chunks: list[bytes] = []
        descriptor = os.open(tree, os.O_PATH | os.O_DIRECTORY)
        try:
            archive.write_tree(descriptor, chunks.append)
        finally:
            os.close(descriptor)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        assert tar.getnames() == ["kept"]

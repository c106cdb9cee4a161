"""``docker cp`` sees a container's volumes and bind mounts, on plain directories."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockertw.daemon.containers.files import archive, copyroot, inroot
from dockertw.daemon.mountpoint import MountPoint
from dockertw.errdefs import InvalidParameter
from tests.archives import file, tar


@pytest.fixture
def view(tmp_path: Path) -> Iterator[tuple[Path, inroot.RootView]]:
    """A root with ``/data`` (a volume), ``/ro`` (read-only bind), ``/link`` -> data,
    ``/late`` (missing in the root), and a file bind and a tmpfs (not in the view)."""
    top, data, ro, late = (tmp_path / name for name in ("root", "vol", "bind", "late"))
    for directory in (top / "data", top / "ro", top / "etc", data, ro, late):
        directory.mkdir(parents=True)
    (top / "data" / "hidden").write_text("beneath the mount\n")
    (top / "etc" / "hostname").write_text("inside\n")
    (top / "link").symlink_to("/data")
    (data / "in-volume").write_text("volume\n")
    (data / "abs").symlink_to("/etc")
    (tmp_path / "file").write_text("a file bind\n")
    points = [MountPoint("volume", "/link/", source=str(data)),
              MountPoint("bind", "/ro", source=str(ro), rw=False),
              MountPoint("bind", "/late/deeper", source=str(late)),
              MountPoint("bind", "/etc/hostname", source=str(tmp_path / "file")),
              MountPoint("tmpfs", "/run")]
    fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    try:
        with copyroot.with_mounts(copyroot.MergedRoot(fd, top), points) as mounted:
            yield tmp_path, mounted
    finally:
        os.close(fd)


def _tar(*names: str) -> io.BytesIO:
    return io.BytesIO(tar([file(name, b"new") for name in names]))


def _read(view: inroot.RootView, path: str) -> bytes:
    resolved = view.resolve(path)
    try:
        fd = os.open(resolved.name, os.O_RDONLY, dir_fd=resolved.parent)
    finally:
        os.close(resolved.parent)
    with os.fdopen(fd, "rb") as opened:
        return opened.read()


def test_mounts_are_keyed_where_runc_mounted_them(view: tuple[Path, inroot.RootView]):
    _, mounted = view
    assert set(mounted.mounts) == {"/data", "/ro", "/late/deeper"}
    assert mounted.readonly == frozenset({"/ro"})


def test_paths_enter_the_mounts_and_leave_them_by_dotdot(
        view: tuple[Path, inroot.RootView]):
    _, mounted = view
    assert _read(mounted, "/data/in-volume") == b"volume\n"
    assert _read(mounted, "/link/in-volume") == b"volume\n"
    assert _read(mounted, "/data/../etc/hostname") == b"inside\n"
    assert _read(mounted, "/data/abs/hostname") == b"inside\n"  # the root's /etc
    with pytest.raises(FileNotFoundError):
        _read(mounted, "/data/hidden")


def test_archive_and_stat_show_the_mounts(view: tuple[Path, inroot.RootView]):
    _, mounted = view
    found, resolved = archive.path_stat(mounted, "/data", "c")
    chunks: list[bytes] = []
    try:
        archive.write_archive(resolved, "data", chunks.append, mounted.mounts)
    finally:
        os.close(resolved.parent)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as written:
        assert sorted(written.getnames()) == ["data", "data/abs", "data/in-volume"]
    top, resolved = archive.path_stat(mounted, "/", "c")
    chunks = []
    try:
        archive.write_archive(resolved, ".", chunks.append, mounted.mounts)
    finally:
        os.close(resolved.parent)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as written:
        names = set(written.getnames())
    assert "./data/in-volume" in names  # (/late is not made until a start)
    assert "./data/hidden" not in names
    assert found["name"] == "data" and found["mode"] & (1 << 31)


def test_extraction_lands_in_the_mount(view: tuple[Path, inroot.RootView]):
    host, mounted = view
    archive.extract(mounted, archive.destination(mounted, "/link", "c"), _tar("f"),
                    archive.ExtractOptions())
    archive.extract(mounted, archive.destination(mounted, "/", "c"),
                    _tar("late/deeper/g"), archive.ExtractOptions())
    assert (host / "vol" / "f").read_bytes() == b"new"
    assert (host / "late" / "g").read_bytes() == b"new"
    assert not (host / "root" / "data" / "f").exists()


def test_read_only_mounts_refuse_writes(view: tuple[Path, inroot.RootView]):
    host, mounted = view
    with pytest.raises(InvalidParameter, match="mounted volume is marked read-only"):
        archive.destination(mounted, "/ro", "c")
    with pytest.raises(InvalidParameter, match="mounted volume is marked read-only"):
        archive.extract(mounted, archive.destination(mounted, "/", "c"), _tar("ro/x"),
                        archive.ExtractOptions())
    assert list((host / "bind").iterdir()) == []

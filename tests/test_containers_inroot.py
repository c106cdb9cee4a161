"""The in-root path resolver: links and ``..`` never leave the root."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockertw.daemon.containers.files import inroot


@pytest.fixture
def root(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    top = tmp_path / "root"
    (top / "etc").mkdir(parents=True)
    (top / "etc" / "hostname").write_text("inside\n")
    (top / "abs").symlink_to("/")
    (top / "rel").symlink_to("../../../..")
    (top / "host").symlink_to(tmp_path)  # an absolute host path
    (top / "loop1").symlink_to("loop2")
    (top / "loop2").symlink_to("loop1")
    (top / "self").symlink_to("self/x")
    (top / "etc" / "link").symlink_to("hostname")
    (tmp_path / "victim").write_text("host\n")
    fd = os.open(top, os.O_PATH | os.O_DIRECTORY)
    try:
        yield top, fd
    finally:
        os.close(fd)


def read(resolved: inroot.Resolved) -> str:
    fd = os.open(resolved.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=resolved.parent)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)
        os.close(resolved.parent)


@pytest.mark.parametrize("path", [
    "/etc/hostname", "etc/hostname", "/abs/etc/hostname", "/rel/etc/hostname",
    "/../../etc/hostname", "/etc/../../etc/./hostname", "/abs/abs/rel/etc/hostname",
    "/etc/link",
])
def test_paths_stay_inside(root: tuple[Path, int], path: str) -> None:
    resolved = inroot.resolve(root[1], path, follow_last=True)
    assert resolved.path == "/etc/hostname"
    assert read(resolved) == "inside\n"


def test_an_absolute_host_link_is_rebased(root: tuple[Path, int]) -> None:
    with pytest.raises(FileNotFoundError):
        inroot.resolve(root[1], "/host/victim", follow_last=True)
    with pytest.raises(FileNotFoundError):  # the same path, but inside the root
        inroot.resolve(root[1], "/host", follow_last=True, must_exist=False)


def test_the_last_link_is_kept_unless_followed(root: tuple[Path, int]) -> None:
    resolved = inroot.resolve(root[1], "/etc/link")
    os.close(resolved.parent)
    assert (resolved.name, resolved.path) == ("link", "/etc/link")


@pytest.mark.parametrize("path", ["/loop1", "/self", "/loop1/x"])
def test_loops_are_eloop(root: tuple[Path, int], path: str) -> None:
    with pytest.raises(OSError) as raised:
        inroot.resolve(root[1], path, follow_last=True)
    assert raised.value.errno == errno.ELOOP


def test_not_a_directory(root: tuple[Path, int]) -> None:
    with pytest.raises(NotADirectoryError):
        inroot.resolve(root[1], "/etc/hostname/x")


def test_the_root_and_dotdot(root: tuple[Path, int]) -> None:
    for path in ("/", "/..", "/etc/..", "/rel"):
        resolved = inroot.resolve(root[1], path, follow_last=True)
        try:
            assert resolved.path == "/" and resolved.name == ""
            assert os.path.samestat(inroot.lstat(resolved), os.stat(root[0]))
        finally:
            os.close(resolved.parent)


def test_make_dirs_creates_inside(root: tuple[Path, int]) -> None:
    resolved = inroot.resolve(root[1], "/abs/new/deeper/file", must_exist=False,
                              make_dirs=True)
    os.close(resolved.parent)
    assert (root[0] / "new" / "deeper").is_dir() and resolved.path == "/new/deeper/file"

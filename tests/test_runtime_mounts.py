"""Overlay root filesystems with the real kernel."""

from __future__ import annotations

import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockertw.runtime.mounts import is_mounted, mount_overlay, mounts_under, unmount


@pytest.fixture
def area() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="dtw-ovl-"))
    try:
        yield base
    finally:
        for point in mounts_under(base):
            unmount(point)
        shutil.rmtree(base, ignore_errors=True)


def test_layers_stack_and_changes_land_in_upper(area: Path):
    lower1, lower2 = area / "l1", area / "l2"
    lower1.mkdir()
    lower2.mkdir()
    (lower1 / "a").write_text("from bottom")
    (lower1 / "b").write_text("bottom b")
    (lower2 / "b").write_text("top b")
    merged = area / "merged"
    mount_overlay([lower2, lower1], area / "upper", area / "work", merged)
    assert is_mounted(merged)
    assert (merged / "a").read_text() == "from bottom"
    assert (merged / "b").read_text() == "top b"
    (merged / "a").unlink()
    (merged / "new").write_text("written")
    whiteout = (area / "upper" / "a").lstat()
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0
    assert (area / "upper" / "new").read_text() == "written"
    assert (lower1 / "a").exists()
    assert mounts_under(area) == [merged]
    unmount(merged)
    assert not is_mounted(merged)
    assert mounts_under(area) == []


def test_errors_name_the_mount(area: Path):
    with pytest.raises(ValueError):
        mount_overlay([], area / "u", area / "w", area / "m")
    with pytest.raises(OSError, match="mount overlay at"):
        mount_overlay([area / "missing"], area / "u", area / "w", area / "m")
    with pytest.raises(OSError, match="unmount"):
        unmount(area / "m")

"""Container root filesystems as overlayfs mounts, through the mount syscalls.

Image layers are the lower directories (topmost first), each container has its own
upper and work directories.  Mounts are found again after a crash by reading
``/proc/self/mountinfo``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dockertw.runtime.syscalls import check, libc

__all__ = ["mount_overlay", "mount_overlay_readonly", "mount_filesystem", "bind_mount",
           "unmount", "mounts_under", "is_mounted"]

_MNT_DETACH = 2
_MS_RDONLY = 1
_PAGE_LIMIT = 4096  # overlay options must fit in one page


def mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, target: Path) -> None:
    """Mount ``lowers`` (topmost first) under ``upper`` at ``target``.

    A container of an image with no layers still gets an (empty) lower directory.
    """
    if not lowers:
        raise ValueError("an overlay needs at least one lower directory")
    options = (f"lowerdir={':'.join(str(p) for p in lowers)},upperdir={upper},"
               f"workdir={work}")
    if len(options) >= _PAGE_LIMIT:
        raise OSError(7, "too many image layers for one overlay mount (E2BIG)")
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    check(libc().mount(b"overlay", os.fsencode(target), b"overlay", 0,
                         options.encode()), f"mount overlay at {target}")


def mount_overlay_readonly(lowers: Sequence[Path], target: Path) -> None:
    """Mount the merged view of ``lowers`` (topmost first, at least two) read-only."""
    if len(lowers) < 2:
        raise ValueError("a read-only overlay needs two lower directories")
    options = f"lowerdir={':'.join(str(p) for p in lowers)}"
    if len(options) >= _PAGE_LIMIT:
        raise OSError(7, "too many image layers for one overlay mount (E2BIG)")
    target.mkdir(parents=True, exist_ok=True)
    check(libc().mount(b"overlay", os.fsencode(target), b"overlay", _MS_RDONLY,
                         options.encode()), f"mount overlay at {target}")


_FLAGS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "sync": 16, "dirsync": 128,
          "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21, "bind": 4096,
          "rbind": 4096 | 16384}


def mount_filesystem(device: str, target: Path, fstype: str, options: str = "") -> None:
    """``mount -t fstype -o options device target``: known flags (``ro``, ``nodev``...)
    become mount flags, the rest is the filesystem's data."""
    flags, data = 0, []
    for option in filter(None, options.split(",")):
        if option in _FLAGS:
            flags |= _FLAGS[option]
        elif option not in ("rw", "defaults"):
            data.append(option)
    check(libc().mount(device.encode(), os.fsencode(target), fstype.encode(), flags,
                         ",".join(data).encode()), f"mount {fstype} at {target}")


def bind_mount(source: str, target: Path) -> None:
    """Bind ``source`` (a path, or an fd's ``/proc/self/fd/N``) at ``target``."""
    check(libc().mount(os.fsencode(source), os.fsencode(target), None, _FLAGS["bind"],
                         None), f"bind {source} at {target}")


def unmount(target: Path) -> None:
    """Detach the mount at ``target`` (lazily, so busy mounts do not fail)."""
    check(libc().umount2(os.fsencode(target), _MNT_DETACH), f"unmount {target}")


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            points.append(fields[4].encode().decode("unicode_escape"))
    return points


def mounts_under(root: Path) -> list[Path]:
    """Mount points inside ``root``, deepest first (the order to unmount them in)."""
    prefix = str(root).rstrip("/") + "/"
    inside = [Path(point) for point in _mount_points() if point.startswith(prefix)]
    return sorted(inside, key=lambda path: len(path.parts), reverse=True)


def is_mounted(target: Path) -> bool:
    return str(target) in _mount_points()

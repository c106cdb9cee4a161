"""``docker diff``: a container's changes, read from its overlay upper directory.

An entry of the upper directory is a deletion when it is an overlay whiteout (a 0/0
character device), a change when the image's layers hold the same path, an addition
otherwise; an opaque directory deletes every lower entry it does not hold itself.
Blocking: call it from a worker thread.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["changes", "MODIFIED", "ADDED", "DELETED", "RUNTIME_FILES",
           "only_runtime_files"]

MODIFIED, ADDED, DELETED = 0, 1, 2
_OPAQUE = "trusted.overlay.opaque"
# Paths the runtime creates in an image lacking them (Docker hides them in an init layer).
_RUNTIME_PATHS = frozenset({"/proc", "/sys", "/sys/fs", "/sys/fs/cgroup", "/dev",
                            "/dev/pts", "/dev/shm", "/dev/mqueue"})
# Mount points of the network files (the files themselves are the daemon's).
RUNTIME_FILES = frozenset({"/etc/hosts", "/etc/hostname", "/etc/resolv.conf"})


def only_runtime_files(directory: str, path: str) -> bool:
    """Whether a directory of the upper layer holds nothing but mount points of the
    network files (runc made them; the directory is unchanged otherwise)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return bool(names) and all(f"{path}/{name}" in RUNTIME_FILES for name in names)


def changes(upper: Path, lowers: Sequence[Path]) -> list[dict[str, Any]]:
    """Docker's ``[{"Path": ..., "Kind": 0|1|2}]``, sorted by path."""
    found = sorted(_walk(str(upper), "", [str(lower) for lower in lowers]))
    return [{"Path": path, "Kind": kind} for path, kind in found]


def _walk(directory: str, prefix: str, lowers: list[str]) -> Iterator[tuple[str, int]]:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        path = f"{prefix}/{entry.name}"
        info = entry.stat(follow_symlinks=False)
        if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
            yield path, DELETED
            continue
        in_lower = any(os.path.lexists(lower + path) for lower in lowers)
        if path in RUNTIME_FILES and not in_lower:
            continue
        if entry.is_dir(follow_symlinks=False):
            made_by_runtime = path in _RUNTIME_PATHS and not in_lower
            only_mount_points = in_lower and only_runtime_files(entry.path, path)
            if not (made_by_runtime or only_mount_points):
                yield path, MODIFIED if in_lower else ADDED
            yield from _walk(entry.path, path, lowers)
            if _is_opaque(entry.path):
                yield from _hidden(entry.path, path, lowers)
        else:
            yield path, MODIFIED if in_lower else ADDED


def _is_opaque(directory: str) -> bool:
    try:
        return os.getxattr(directory, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _hidden(directory: str, path: str, lowers: list[str]) -> Iterator[tuple[str, int]]:
    """Lower entries an opaque directory hides: deleted."""
    kept = set(os.listdir(directory))
    hidden: set[str] = set()
    for lower in lowers:
        try:
            hidden.update(os.listdir(lower + path))
        except OSError:
            continue
    for name in sorted(hidden - kept):
        yield f"{path}/{name}", DELETED

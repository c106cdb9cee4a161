"""``squash`` (experimental): a build's layers above its base merged into one.

The image store keeps layers in overlay form (a 0/0 character device is a whiteout,
``trusted.overlay.opaque`` marks an opaque directory).  The layers are merged in order
into one such directory, which is then written as a layer tar as a container's upper
directory is for ``docker commit``.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from dockertw.daemon.containers.files.uppertar import write_upper_tar

__all__ = ["merged_layer"]

_OPAQUE = "trusted.overlay.opaque"


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _remove(path: str) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _keep_metadata(path: str, info: os.stat_result) -> None:
    os.lchown(path, info.st_uid, info.st_gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(path, stat.S_IMODE(info.st_mode))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)


def _copy_entry(source: str, target: str, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(info.st_mode):
        shutil.copyfile(source, target, follow_symlinks=False)
    elif stat.S_ISFIFO(info.st_mode):
        os.mkfifo(target)
    else:
        os.mknod(target, stat.S_IFMT(info.st_mode) | 0o600, info.st_rdev)
    _keep_metadata(target, info)


def _merge_directory(source: str, target: str) -> None:
    for entry in sorted(os.scandir(source), key=lambda entry: entry.name):
        destination = os.path.join(target, entry.name)
        info = entry.stat(follow_symlinks=False)
        if not entry.is_dir(follow_symlinks=False):
            _remove(destination)
            _copy_entry(entry.path, destination, info)
            continue
        opaque = _is_opaque(entry.path)
        if opaque or not os.path.isdir(destination) or os.path.islink(destination):
            _remove(destination)
            os.mkdir(destination)
        if opaque:
            os.setxattr(destination, _OPAQUE, b"y", follow_symlinks=False)
        _merge_directory(entry.path, destination)
        _keep_metadata(destination, info)


def merged_layer(layers: Sequence[Path], scratch: Path, out: IO[bytes]) -> None:
    """Write the layer that ``layers`` (bottom first, overlay form) make together, as
    a tar, to ``out``; ``scratch`` (new) holds the merge meanwhile."""
    merged = scratch / "merged"
    merged.mkdir(parents=True, mode=0o755)
    try:
        for layer in layers:
            _merge_directory(str(layer), str(merged))
        write_upper_tar(merged, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

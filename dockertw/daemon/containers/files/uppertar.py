"""The layer tar of a container's changes (``docker commit``), from its upper directory.

Overlay whiteouts become the layer-tar forms every image tool reads: a 0/0 character
device ``name`` is written as an empty ``.wh.name``, an opaque directory gets a
``.wh..wh..opq`` entry.  Hard links inside the directory stay links.  Blocking: call it
from a worker thread.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from dockertw.daemon.containers.files.diff import RUNTIME_FILES, only_runtime_files

__all__ = ["write_upper_tar"]

_OPAQUE = "trusted.overlay.opaque"


def write_upper_tar(upper: Path, out: IO[bytes]) -> int:
    """Write the changes under ``upper`` as a layer tar to ``out``; answers how many
    entries it holds (0: the container changed nothing)."""
    count = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in _entries(str(upper), ""):
            _add(tar, path, name)
            count += 1
    return count


def _entries(directory: str, prefix: str) -> Iterator[tuple[str | None, str]]:
    """``(host path, tar name)`` in a stable order; ``None`` marks an opaque marker."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return
    for entry in entries:
        name = f"{prefix}{entry.name}"
        if _mount_point(entry, name):
            continue  # made for the network files, not a change of the container
        yield entry.path, name
        if entry.is_dir(follow_symlinks=False):
            if _is_opaque(entry.path):
                yield None, f"{name}/.wh..wh..opq"
            yield from _entries(entry.path, f"{name}/")


def _mount_point(entry: os.DirEntry[str], name: str) -> bool:
    """An empty network-file mount point, or a directory holding only those."""
    if entry.is_dir(follow_symlinks=False):
        return only_runtime_files(entry.path, f"/{name}")
    return f"/{name}" in RUNTIME_FILES and entry.is_file(follow_symlinks=False) and \
        not entry.stat(follow_symlinks=False).st_size


def _is_opaque(directory: str) -> bool:
    try:
        return os.getxattr(directory, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _add(tar: tarfile.TarFile, path: str | None, name: str) -> None:
    if path is None:
        tar.addfile(_empty_file(name))
        return
    info = os.lstat(path)
    if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
        head, _, tail = name.rpartition("/")
        tar.addfile(_empty_file(f"{head}/.wh.{tail}" if head else f".wh.{tail}"))
        return
    member = tar.gettarinfo(path, arcname=name)
    member.uname = member.gname = ""
    if member.isreg():
        with open(path, "rb", opener=_no_follow) as file:
            tar.addfile(member, file)
    else:
        tar.addfile(member)


def _empty_file(name: str) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.mode = 0o644
    return member


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)

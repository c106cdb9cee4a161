"""The merged root filesystem ``docker cp`` works in, as an open directory fd.

* Reading (stat, archive): a private read-only overlay of the container's upper
  directory over its image layers, as ``docker export`` does; the same for a stopped
  and a running container.
* Writing into a stopped container: a private read-write overlay with the container's
  upper directory and a private work directory, so the files land in the container's
  writable layer.  The caller keeps the container from starting meanwhile (two
  overlays on one upper directory are undefined behaviour).
* Writing into a running container: its own root filesystem mount (the daemon's view
  of it, without the container's mounts).

:func:`with_mounts` adds the container's volumes and bind-mounted directories to any
of these, as fds the path resolution enters (nothing is mounted for them); tmpfs
mounts and bind-mounted files are not part of the view.

Mounts go under a scratch directory outside any container's; each is unmounted and
its directories removed in ``finally``.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType

import attrs

from dockertw.daemon.containers.files import inroot
from dockertw.daemon.containers.records.mounts import resolve_subpath
from dockertw.daemon.mountpoint import MountPoint
from dockertw.errdefs import Conflict, InvalidParameter
from dockertw.runtime import mounts

__all__ = ["MergedRoot", "readonly_root", "writable_root", "running_root",
           "with_mounts", "release_scratch"]

_ROOT_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@attrs.frozen
class MergedRoot:
    """An fd of the root directory (use this) and where it is mounted."""

    fd: int
    path: Path


@contextmanager
def _opened(target: Path) -> Iterator[MergedRoot]:
    fd = os.open(target, _ROOT_FLAGS)
    try:
        yield MergedRoot(fd, target)
    finally:
        os.close(fd)


def _lowers(lowers: Sequence[Path], scratch: Path) -> list[Path]:
    """The image's layers (given bottom first, as the image store lists them) topmost
    first, as overlayfs stacks them; one empty directory for an image without any."""
    if lowers:
        return list(reversed(lowers))
    empty = scratch / "empty"
    empty.mkdir(parents=True, exist_ok=True)
    return [empty]


def release_scratch(scratch: Path) -> None:
    """Unmount the overlays a killed daemon left under ``scratch`` and remove their
    directories (blocking, at start)."""
    for point in mounts.mounts_under(scratch):
        mounts.unmount(point)
    shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def readonly_root(upper: Path, lowers: Sequence[Path], scratch: Path
                  ) -> Iterator[MergedRoot]:
    """A private read-only overlay of ``upper`` over ``lowers``."""
    target = scratch / uuid.uuid4().hex
    upper.mkdir(exist_ok=True)
    mounts.mount_overlay_readonly([upper, *_lowers(lowers, scratch)], target)
    try:
        with _opened(target) as root:
            yield root
    finally:
        mounts.unmount(target)
        target.rmdir()  # empty once unmounted; never a recursive removal here


@contextmanager
def writable_root(upper: Path, lowers: Sequence[Path], scratch: Path
                  ) -> Iterator[MergedRoot]:
    """A private read-write overlay writing into ``upper`` (a stopped container's)."""
    base = scratch / uuid.uuid4().hex
    target = base / "merged"
    upper.mkdir(exist_ok=True)
    mounts.mount_overlay(_lowers(lowers, scratch), upper, base / "work", target)
    try:
        with _opened(target) as root:
            yield root
    finally:
        mounts.unmount(target)
        target.rmdir()
        shutil.rmtree(base)  # the overlay's private work directory


@contextmanager
def running_root(rootfs: Path) -> Iterator[MergedRoot]:
    """A running container's own root filesystem mount; a conflict if it is not
    mounted (the container is starting or has just stopped)."""
    with _opened(rootfs) as root:
        if os.fstat(root.fd).st_dev == os.stat(rootfs.parent).st_dev:
            raise Conflict("the root filesystem of the container is not mounted "
                           "(it is starting or stopping): try again")
        yield root


@contextmanager
def with_mounts(root: MergedRoot, points: Iterable[MountPoint]
                ) -> Iterator[inroot.RootView]:
    """``root`` with the directories of the container's volumes and binds at their
    destinations (resolved inside the root; parents first, a later one over an
    earlier one at the same place, as runc mounts them)."""
    opened: dict[str, int] = {}
    readonly: set[str] = set()
    try:
        for point in sorted(points, key=lambda p: p.destination.count("/")):
            fd = _open_source(point)
            if fd is None:
                continue
            where = _mount_path(root.fd, point.destination, opened)
            if where in opened:
                os.close(opened.pop(where))
            opened[where] = fd
            if point.rw:
                readonly.discard(where)
            else:
                readonly.add(where)
        yield inroot.RootView(root.fd, MappingProxyType(opened), frozenset(readonly))
    finally:
        for fd in opened.values():
            os.close(fd)


def _open_source(point: MountPoint) -> int | None:
    """The host directory of a volume or bind (``None``: a file, tmpfs, or gone)."""
    if point.type not in ("bind", "volume") or not point.source:
        return None
    try:
        source = resolve_subpath(point) if point.subpath else point.source
        return os.open(source, _ROOT_FLAGS & ~os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError, InvalidParameter):
        return None


def _mount_path(root: int, destination: str, mounts: Mapping[str, int]) -> str:
    """Where runc mounted ``destination``: links followed inside the root (and the
    mounts above it); lexically when it does not exist (yet)."""
    try:
        found = inroot.resolve(root, destination, follow_last=True, mounts=mounts)
    except OSError:
        return "/" + posixpath.normpath(destination).lstrip("/")
    os.close(found.parent)
    return found.path

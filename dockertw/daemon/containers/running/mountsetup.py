"""Readying a container's mounts on the host just before it starts (blocking).

A ``Binds`` source that does not exist is created as a directory, as Docker does; an
empty volume mounted with ``copy_data`` gets the image's content at its destination
(ownership and modes kept).  Paths inside the root filesystem are resolved without
ever leaving it: a symbolic link in the image cannot point the copy at the host.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

import attrs

from dockertw.daemon.containers.records.mounts import resolve_subpath, runtime_mounts
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.running.bundle import subpaths_of
from dockertw.daemon.mountpoint import MountPoint
from dockertw.errdefs import NotFound
from dockertw.runtime import mounts
from dockertw.runtime.spec import Mount

__all__ = ["prepare_mounts", "pin_subpath", "resolve_inside", "points_to_prepare"]

_MAX_LINKS = 40


def resolve_inside(rootfs: Path, path: str) -> Path | None:
    """``path`` of the container as a host path under ``rootfs``, following links
    inside the root only (``None`` when a component is missing or too many links)."""
    pending = [p for p in path.split("/") if p and p != "."]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = rootfs.joinpath(*resolved, part)
        try:
            info = os.lstat(candidate)
        except OSError:
            return None
        if stat.S_ISLNK(info.st_mode):
            hops += 1
            if hops > _MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p and p != "."] + pending
            continue
        resolved.append(part)
    return rootfs.joinpath(*resolved)


def _copy_owner_and_mode(source: Path, target: Path) -> None:
    info = os.lstat(source)
    os.lchown(target, info.st_uid, info.st_gid)
    if not stat.S_ISLNK(info.st_mode):
        os.chmod(target, stat.S_IMODE(info.st_mode))


def copy_image_content(rootfs: Path, destination: str, data: Path) -> None:
    """Fill the empty volume directory ``data`` with the image's ``destination``."""
    source = resolve_inside(rootfs, destination)
    if source is None or not source.is_dir() or source.is_symlink() or any(data.iterdir()):
        return
    shutil.copytree(source, data, symlinks=True, dirs_exist_ok=True)
    _copy_owner_and_mode(source, data)
    for directory, dirnames, filenames in os.walk(source):
        relative = Path(directory).relative_to(source)
        for name in (*dirnames, *filenames):
            _copy_owner_and_mode(Path(directory, name), data / relative / name)


def points_to_prepare(container: Container) -> list[MountPoint]:
    """The container's mount points; image content is copied into empty volumes on its
    first start only (Docker copies when the container is created)."""
    points = container.points()
    if container.state.started_ns:
        points = [attrs.evolve(point, copy_data=False) for point in points]
    return points


def prepare_mounts(points: Iterable[MountPoint], rootfs: Path) -> tuple[Mount, ...]:
    """Create missing bind sources, pin volumes' subpaths, copy image content into new
    volumes; the OCI mounts of ``points``."""
    chosen = []
    for index, point in enumerate(points):
        if point.type == "bind" and point.create_source and not os.path.exists(point.source):
            os.makedirs(point.source, mode=0o755, exist_ok=True)
        if point.type == "volume" and point.subpath:
            point = pin_subpath(point, subpaths_of(rootfs.parent) / str(index))
        if point.type == "volume" and point.copy_data and point.source:
            copy_image_content(rootfs, point.destination, Path(point.source))
        chosen.append(point)
    return runtime_mounts(chosen)


def pin_subpath(point: MountPoint, staging: Path) -> MountPoint:
    """The volume's ``Subpath``, links resolved, as moby's ``safepath.Join``: it must
    stay inside the volume and exist; bound at ``staging`` from an fd, so a link
    swapped in afterwards cannot move what the container gets."""
    real = resolve_subpath(point)
    wanted = os.path.join(point.source, point.subpath)
    try:
        fd = os.open(real, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise NotFound(f"cannot access path {wanted}: lstat {real}: "
                       f"{(error.strerror or 'error').lower()}") from None
    try:
        if os.readlink(f"/proc/self/fd/{fd}") != real:
            raise NotFound(f"cannot access path {wanted}: it changed while being opened")
        _make_target(staging, stat.S_ISDIR(os.fstat(fd).st_mode))
        mounts.bind_mount(f"/proc/self/fd/{fd}", staging)
    finally:
        os.close(fd)
    return attrs.evolve(point, source=str(staging), subpath="")


def _make_target(path: Path, directory: bool) -> None:
    """An empty directory or file to bind onto."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        path.mkdir(exist_ok=True)
    else:
        path.touch(exist_ok=True)

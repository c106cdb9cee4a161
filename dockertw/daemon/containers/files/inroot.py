"""Paths resolved inside a root directory, one component at a time, through fds.

Nothing here turns a path into a host path string and opens that: every component is
opened relative to its parent's file descriptor with ``O_NOFOLLOW``, ``..`` goes back
along the chain of opened directories (never above the root) and symbolic links are
read and resolved by us, an absolute target starting again at the root.  A link
swapped in between the ``lstat`` and the ``open`` makes the open fail (``ELOOP`` or
``ENOTDIR``) instead of leading outside.  So a link or ``..`` inside a container's
root filesystem can never name a file of the host (CVE-2018-15664, CVE-2019-14271).

A container's mounts (its volumes and bind mounts) can be given as ``mounts``: a
path inside the root (links resolved) and an fd of the directory mounted there.  The
walk then enters that directory at that path, as the container would, whatever is
beneath it in the root.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

import attrs

__all__ = ["Resolved", "RootView", "resolve", "open_dir", "lstat", "MAX_LINKS",
           "NO_MOUNTS"]

MAX_LINKS = 40  # as Linux's MAXSYMLINKS
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NO_MOUNTS: Mapping[str, int] = MappingProxyType({})


@attrs.frozen
class Resolved:
    """The last component ``name`` in its parent directory ``parent`` (an fd the
    caller closes); ``name`` is ``""`` for the root itself.  ``path`` is where it is,
    absolute inside the root with every link resolved."""

    parent: int
    name: str
    path: str


@attrs.frozen
class RootView:
    """A root directory fd with the mounts inside it, and which of them are read-only
    (paths inside the root, links resolved)."""

    fd: int
    mounts: Mapping[str, int] = NO_MOUNTS
    readonly: frozenset[str] = frozenset()

    def resolve(self, path: str, **options: bool) -> Resolved:
        """:func:`resolve` in this view."""
        return resolve(self.fd, path, mounts=self.mounts, **options)

    def is_readonly(self, path: str) -> bool:
        """Whether ``path`` (resolved) is inside a read-only mount."""
        return any(_inside(path, mount) for mount in self.readonly)

    def in_mount(self, path: str) -> bool:
        """Whether ``path`` (resolved) is inside one of the mounts."""
        return any(_inside(path, mount) for mount in self.mounts)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


class _Walk:
    """The chain of directories opened so far, the root first."""

    def __init__(self, root: int, mounts: Mapping[str, int]) -> None:
        self.fds = [os.dup(root)]
        self.names: list[str] = []
        self.mounts = mounts

    def enter(self, name: str) -> None:
        mounted = self.mounts.get(self.path(name))
        if mounted is not None:
            self.fds.append(os.dup(mounted))
        else:
            self.fds.append(os.open(name, _DIR_FLAGS, dir_fd=self.fds[-1]))
        self.names.append(name)

    def leave(self) -> None:
        if len(self.fds) > 1:
            os.close(self.fds.pop())
            self.names.pop()

    def to_root(self) -> None:
        while len(self.fds) > 1:
            self.leave()

    def path(self, name: str = "") -> str:
        return "/" + "/".join([*self.names, name] if name else self.names)

    def take_parent(self) -> int:
        """The innermost directory's fd (now the caller's); closes the others."""
        fd = self.fds.pop()
        self.close()
        return fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def resolve(root: int, path: str, *, follow_last: bool = False,
            must_exist: bool = True, make_dirs: bool = False,
            mounts: Mapping[str, int] = NO_MOUNTS) -> Resolved:
    """Resolve ``path`` (relative to the root directory fd ``root``, a leading ``/``
    or not) inside that root, entering ``mounts`` on the way.  Links in the last
    component are followed only with ``follow_last``; a missing last component is an
    error only with ``must_exist``; ``make_dirs`` creates missing directories on the
    way (mode 0755).  A mount's own path resolves to its directory (``name`` "").
    Raises ``OSError`` (``ENOENT``, ``ENOTDIR``, ``ELOOP`` after :data:`MAX_LINKS`
    links)."""
    walk = _Walk(root, mounts)
    try:
        name = _walk(walk, _components(path), follow_last, must_exist, make_dirs)
        resolved_path = walk.path(name)
        return Resolved(walk.take_parent(), name, resolved_path)
    finally:
        walk.close()


def _walk(walk: _Walk, todo: list[str], follow_last: bool, must_exist: bool,
          make_dirs: bool) -> str:
    """Consume ``todo``; answer the last component's name ("" for a directory
    reached by ``..`` or the root, which is then the innermost open directory)."""
    links = 0
    todo = list(reversed(todo))  # a stack: the next component last
    while todo:
        part = todo.pop()
        if part == "..":
            walk.leave()
            continue
        last = not todo
        if walk.path(part) in walk.mounts:  # the mount hides what is beneath it
            walk.enter(part)
            if last:
                return ""
            continue
        try:
            info = os.stat(part, dir_fd=walk.fds[-1], follow_symlinks=False)
        except FileNotFoundError:
            if last and not must_exist:
                return part
            if not make_dirs:
                raise
            os.mkdir(part, 0o755, dir_fd=walk.fds[-1])
            info = os.stat(part, dir_fd=walk.fds[-1], follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode) and (follow_last or not last):
            links += 1
            if links > MAX_LINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), part)
            target = os.readlink(part, dir_fd=walk.fds[-1])
            if target.startswith("/"):
                walk.to_root()
            todo.extend(reversed(_components(target)))
            continue
        if last:
            return part
        if not stat.S_ISDIR(info.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), part)
        walk.enter(part)
    return ""


@contextmanager
def open_dir(resolved: Resolved, flags: int = os.O_RDONLY) -> Iterator[int]:
    """The resolved directory itself, opened with ``flags`` (never through a link)."""
    if resolved.name:
        fd = os.open(resolved.name, flags | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=resolved.parent)
    else:  # the root, or a directory reached by "..": the parent fd is the directory
        fd = os.open(".", flags | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=resolved.parent)
    try:
        yield fd
    finally:
        os.close(fd)


def lstat(resolved: Resolved) -> os.stat_result:
    """The resolved entry's own status (a link is not followed)."""
    if not resolved.name:
        return os.stat(".", dir_fd=resolved.parent)
    return os.stat(resolved.name, dir_fd=resolved.parent, follow_symlinks=False)

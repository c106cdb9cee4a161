"""Crash-safe files under the state root: write a temporary file, fsync, rename."""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from dockertw.errdefs import Unavailable

__all__ = ["atomic_write", "ensure_directory", "fsync_directory", "tree_size",
           "remove_temporaries", "lock_root"]

_TEMPORARY = re.compile(r"\..+\.tmp-[0-9]+")  # atomic_write's, named after a process


def ensure_directory(path: Path, mode: int = 0o711) -> Path:
    """Create ``path`` and its parents if missing; return it."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def tree_size(root: Path) -> int:
    """Bytes in the files under ``root`` (links not followed, hard links counted once;
    0 when missing), as Docker sizes a container's writable layer."""
    total, seen, pending = 0, set(), [str(root)]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole.

    ``durable=False`` skips the fsyncs: a daemon crash still leaves a whole file, a power
    loss may leave the old one (for what is rebuilt or reconciled at start anyway).  A
    failure (a full disk) removes the temporary file; what a crash leaves of one,
    :func:`remove_temporaries` removes at start."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            if durable:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def remove_temporaries(directory: Path) -> None:
    """Remove what :func:`atomic_write` calls of a killed process left in ``directory``
    (blocking, at start)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        if _TEMPORARY.fullmatch(name):
            (directory / name).unlink(missing_ok=True)


def lock_root(root: Path) -> int:
    """Take the state root for this process (a lock on ``ROOT/.lock``, released when
    it exits): two daemons on one root would undo each other's work at start.
    :class:`~dockertw.errdefs.Unavailable` when another process has it."""
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Unavailable(f"another daemon is using the state root {root}") from None
    return fd

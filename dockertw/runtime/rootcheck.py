"""Is this process chrooted?  A process that joins a container's mount namespace, as
``runc exec`` does, starts at that namespace's root; in a chroot (even onto a bind
mount) that root is the host's /, not the container's root filesystem, so
``docker exec`` would run the host's binaries.  pivot_root gives a proper root."""

from __future__ import annotations

import ctypes
import os

__all__ = ["CHROOT_WARNING", "chrooted"]

_CLONE_NEWNS = 0x00020000
CHROOT_WARNING = ("WARNING: dockertw runs in a chroot: docker exec would start processes "
                  "in the host's root, not the container's; enter the root with "
                  "pivot_root (as a real machine, a container or .ci/fresh-root does)")


def _root_identity() -> str:
    """What / is: its directory and the mount it is on (the last mount listed at /)."""
    found = os.stat("/")
    mount = ""
    with open("/proc/self/mountinfo") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 4 and fields[4] == "/":
                mount = fields[0]
    return f"{found.st_dev}:{found.st_ino}:{mount}"


def _namespace_root() -> str:
    """In a child: join our own mount namespace again, which moves the root to the
    namespace's, and answer what / is there."""
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = os.open("/proc/self/ns/mnt", os.O_RDONLY)
    if libc.setns(descriptor, _CLONE_NEWNS) != 0:
        return ""
    return _root_identity()


def chrooted() -> bool:
    """Whether / differs from this mount namespace's root (blocking; call at start-up,
    before threads run).  Unknown (no permission, no /proc) counts as not."""
    try:
        here = _root_identity()
    except OSError:
        return False
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(writing, _namespace_root().encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(child, 0)
    return bool(answer) and answer != here

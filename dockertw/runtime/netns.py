"""Network namespaces made and pinned by the daemon, as ``ip netns add`` makes them.

A namespace is created by the calling thread (``unshare(CLONE_NEWNET)`` affects that
thread only), bind-mounted on a file so that it outlives every process in it, and the
thread goes back to its own namespace before it returns.  Work that must happen inside
(opening sockets there) runs in the same thread meanwhile.  Everything blocks: call it
from a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dockertw.runtime import mounts
from dockertw.runtime.syscalls import check, libc

__all__ = ["create", "enter", "remove", "pinned_under", "is_pinned"]

_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_THREAD_NETNS = b"/proc/thread-self/ns/net"
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 1
_T = TypeVar("_T")


def _back_to(original: int) -> None:
    """Return this thread to the namespace ``original`` (a descriptor) and close it."""
    try:
        check(libc().setns(original, _CLONE_NEWNET), "setns back")
    finally:
        os.close(original)


def _loopback_up() -> None:
    """``ip link set lo up`` in this thread's namespace (``SIOCSIFFLAGS``): its
    127.0.0.0/8 addresses exist from then on, so sockets bound to them send from
    them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _no_duplicate_address_detection() -> None:
    """Addresses come from the daemon's IPAM, unique by construction: IPv6 ones need not
    wait a second or two for DAD (this thread's namespace's sysctls)."""
    for scope in ("all", "default"):
        with contextlib.suppress(OSError):
            Path(f"/proc/sys/net/ipv6/conf/{scope}/accept_dad").write_text("0")


def create(path: Path, inside: Callable[[], _T] | None = None) -> _T | None:
    """A new network namespace pinned at ``path``, its ``lo`` up; ``inside`` runs in
    it and its answer is returned.  Nothing is left behind on failure."""
    original = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    pinned = False
    try:
        check(libc().unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o444))
        check(libc().mount(_THREAD_NETNS, os.fsencode(path), None, _MS_BIND, None),
               f"pin network namespace at {path}")
        pinned = True
        _loopback_up()
        _no_duplicate_address_detection()
        return inside() if inside is not None else None
    except BaseException:
        if pinned:
            mounts.unmount(path)
        path.unlink(missing_ok=True)
        raise
    finally:
        _back_to(original)


def enter(path: Path, inside: Callable[[], _T]) -> _T:
    """Run ``inside`` in the namespace pinned at ``path`` (this thread only)."""
    original = os.open(_THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            check(libc().setns(target, _CLONE_NEWNET), f"setns {path}")
        finally:
            os.close(target)
        return inside()
    finally:
        _back_to(original)


def remove(path: Path) -> None:
    """Unpin the namespace at ``path`` and delete the file (missing: nothing to do).
    The namespace goes once no process is left in it."""
    if is_pinned(path):
        mounts.unmount(path)
    path.unlink(missing_ok=True)


def is_pinned(path: Path) -> bool:
    return mounts.is_mounted(path)


def pinned_under(directory: Path) -> list[Path]:
    """The files in ``directory`` (pinned or not): what a crashed daemon left."""
    try:
        return sorted(entry for entry in directory.iterdir() if not entry.is_dir())
    except FileNotFoundError:
        return []

"""The holder's protocol: one JSON object per ``SOCK_SEQPACKET`` message, with file
descriptors attached (``SCM_RIGHTS``).

Standard library only: the holder process imports it without Twisted.  A request
that is answered carries an ``id``, echoed by its answer.

Daemon to holder:

``hello`` {version}
    Answered by ``hello`` {version, pid, held: [...]}, each held process as
    :func:`held_entry` describes it.  The holder stops reading outputs first.
``run`` {id, argv, env, fds: [child fd numbers]} + the descriptors
    Spawn a runtime command (``runc run --detach``, ``runc exec --detach``) whose
    process outlives it; answered by ``ran`` {id, code} or {id, error}.
``watch`` {id, key, pid, tty, fds: [names], log: {path, max_size, max_files} | null}
    Hold the process ``pid`` (now the holder's child) and copies of the daemon's ends
    of its streams (``stdin``, ``stdout``, ``stderr``, ``terminal``); answered by
    ``watching`` {id, key, alive} with the process's pidfd while it is alive.
``adopt`` {id, key}
    Answered by ``adopted`` {id, key, fds: [names], pidfd: bool} with copies of the
    held descriptors (then the pidfd), or {id, key, error}.
``close`` {key, name}, ``release`` {key}, ``drop`` {key}, ``kill`` {key, signal}
    Close one held descriptor (the end of a container's input); forget an exited
    process; read and discard a process's output until it exits, then forget it; signal
    a process.  Not answered.
``stop`` {id}
    Kill every process, wait for them, answer ``stopped`` {id, exits: [{key, code,
    finished_ns}]} and exit.

Holder to daemon, unasked: ``exit`` {key, code, finished_ns} when a held process ends;
``error`` {message} before it closes a connection it refuses.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["VERSION", "MAX_MESSAGE", "MAX_FDS", "ProtocolError", "encode", "decode",
           "send", "receive", "held_entry", "close_all"]

VERSION = 1
MAX_MESSAGE = 1 << 16
MAX_FDS = 8
_FD_SPACE = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)


class ProtocolError(Exception):
    """A message that is not one of the protocol's."""


def encode(message: Mapping[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ProtocolError(f"message too long ({len(data)} bytes)")
    return data


def decode(data: bytes) -> dict[str, Any]:
    try:
        message = json.loads(data)
    except ValueError as error:
        raise ProtocolError(f"not JSON: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("a message is an object with an op")
    return message


def send(sock: socket.socket, message: Mapping[str, Any], fds: Sequence[int] = ()) -> None:
    """Send one message with ``fds`` (the caller still owns them).  On a non-blocking
    socket, :class:`BlockingIOError` when it has no room now."""
    data = encode(message)
    if len(fds) > MAX_FDS:
        raise ProtocolError(f"too many descriptors ({len(fds)})")
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], ancillary)


def receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One message and the descriptors that came with it (close-on-exec, now the
    caller's); ``None`` when the peer has closed.  :class:`ProtocolError` for a
    message that is not one (its descriptors are closed)."""
    data, ancillary, flags, _ = sock.recvmsg(MAX_MESSAGE, _FD_SPACE, socket.MSG_CMSG_CLOEXEC)
    fds = _descriptors(ancillary)
    if not data and not fds:
        return None
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ProtocolError("message truncated")
        return decode(data), fds
    except ProtocolError:
        close_all(fds)
        raise


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return list(fds)


def close_all(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def held_entry(key: str, pid: int, *, alive: bool, code: int | None, finished_ns: int,
               tty: bool, fds: Sequence[str]) -> dict[str, Any]:
    """How ``hello`` describes one held process: alive, or with its exit code and the
    time it ended; whether it has a terminal, which of its descriptors are held."""
    return {"key": key, "pid": pid, "alive": alive, "code": code,
            "finished_ns": finished_ns, "tty": tty, "fds": list(fds)}

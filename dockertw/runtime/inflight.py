"""Runtime commands a killed daemon left running on its state directory.

A daemon killed with SIGKILL while ``runc create`` (or ``run --detach``, ``exec
--detach``) runs leaves that command behind, re-parented away from it; it may still be
writing the container's state when the next daemon starts.  The next daemon waits for
such commands to end before it looks at what runc knows, so a container they make
is not missed by the clean-up and left without an owner.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["await_commands", "commands_on"]

_POLL = 0.02  # seconds between looks at /proc


def await_commands(state_root: Path, timeout: float = 15.0) -> list[int]:
    """Block until no process runs with ``--root state_root`` (for at most ``timeout``
    seconds); answer the ones still running then."""
    deadline = time.monotonic() + timeout
    running = commands_on(state_root)
    while running and time.monotonic() < deadline:
        time.sleep(_POLL)
        running = commands_on(state_root)
    return running


def commands_on(state_root: Path) -> list[int]:
    """The processes whose command line holds ``--root state_root``."""
    marker = b"\0--root\0" + os.fsencode(state_root) + b"\0"
    return [pid for pid in _pids() if marker in _command_line(pid)]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _command_line(pid: int) -> bytes:
    """The NUL-separated argv of ``pid``, with a NUL at each end (empty when gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return b"\0" + file.read()
    except OSError:
        return b""

"""The daemon's PID file (``-p/--pidfile``), with dockerd's semantics: a file naming a
live process stops a second daemon; the file is written once running, removed at exit."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["PidFileTaken", "check_pidfile", "write_pidfile", "remove_pidfile"]


class PidFileTaken(RuntimeError):
    """Another daemon (a live process) holds the PID file."""


def _recorded_pid(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_pidfile(path: Path) -> None:
    """Refuse when ``path`` names a live process other than this one."""
    pid = _recorded_pid(path)
    if pid and pid != os.getpid() and _alive(pid):
        raise PidFileTaken(f"pid file found, ensure dockertw is not running or delete {path}")


def write_pidfile(path: Path) -> None:
    """This process's PID, written whole (temporary file, then rename)."""
    check_pidfile(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"{os.getpid()}")
    os.replace(temporary, path)


def remove_pidfile(path: Path) -> None:
    """Remove ``path`` if it still names this process."""
    if _recorded_pid(path) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

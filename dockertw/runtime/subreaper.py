"""Being a child subreaper, and exit statuses as Docker reports them (standard library
only: the holder process imports this without Twisted)."""

from __future__ import annotations

import ctypes
import os

__all__ = ["become_subreaper", "exit_code_of_status"]

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper(enable: bool = True) -> None:
    """Orphaned descendants (container inits) become this process's children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(error)}")


def exit_code_of_status(status: int) -> int:
    """A ``waitpid`` status as Docker reports it: the exit code, or 128 + the signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)

"""libc calls through ctypes, with ``errno`` turned into :class:`OSError`."""

from __future__ import annotations

import ctypes
import os

__all__ = ["libc", "check"]


def libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    """Raise ``OSError`` (errno and ``what``) when a libc call answered non-zero."""
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")

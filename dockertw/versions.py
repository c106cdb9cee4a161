"""API version strings compared the way moby compares them.

Each dot-separated part is an integer (a part that is not a number counts as 0) and
missing parts are 0, so ``1.41.0 == 1.41`` and ``01.041 == 1.41``.
"""

from __future__ import annotations

__all__ = ["MAX_API_VERSION", "MIN_API_VERSION", "compare", "is_less", "is_greater",
           "is_valid"]

MAX_API_VERSION = "1.56"
"""The newest Engine API version dockertw speaks (daemon and client)."""
MIN_API_VERSION = "1.24"
"""The oldest version the daemon serves by default (moby's floor)."""


def _parts(version: str) -> list[int]:
    parts = []
    for piece in version.split("."):
        try:
            parts.append(int(piece))
        except ValueError:
            parts.append(0)
    return parts


def compare(a: str, b: str) -> int:
    """Return -1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b``."""
    left, right = _parts(a), _parts(b)
    width = max(len(left), len(right))
    left += [0] * (width - len(left))
    right += [0] * (width - len(right))
    return (left > right) - (left < right)


def is_less(a: str, b: str) -> bool:
    return compare(a, b) < 0


def is_greater(a: str, b: str) -> bool:
    return compare(a, b) > 0


def is_valid(version: str) -> bool:
    """True for a ``MAJOR.MINOR`` string of decimal numbers (what options accept)."""
    pieces = version.split(".")
    return len(pieces) == 2 and all(piece.isdigit() for piece in pieces)

"""Typed errors shared by the engine and the API.

Each class names a kind of failure, as moby's ``errdefs`` do; the API layer maps the
kind to an HTTP status in one table (:mod:`dockertw.api.httpstatus`).  ``str(error)``
is the message a client is shown.
"""

from __future__ import annotations

import errno

__all__ = [
    "DockerError",
    "NotFound",
    "InvalidParameter",
    "Conflict",
    "Unauthorized",
    "Forbidden",
    "NotModified",
    "NotImplemented",
    "Unavailable",
    "System",
    "from_os_error",
    "is_storage_full",
]


class DockerError(Exception):
    """A failure whose message is meant for the API client."""

    @property
    def message(self) -> str:
        return str(self)


class NotFound(DockerError):
    """The object named in the request does not exist."""


class InvalidParameter(DockerError):
    """The request is malformed or names an impossible value."""


class Conflict(DockerError):
    """The request conflicts with the object's current state."""


class Unauthorized(DockerError):
    """The request lacks valid credentials."""


class Forbidden(DockerError):
    """The request is understood but not allowed."""


class NotModified(DockerError):
    """The request asked for a state the object is already in."""


class NotImplemented(DockerError):  # noqa: A001 - the errdefs name
    """dockertw does not implement this feature."""


class Unavailable(DockerError):
    """The feature exists but cannot serve right now."""


class System(DockerError):
    """An internal failure of the engine."""


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_storage_full(error: BaseException) -> bool:
    """Whether ``error`` is a disk (or quota) that is full."""
    return isinstance(error, OSError) and error.errno in _FULL


def from_os_error(error: OSError) -> System:
    """An operating system error as Go words a ``*PathError``: ``PATH: no space left
    on device`` (``strerror`` in lower case, the file when known)."""
    reason = error.strerror or str(error)
    reason = reason[:1].lower() + reason[1:]
    return System(f"{error.filename}: {reason}" if error.filename else reason)

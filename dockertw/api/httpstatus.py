"""The one table from typed errors to HTTP status codes (moby ``httpstatus.FromError``)."""

from __future__ import annotations

from dockertw import errdefs

__all__ = ["status_for"]

# Order matters: the first class an error is an instance of decides its status.
_STATUS_BY_KIND: tuple[tuple[type[errdefs.DockerError], int], ...] = (
    (errdefs.NotFound, 404),
    (errdefs.InvalidParameter, 400),
    (errdefs.Conflict, 409),
    (errdefs.Unauthorized, 401),
    (errdefs.Unavailable, 503),
    (errdefs.Forbidden, 403),
    (errdefs.NotModified, 304),
    (errdefs.NotImplemented, 501),
    (errdefs.System, 500),
)


def _cause_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__
    return chain


def status_for(error: BaseException) -> int:
    """The HTTP status for ``error``: its kind, or the first kind in its cause chain, or 500."""
    for link in _cause_chain(error):
        for kind, status in _STATUS_BY_KIND:
            if isinstance(link, kind):
                return status
    return 500

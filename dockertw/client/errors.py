"""Errors the client raises: the daemon's status and message, typed like moby's errdefs."""

from __future__ import annotations

import json
from http import HTTPStatus

from dockertw import errdefs

__all__ = [
    "APIError", "NotFoundError", "InvalidParameterError", "ConflictError",
    "UnauthorizedError", "UnavailableError", "ForbiddenError", "NotModifiedError",
    "NotImplementedError_", "SystemError_", "ConnectionFailed", "error_for_response",
]


class APIError(Exception):
    """The daemon answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.status = status
        self._message = message

    @property
    def message(self) -> str:
        """The daemon's own message, without the ``Error response from daemon`` prefix."""
        return self._message


class NotFoundError(APIError, errdefs.NotFound):
    pass


class InvalidParameterError(APIError, errdefs.InvalidParameter):
    pass


class ConflictError(APIError, errdefs.Conflict):
    pass


class UnauthorizedError(APIError, errdefs.Unauthorized):
    pass


class UnavailableError(APIError, errdefs.Unavailable):
    pass


class ForbiddenError(APIError, errdefs.Forbidden):
    pass


class NotModifiedError(APIError, errdefs.NotModified):
    pass


class NotImplementedError_(APIError, errdefs.NotImplemented):
    pass


class SystemError_(APIError, errdefs.System):
    pass


class ConnectionFailed(Exception):
    """The daemon could not be reached at all."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"Cannot connect to the Docker daemon at {host}. Is the docker daemon running? "
            f"({reason})")
        self.host = host


_BY_STATUS: dict[int, type[APIError]] = {
    404: NotFoundError, 400: InvalidParameterError, 409: ConflictError,
    401: UnauthorizedError, 503: UnavailableError, 403: ForbiddenError,
    304: NotModifiedError, 501: NotImplementedError_, 500: SystemError_,
}


def _message(status: int, content_type: str | None, body: bytes, route: str) -> str:
    if content_type == "application/json":
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
            return decoded["message"]
    text = body.decode("utf-8", "replace").strip()
    if text:
        return text
    try:
        status_text = HTTPStatus(status).phrase
    except ValueError:
        status_text = f"status {status}"
    return (f"request returned {status_text} for API route and version {route}, "
            "check if the server supports the requested API version")


def error_for_response(status: int, content_type: str | None, body: bytes,
                       route: str) -> APIError:
    """The typed error for an error response, as the Go client reads one."""
    kind = _BY_STATUS.get(status)
    if kind is None:
        kind = InvalidParameterError if 400 <= status < 500 else SystemError_
    return kind(status, _message(status, content_type, body, route))

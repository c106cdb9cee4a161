"""Pull and push progress, framed as Docker's JSON message stream on a response.

The response starts with the first message: an error raised before it is still an
HTTP error; one raised after it ends the stream in-band (``errorDetail``).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from dockertw import versions
from dockertw.api.versions import before
from dockertw.errdefs import DockerError
from dockertw.loglevel import Logger
from dockertw.streams.jsonmessage import (
    format_aux,
    format_error,
    format_layer,
    format_progress,
    format_status,
)

__all__ = ["JsonProgress"]

_log = Logger()


class JsonProgress:
    """A :class:`~dockertw.daemon.distribution.progress.ProgressOutput` on a response;
    the legacy ``progress`` and ``error`` texts only for requests older than API 1.52."""

    def __init__(self, request: IRequest, version: str = versions.MAX_API_VERSION) -> None:
        self._request = request
        self._legacy = before(version, "1.52")
        self.started = False

    def _write(self, data: bytes) -> None:
        if not self.started:
            self.started = True
            self._request.setHeader(b"content-type", b"application/json")
        self._request.write(data)

    def status(self, text: str, id: str = "") -> None:  # noqa: A002 - Docker's field
        self._write(format_status(text, id))

    def layer(self, id: str, status: str) -> None:  # noqa: A002
        self._write(format_layer(status, id))

    def progress(self, id: str, action: str, current: int, total: int) -> None:  # noqa: A002
        self._write(format_progress(action, id, current, total, legacy=self._legacy))

    def aux(self, value: dict[str, Any]) -> None:
        self._write(format_aux(value))

    def ended(self, outcome: Any) -> None | Failure:
        """The operation's outcome: an error after the stream started goes in-band
        (an unexpected one is logged too); before, it is the router's to answer."""
        if not isinstance(outcome, Failure):
            return None
        if not self.started or outcome.check(CancelledError) or not outcome.check(Exception):
            return outcome
        if not outcome.check(DockerError):
            _log.failure("A pull or push failed", outcome)
        self._request.write(format_error(str(outcome.value) or type(outcome.value).__name__,
                                         legacy=self._legacy))
        return None

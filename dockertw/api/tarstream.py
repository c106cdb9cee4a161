"""Tar archives streamed as responses from a worker thread through a
:class:`~dockertw.daemon.pump.Pump` (``docker save``, ``docker export``)."""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import CancelledError
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest

from dockertw.daemon.pump import Begin, Pump
from dockertw.loglevel import Logger

__all__ = ["start_tar", "stream_ended"]

_log = Logger()


def start_tar(request: IRequest) -> Begin:
    def begin(pump: Pump) -> Any:
        request.setHeader(b"content-type", b"application/x-tar")
        cast(server.Request, request).registerProducer(pump, True)
        return request.write

    return begin


def stream_ended(result: Any, request: IRequest) -> Any:
    """Unregister the pump; a stream that fails midway cuts the connection, so the
    client sees a broken archive rather than a short one."""
    gone = getattr(request, "channel", None) is None  # the client went away
    if getattr(request, "producer", None) is not None and not gone:
        cast(server.Request, request).unregisterProducer()
    failed = isinstance(result, Failure) and not result.check(CancelledError)
    if failed and getattr(request, "startedWriting", False):
        _log.error("A tar stream failed midway: {error}", error=result.value)
        request.transport.abortConnection()  # type: ignore[attr-defined]
    return result

"""What one connection may make the daemon wait for, or hold, before it is cut.

- The headers of a request must be complete within ``header_timeout`` seconds of the
  connection's opening, or of the first byte of a later request: Go's
  ``ReadHeaderTimeout``, which dockerd sets to five minutes.
- Between requests a keep-alive connection waits ``idle_timeout`` seconds at most;
  without limit by default, as dockerd's do (Twisted's own idle timeout is off).
- A body the daemon buffers before it routes the request (every body but those of
  routes that stream theirs: ``docker cp``, import, load, build) must be complete
  within ``body_timeout`` seconds of its headers, and hold at most ``max_body``
  bytes: a larger ``Content-Length`` is answered 413 as soon as the headers are in,
  a chunked body as soon as it crosses the limit, and the connection is closed.
- Streamed bodies, responses however long, and hijacked streams are never timed.

A connection cut by a timeout is aborted without an answer, as Go's server does.
The deadline costs a request one attribute: each connection has at most one reactor
timer, which on firing sleeps again until the current deadline, or cuts.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import attrs
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from dockertw.api import httputils
from dockertw.api.channel import HttpChannel
from dockertw.loglevel import Logger

__all__ = ["ConnectionLimits", "LimitedChannel", "DEFAULT_LIMITS"]

_log = Logger()
_LINGER_SECONDS = 2.0  # after a 413, read and drop what the client still sends


@attrs.frozen
class ConnectionLimits:
    """The daemon's limits on each connection (``None``: no timeout)."""

    header_timeout: float | None = 300.0
    body_timeout: float | None = 300.0
    idle_timeout: float | None = None
    max_body: int = 4 << 20

    def too_large(self) -> bytes:
        """The whole 413 response, closing the connection."""
        body = httputils.encode_json({"message": f"request body too large: the limit is "
                                                 f"{self.max_body} bytes"})
        return (b"HTTP/1.1 413 Request Entity Too Large\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % len(body)) + body


DEFAULT_LIMITS = ConnectionLimits()


class _CappedBody:
    """The file a buffered chunked body goes to; ``over`` is called once it passes
    ``limit`` bytes, and later writes are dropped."""

    def __init__(self, file: BinaryIO, limit: int, over: Any) -> None:
        self._file = file
        self._left = limit
        self._over = over

    def write(self, data: bytes) -> None:
        self._left -= len(data)
        if self._left >= 0:
            self._file.write(data)
        elif self._over is not None:
            over, self._over = self._over, None
            over()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


class LimitedChannel(HttpChannel):
    """An HTTP channel that keeps to its site's :class:`ConnectionLimits` (``limits``).

    The request objects may say that their route streams the body: before their
    length is known, with a ``streams_body()`` method, and after, with a
    ``streaming`` attribute.
    """

    site: Any  # set by the Site that builds the channel
    callLater: Any  # noqa: N815 - set by the Site: its reactor's
    _limits = DEFAULT_LIMITS
    _deadline: float | None = None
    _waiting_for = ("", 0.0)  # what, and for how many seconds
    _timer: IDelayedCall | None = None
    _linger: IDelayedCall | None = None
    _between_requests = False
    _refused = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._limits = getattr(self.site, "limits", DEFAULT_LIMITS)
        self._wait("request headers", self._limits.header_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return  # what is left of a refused body
        if self._between_requests:
            self._between_requests = False
            self._wait("request headers", self._limits.header_timeout)
        super().dataReceived(data)

    def _admit(self, request: Any, length: int | None) -> bool:
        if length is not None and length > self._limits.max_body and not _streams(request):
            self._refuse_body()
            return False
        if length == 0:
            self._deadline = None  # nothing awaited from the client
        return True

    def _awaiting_body(self, request: Any, length: int | None) -> None:
        if getattr(request, "streaming", False):
            self._deadline = None  # a streamed body is never timed
            return
        self._wait("request body", self._limits.body_timeout)
        if length is None:
            request.content = _CappedBody(request.content, self._limits.max_body,
                                          self._refuse_body)

    def _request_in(self, request: Any) -> None:
        self._deadline = None  # nothing awaited from the client

    def requestDone(self, request: Any) -> None:
        self._between_requests = True  # the next request's first byte starts its clock
        self._wait("next request", self._limits.idle_timeout)
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._deadline = None
        for call in (self._timer, self._linger):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._linger = None
        super().connectionLost(reason)

    def _wait(self, what: str, seconds: float | None) -> None:
        """From now on, wait ``seconds`` at most for ``what`` (``None``: no limit)."""
        if seconds is None:
            self._deadline = None
            return
        self._waiting_for = (what, seconds)
        self._deadline = self.site.reactor.seconds() + seconds
        if self._timer is None:
            self._timer = self.callLater(seconds, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        if self._deadline is None or self.transport is None:
            return
        left = self._deadline - self.site.reactor.seconds()
        if left > 0:
            self._timer = self.callLater(left, self._check_deadline)
            return
        transport: Any = self.transport
        what, seconds = self._waiting_for
        _log.info("{listener}: no {what} from {peer} in {seconds}s: connection closed",
                  listener=self._listener, what=what, peer=_peer(transport),
                  seconds=f"{seconds:g}")
        transport.abortConnection()

    @property
    def _listener(self) -> str:
        return str(getattr(self.site, "listener", "?"))

    def _refuse_body(self) -> None:
        """Answer 413, close the writing side, and drop input for a while."""
        self._refused = self._closed = True  # nothing more is read or answered
        self._deadline = None
        transport: Any = self.transport
        _log.info("{listener}: request body of {peer} over {limit} bytes: refused (413)",
                  listener=self._listener, peer=_peer(transport),
                  limit=self._limits.max_body)
        transport.write(self._limits.too_large())
        close_write = getattr(transport, "loseWriteConnection", None)
        if close_write is None:
            transport.loseConnection()
            return
        close_write()
        self._linger = self.callLater(_LINGER_SECONDS, transport.abortConnection)


def _streams(request: Any) -> bool:
    """Whether the route of ``request`` reads the body as it arrives."""
    streams_body = getattr(request, "streams_body", None)
    return bool(streams_body is not None and streams_body())


def _peer(transport: Any) -> str:
    """``HOST:PORT`` of a TCP peer (a UNIX socket's peers have no name)."""
    address = transport.getPeer()
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return f"{host}:{port}" if host is not None and port is not None else "a local client"

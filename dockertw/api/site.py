"""The Twisted ``Site`` each listener serves: one log line per request, request
bodies streamed to the routes that ask for it, the listener's gate (policy, route
names for metrics) and its connection and request metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import IResource

from dockertw import meters
from dockertw.api.limits import DEFAULT_LIMITS, ConnectionLimits, LimitedChannel
from dockertw.api.request import LeanRequest
from dockertw.daemon.bodypipe import BodyLost, BodyPipe
from dockertw.loglevel import Logger

__all__ = ["ApiChannel", "ApiRequest", "ApiSite"]

_STREAMED_READ_SIZE = 1 << 20
LOG_EVERY = 0.1  # seconds between writes of the access log


class ApiRequest(LeanRequest):
    """A request that remembers when it arrived, and that a handler can hijack.

    When the site says a route streams its body (:meth:`ApiSite.streams_body`), the
    request is dispatched as soon as its headers are in, with a :class:`BodyPipe` as
    ``content``; its response is finished only once the whole body has arrived, so
    the connection stays in step for the next request.
    """

    content: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrived = time.monotonic()
        self.hijacked = False
        self._streaming = False
        self._finish_waiting = False
        self._read_size: int | None = None
        self.request_line = b""  # set by the channel with the headers
        self.route_name = ""  # set by the gate, for metrics

    @property
    def gate(self) -> Any:
        """The gate of the listener this request came in on (``None``: none)."""
        return getattr(getattr(self.channel, "site", None), "gate", None)

    def gotLength(self, length: int | None) -> None:
        head = self._streamed_head(length)
        if head is None:
            super().gotLength(length)
            return
        self._streaming = True
        channel: Any = self.channel
        self.content = self._body_pipe(channel.transport, channel.site.reactor)
        # Dispatched on the next turn, so "100 Continue" goes out before any answer.
        channel.site.reactor.callLater(0, self._dispatch, *head)

    @property
    def streaming(self) -> bool:
        """Whether the route reads the body while it arrives (known once its length is)."""
        return self._streaming

    def streams_body(self) -> bool:
        """Whether the route reads the body while it arrives (from the request line)."""
        return self._streamed_head(None) is not None

    def _streamed_head(self, length: int | None) -> tuple[bytes, bytes, bytes] | None:
        """Method, URI and version of a request whose route streams its body."""
        head = _split_request_line(self.request_line)
        site = getattr(self.channel, "site", None)
        if (length == 0 or head is None or not isinstance(site, ApiSite)
                or not site.streams_body(head[0], head[1].split(b"?", 1)[0])):
            return None
        return head

    def _body_pipe(self, transport: Any, reactor: Any) -> BodyPipe:
        """A pipe that pauses ``transport`` while the reader is behind; the transport
        reads in large blocks meanwhile (fewer, cheaper reads of a big upload)."""
        self._read_size = getattr(transport, "bufferSize", None)
        if self._read_size is not None:
            transport.bufferSize = _STREAMED_READ_SIZE

        def resume() -> None:
            if self.channel is not None:
                transport.resumeProducing()

        return BodyPipe(transport.pauseProducing, resume, reactor.callFromThread)

    def _dispatch(self, method: bytes, uri: bytes, version: bytes) -> None:
        """What ``requestReceived`` does, before the body: the route reads it."""
        if self.channel is None:
            return  # gone before its turn came
        self.take_line(method, uri, version)
        self.process()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._streaming:
            super().requestReceived(command, path, version)
            return
        self.content.end()
        if self._read_size is not None and self.channel is not None:
            self.channel.transport.bufferSize = self._read_size  # type: ignore[union-attr]
        if self._finish_waiting:
            self._finish_waiting = False
            super().finish()

    def connectionLost(self, reason: Failure) -> None:
        if self._streaming and self.content is not None:
            self.content.fail(BodyLost("the connection closed before the request body "
                                       "was complete"))
        if self.hijacked and self.channel is not None:  # the stream's end: the channel
            _count_stream(self.channel, -1)               # has not seen it
        super().connectionLost(reason)

    def mark_hijacked(self, code: int) -> None:
        """The connection now carries raw bytes: never write HTTP on it again."""
        self.hijacked = True
        self.code = code
        self.startedWriting = True
        if self.channel is not None and self.channel.factory is not None:
            self.channel.factory.log(self)
            _count_stream(self.channel, 1)

    def write(self, data: bytes) -> None:
        if not self.hijacked:
            super().write(data)

    def finish(self) -> None:
        if self.hijacked:
            self.finished = True
            return
        if self._streaming and not self.content.ended:  # the rest of the body is
            self._finish_waiting = True                  # read, then dropped
            self.content.discard()
            return
        super().finish()


def _split_request_line(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    """``GET /path HTTP/1.1`` as its three parts (``None`` for anything else: the
    channel has answered 400 to it already)."""
    parts = line.split(b" ")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def _metered_listener(channel: Any) -> str | None:
    """The listener of ``channel`` when its site counts connections."""
    site: Any = getattr(channel, "site", None)
    return site.listener if getattr(site, "metered", False) else None


def _count_stream(channel: Any, delta: int) -> None:
    """A hijacked stream begins (1) or ends (-1); the connection ends with it."""
    listener = _metered_listener(channel)
    if listener is not None:
        labels = (listener,)
        meters.adjust(meters.HIJACKED_STREAMS, delta, labels)
        if delta < 0:
            meters.adjust(meters.OPEN_CONNECTIONS, delta, labels)


class ApiChannel(LimitedChannel):
    """The daemon's HTTP/1.1 connection (:mod:`dockertw.api.channel`), which gives
    each request its request line with its headers, and keeps to its site's limits
    (:mod:`dockertw.api.limits`).  ``identity`` is the peer's, once the gate has
    worked it out.
    """

    identity: Any = None

    def connectionMade(self) -> None:
        super().connectionMade()
        if (listener := _metered_listener(self)) is not None:
            meters.adjust(meters.OPEN_CONNECTIONS, 1, (listener,))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if (listener := _metered_listener(self)) is not None:
            meters.adjust(meters.OPEN_CONNECTIONS, -1, (listener,))


class ApiSite(server.Site):
    """A site named after its listener; logs listener, method, path, status, duration.

    ``gate`` (if any) sees every routed request first (:mod:`dockertw.api.gate`);
    ``metered`` sites count connections, hijacked streams and requests.  The access
    log is written in batches, off the requests' path: the lines of the requests
    finished within :data:`LOG_EVERY` seconds go out as one log event (and at once
    when the last port closes).
    """

    protocol = ApiChannel  # type: ignore[assignment]
    requestFactory = ApiRequest  # type: ignore[assignment]
    server_header = server.version  # the requests' Server until the router sets it
    limits: ConnectionLimits = DEFAULT_LIMITS
    noisy = False
    _log = Logger()

    def __init__(self, resource: IResource, listener: str,
                 on_stop: Callable[[], None] | None = None, gate: Any = None,
                 metered: bool = False) -> None:
        super().__init__(resource)
        self.listener = listener
        self.on_stop = on_stop
        self.gate = gate
        self.metered = metered
        self._lines: list[str] = []
        self._flushing: Any = None

    def streams_body(self, method: bytes, path: bytes) -> bool:
        """Whether the route of ``method`` ``path`` reads its body while it arrives."""
        wants = getattr(self.resource, "streams_body", None)
        return bool(wants is not None and wants(method, path))

    def stopFactory(self) -> None:
        """The last port serving this site closed; tell whoever watches the listener."""
        self._flush()
        super().stopFactory()
        if self.on_stop is not None:
            self.on_stop()

    def log(self, request: ApiRequest) -> None:  # type: ignore[override]
        # Formatted here, once: letting the logger format the fields costs twice as much.
        elapsed_ms = (time.monotonic() - request.arrived) * 1000.0
        method = request.method.decode("ascii", "replace")
        path = request.uri.decode("utf-8", "replace")
        if not self._lines:
            self._flushing = self.reactor.callLater(LOG_EVERY, self._flush)
        self._lines.append(f"{self.listener} {method} {path} {request.code} "
                           f"{elapsed_ms:.1f}ms")
        if self.metered:
            self._measure(request, method, elapsed_ms / 1000.0)

    def _flush(self) -> None:
        if self._flushing is not None and self._flushing.active():
            self._flushing.cancel()
        self._flushing = None
        lines, self._lines = self._lines, []
        if lines:
            self._log.info("{line}", line="\n".join(lines))

    def _measure(self, request: ApiRequest, method: str, seconds: float) -> None:
        route = request.route_name or "none"
        meters.count(meters.HTTP_REQUESTS, (self.listener, route, method, str(request.code)))
        meters.observe(meters.HTTP_SECONDS, seconds, (self.listener, route))

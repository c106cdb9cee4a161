"""Server side of a hijacked connection (attach, exec start), as Docker does it.

Every listener half-closes: a client's end of input (a FIN, or over TLS a close_notify,
see :mod:`dockertw.tlshalfclose`) ends only the reading side; the output goes on.

The handler answers with its own status line and headers (``101 UPGRADED`` with
``Upgrade: tcp``, or a bare ``200``), then the connection carries raw bytes both ways:
the HTTP channel is taken off the transport and a :class:`RawStream` put in its place.
Bytes the channel had already read past the request are handed over first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["RawStream", "hijack", "upgrade_head", "error_head"]


def upgrade_head(content_type: bytes, upgrade: bool,
                 extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """``101 UPGRADED`` (client asked to upgrade) or ``200 OK``, as Docker writes them."""
    if upgrade:
        lines = [b"HTTP/1.1 101 UPGRADED", b"Content-Type: " + content_type,
                 b"Connection: Upgrade", b"Upgrade: tcp"]
    else:
        lines = [b"HTTP/1.1 200 OK", b"Content-Type: " + content_type]
    lines += [name + b": " + value for name, value in extra]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def error_head(status: int, reason: bytes, message: str) -> bytes:
    """An error found after hijacking, written raw before closing (as Docker does)."""
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
            % (status, reason)) + message.encode() + b"\r\n"


@implementer(IHalfCloseableProtocol)
class RawStream(Protocol):
    """The connection after the hijack: set the callbacks, then :meth:`start` it."""

    def __init__(self, request: Any, channel: Any) -> None:
        self._request = request
        self._channel = channel
        self._pending = b""
        self._started = False
        self.on_data: Callable[[bytes], None] = lambda data: None
        self.on_eof: Callable[[], None] = lambda: None
        self.on_lost: Callable[[Failure], None] = lambda reason: None

    def start(self) -> None:
        """Begin delivering input, beginning with what the HTTP channel had read.

        The channel may still be parsing the bytes that followed the request when the
        handler runs, so they are collected on the next turn of the reactor.
        """
        from twisted.internet import reactor

        reactor.callLater(0, self._deliver_early)

    def _deliver_early(self) -> None:
        early = self._channel.take_buffered()  # read past the request
        self._started = True
        data, self._pending = early + self._pending, b""
        if data:
            self.on_data(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def close_write(self) -> None:
        """Half-close: the client reads end of stream and may go on writing."""
        closer = getattr(self.transport, "loseWriteConnection", None)
        if closer is not None:
            closer()
        elif self.transport is not None:
            self.transport.loseConnection()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def pause(self) -> None:
        """Stop reading the client (its writes then back up to it)."""
        pause = getattr(self.transport, "pauseProducing", None)
        if pause is not None:
            pause()

    def resume(self) -> None:
        resume = getattr(self.transport, "resumeProducing", None)
        if resume is not None:
            resume()

    def dataReceived(self, data: bytes) -> None:
        if self._started:
            self.on_data(data)
        else:
            self._pending += data

    def readConnectionLost(self) -> None:
        self.on_eof()

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.on_lost(reason)
        self._request.connectionLost(reason)


def hijack(request: Any, head: bytes) -> RawStream:
    """Take ``request``'s connection: write ``head`` and return the raw stream.

    ``request`` must be a :class:`dockertw.api.site.ApiRequest` (it stops writing HTTP
    once hijacked).
    """
    channel = request.channel
    transport = channel.transport
    channel.setTimeout(None)
    transport.unregisterProducer()
    stream = RawStream(request, channel)
    stream.transport = transport
    if hasattr(transport, "wrappedProtocol"):  # TLS: the channel sits inside the wrapper
        transport.wrappedProtocol = stream
    else:
        transport.protocol = stream
    request.mark_hijacked(101 if b" 101 " in head.split(b"\r\n", 1)[0] else 200)
    transport.write(head)
    transport.resumeProducing()
    return stream

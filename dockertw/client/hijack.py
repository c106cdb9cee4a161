"""Client side of a hijacked connection (attach, exec start).

The request goes out on a fresh raw connection with ``Connection: Upgrade`` and
``Upgrade: tcp``; a ``101`` answer turns the connection into two raw byte streams.
Any other status fails with Docker's ``unable to upgrade to tcp, received N``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw.streams.stdcopy import Chunk, StdcopyDecoder, Stream

__all__ = ["HijackedStream", "UpgradeFailed", "hijack", "build_upgrade_request"]

_END = object()
_MAX_HEAD = 64 * 1024


class UpgradeFailed(Exception):
    """The daemon answered the upgrade request with something other than 101."""

    def __init__(self, status: int, body: bytes = b"") -> None:
        super().__init__(f"unable to upgrade to tcp, received {status}")
        self.status = status
        self.body = body


def build_upgrade_request(method: str, target: str, host: str,
                          headers: Mapping[str, str], body: bytes) -> bytes:
    """The request bytes: the caller's headers plus the upgrade and a body length."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += [f"Content-Length: {len(body)}", "Connection: Upgrade", "Upgrade: tcp"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@implementer(IHalfCloseableProtocol)
class _HijackProtocol(Protocol):
    def __init__(self, request: bytes) -> None:
        self._request = request
        self._head = b""
        self.upgraded: Deferred[None] = Deferred()
        self.output: DeferredQueue[Any] = DeferredQueue()

    @property
    def stream(self) -> ITCPTransport:
        """The connection, once made (TCP, UNIX and TLS transports can all half-close)."""
        assert self.transport is not None
        return cast(ITCPTransport, self.transport)

    def connectionMade(self) -> None:
        self.stream.write(self._request)

    def dataReceived(self, data: bytes) -> None:
        if self.upgraded.called:
            self.output.put(data)
            return
        self._head += data
        head, found, rest = self._head.partition(b"\r\n\r\n")
        if not found:
            if len(self._head) > _MAX_HEAD:
                self._fail(UpgradeFailed(0, b"response head too long"))
            return
        status = _status_of(head)
        if status != 101:
            self._fail(UpgradeFailed(status, rest))
            return
        self.upgraded.callback(None)
        if rest:
            self.output.put(rest)

    def _fail(self, error: Exception) -> None:
        self.upgraded.errback(error)
        self.stream.loseConnection()

    def readConnectionLost(self) -> None:
        if not self.upgraded.called:
            self._fail(ConnectionDone("the daemon closed the connection before the upgrade"))
            return
        self.output.put(_END)

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.upgraded.called:
            self.upgraded.errback(reason)
        self.output.put(_END)


def _status_of(head: bytes) -> int:
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 0


class HijackedStream:
    """Raw stdin out, output in; ``tty=False`` output is demultiplexed."""

    def __init__(self, protocol: _HijackProtocol, tty: bool) -> None:
        self._protocol = protocol
        self._tty = tty

    def write(self, data: bytes) -> None:
        self._protocol.stream.write(data)

    def close_write(self) -> None:
        """Half-close: the daemon sees end of input; output keeps flowing."""
        self._protocol.stream.loseWriteConnection()

    def close(self) -> None:
        self._protocol.stream.loseConnection()

    async def raw(self) -> AsyncIterator[bytes]:
        """Output bytes until the daemon closes its side."""
        while True:
            item = await self._protocol.output.get()
            if item is _END:
                return
            yield item

    async def chunks(self) -> AsyncIterator[Chunk]:
        """Output as stdout/stderr chunks."""
        decoder = None if self._tty else StdcopyDecoder()
        async for data in self.raw():
            if decoder is None:
                yield Chunk(Stream.STDOUT, data)
            else:
                for chunk in decoder.feed(data):
                    yield chunk

    async def read_all(self) -> tuple[bytes, bytes]:
        """All of stdout and stderr, once the stream ends."""
        out, err = bytearray(), bytearray()
        async for chunk in self.chunks():
            (err if chunk.stream == Stream.STDERR else out).extend(chunk.data)
        return bytes(out), bytes(err)


async def hijack(endpoint: IStreamClientEndpoint, request: bytes, tty: bool) -> HijackedStream:
    """Connect, send the upgrade request and wait for the 101."""
    protocol = _HijackProtocol(request)
    await endpoint.connect(Factory.forProtocol(lambda: protocol))
    await protocol.upgraded
    return HijackedStream(protocol, tty)

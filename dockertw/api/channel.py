"""The daemon's HTTP/1.1 server connection: parsing, framing, keep-alive, pipelining.

One :class:`HttpChannel` per connection reads requests one at a time and hands each
to a request object made by its site (``site.requestFactory``, a
:class:`~dockertw.api.request.LeanRequest`), which answers through it.  It does what
Twisted's ``HTTPChannel`` does for the daemon at a fraction of the cost: a request
head is parsed in one pass once it is whole (a line-by-line protocol costs a call
per header), and nothing is built that a request does not use.

* Request heads: ``METHOD target HTTP/1.x``, then ``name: value`` lines.  Heads over
  :data:`MAX_HEAD` bytes or :data:`MAX_HEADERS` lines, folded or malformed lines,
  both ``Content-Length`` and ``Transfer-Encoding`` (or conflicting lengths), and
  transfer codings other than ``chunked`` are refused with a bare 400 and the
  connection closed, as Twisted refuses them.
* Bodies: by ``Content-Length`` or chunked (extensions and trailers read and dropped),
  handed to the request as they arrive (``handleContentChunk``); ``Expect:
  100-continue`` is answered before the body is read.
* Requests after the one being answered (pipelining) wait, unread, in a buffer that
  is parsed once the answer is complete; a hijacked request takes that buffer as
  the first bytes of its raw stream (:meth:`take_buffered`).
* Keep-alive as Twisted decides it: HTTP/1.1 unless ``Connection: close`` (then the
  answer says ``Connection: close`` too); HTTP/1.0 closes after each answer.
* The connection is the transport's producer: while the client does not read, the
  request's producer is paused and no further request is read.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["HttpChannel", "RequestHeaders", "MAX_HEAD", "MAX_HEADERS", "BAD_REQUEST"]

MAX_HEAD = 16384  # bytes of a request head (Twisted's totalHeadersSize)
MAX_HEADERS = 500  # header lines of a request (Twisted's maxHeaders)
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\n\r\n"
_HOLD = 1 << 20  # bytes of pipelined input held while an answer is under way
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_VERSIONS = frozenset({b"HTTP/1.1", b"HTTP/1.0"})
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                   b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NOT_TOKEN = bytes(byte for byte in range(256) if byte not in _TOKEN)
_DIGITS = bytes(range(256)).translate(None, b"0123456789")
_HEX = bytes(range(256)).translate(None, b"0123456789abcdefABCDEF")
#: Every header line of a head (after its request line): a token, a colon, a value
#: with no CR, LF or NUL; checked in one pass, then split by _FIELD_PARTS.
_FIELDS = re.compile(rb"(?:\r\n[" + re.escape(bytes(sorted(_TOKEN))) + rb"]+:[^\r\n\0]*)*")
_FIELD_PARTS = re.compile(rb"\r\n([^:]+):([^\r]*)")


class BadRequest(Exception):
    """The client's bytes are not an acceptable HTTP/1.1 request."""


class RequestHeaders:
    """The part of ``twisted.web.http_headers.Headers`` that requests use: raw values
    by lower-case name."""

    def __init__(self, values: dict[bytes, list[bytes]] | None = None) -> None:
        self._values = values if values is not None else {}

    def getRawHeaders(self, name: bytes | str, default: Any = None) -> Any:  # noqa: N802
        key = name.lower() if isinstance(name, bytes) else name.lower().encode("latin-1")
        return self._values.get(key, default)

    def hasHeader(self, name: bytes | str) -> bool:  # noqa: N802
        return self.getRawHeaders(name) is not None

    def addRawHeader(self, name: bytes | str, value: bytes | str) -> None:  # noqa: N802
        key = name.lower() if isinstance(name, bytes) else name.lower().encode("latin-1")
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        self._values.setdefault(key, []).append(raw)

    def getAllRawHeaders(self) -> Any:  # noqa: N802
        return iter(self._values.items())


class _Head:
    """A parsed request head."""

    __slots__ = ("line", "method", "target", "version", "headers", "length", "chunked")

    def __init__(self, line: bytes, headers: dict[bytes, list[bytes]]) -> None:
        parts = line.split(b" ")
        if len(parts) != 3 or parts[2] not in _VERSIONS or not parts[0] or not parts[1] \
                or parts[0].translate(None, _NOT_TOKEN) != parts[0]:
            raise BadRequest(line)
        self.line = line
        self.method, self.target, self.version = parts
        self.headers = headers
        self.length, self.chunked = _framing(headers)


def _framing(headers: dict[bytes, list[bytes]]) -> tuple[int | None, bool]:
    """The body's length (``None``: chunked), refusing what could be read two ways."""
    codings = headers.get(b"transfer-encoding")
    lengths = headers.get(b"content-length")
    if codings is not None:
        if lengths is not None or [c.strip().lower() for c in b",".join(codings)
                                   .split(b",")] != [b"chunked"]:
            raise BadRequest(b"transfer-encoding")
        return None, True
    if lengths is None:
        return 0, False
    values = {value.strip() for joined in lengths for value in joined.split(b",")}
    if len(values) != 1:
        raise BadRequest(b"content-length")
    value = values.pop()
    if not value or value.translate(None, _DIGITS) != value or len(value) > 18:
        raise BadRequest(b"content-length")
    return int(value), False


def _parse_head(head: bytes) -> _Head:
    """``head`` (without its final blank line) as a request line and headers."""
    end = head.find(b"\r\n")
    if end < 0:
        return _Head(head, {})
    if _FIELDS.fullmatch(head, end) is None:  # folded lines, spaces before the colon,
        raise BadRequest(b"malformed header")  # CR, LF or NUL in a value too
    if head.count(b"\r\n") > MAX_HEADERS:
        raise BadRequest(b"too many headers")
    headers: dict[bytes, list[bytes]] = {}
    for name, value in _FIELD_PARTS.findall(head, end):
        key = name.lower()
        found = headers.get(key)
        if found is None:
            headers[key] = [value.strip(b" \t")]
        else:
            found.append(value.strip(b" \t"))
    return _Head(head[:end], headers)


class _Chunks:
    """A chunked body's decoder: :meth:`feed` takes what it can use out of a buffer."""

    _SIZE, _DATA, _DATA_END, _TRAILERS = range(4)

    def __init__(self) -> None:
        self._state = self._SIZE
        self._left = 0  # data bytes left in the chunk

    def feed(self, buffer: bytearray) -> tuple[list[bytes], bool]:
        """The data taken out of ``buffer``, and whether the body is complete."""
        data: list[bytes] = []
        while True:
            if self._state == self._DATA:
                if not buffer:
                    return data, False
                take = min(self._left, len(buffer))
                data.append(bytes(buffer[:take]))
                del buffer[:take]
                self._left -= take
                if not self._left:
                    self._state = self._DATA_END
            elif self._state == self._DATA_END:
                if len(buffer) < 2:
                    return data, False
                if buffer[:2] != b"\r\n":
                    raise BadRequest(b"chunk end")
                del buffer[:2]
                self._state = self._SIZE
            else:
                line = _line(buffer)
                if line is None:
                    return data, False
                if self._state == self._TRAILERS:
                    if not line:
                        return data, True
                    continue
                size = line.split(b";", 1)[0].strip()
                if not size or size.translate(None, _HEX) != size or len(size) > 15:
                    raise BadRequest(b"chunk size")
                self._left = int(size, 16)
                self._state = self._DATA if self._left else self._TRAILERS


def _line(buffer: bytearray) -> bytes | None:
    """The next CRLF-ended line taken out of ``buffer`` (``None``: not whole yet)."""
    end = buffer.find(b"\r\n")
    if end < 0:
        if len(buffer) > 4096:
            raise BadRequest(b"line too long")
        return None
    line = bytes(buffer[:end])
    del buffer[:end + 2]
    return line


def _send_now(transport: Any, data: bytes) -> bytes:
    """Send what a socket takes of ``data`` at once, when the transport holds nothing
    to send before it (an answer then leaves without the reactor's round to find the
    socket writable); what is left is for the transport to send.  TLS and other
    wrappers (whose attributes may be their socket's) send it all themselves."""
    if not isinstance(transport, FileDescriptor):  # TLS, or another wrapper
        return data
    sock = getattr(transport, "socket", None)
    if (sock is None or not data or getattr(transport, "_tempDataBuffer", True)
            or getattr(transport, "dataBuffer", True) or getattr(transport, "_sendmsgQueue", None)
            or not transport.connected or transport.disconnecting
            or getattr(transport, "_writeDisconnected", True)
            or getattr(transport, "_aborting", True)):  # aborted: nothing more is sent
        return data
    try:
        sent = sock.send(data)
    except OSError:  # full, or broken: the transport finds out in its own time
        return data
    return data[sent:]


@implementer(IPushProducer)
class HttpChannel(Protocol):
    """One HTTP/1.1 connection; see the module's documentation."""

    site: Any = None  # set by the site that builds the channel
    requestFactory: Any = None  # noqa: N815 - the name Twisted's sites set

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._request: Any = None  # the request being read or answered
        self._head: _Head | None = None
        self._body_left = 0  # bytes of a Content-Length body still to read
        self._chunks: _Chunks | None = None
        self._reading_body = False
        self._persistent = True
        self._advancing = False
        self._reading_paused = False
        self._writes_paused = False
        self._producer: Any = None  # the request's
        self._closed = False

    # -- the connection ----------------------------------------------------------------

    def connectionMade(self) -> None:  # noqa: N802
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._closed:
            return
        self._buffer += data
        self._advance()

    def connectionLost(self, reason: Failure = connectionDone) -> None:  # noqa: N802
        self._closed = True
        request, self._request = self._request, None
        if request is not None:
            request.connectionLost(reason)

    def _advance(self) -> None:
        """Read requests from the buffer for as long as none is being answered."""
        if self._advancing:
            return
        self._advancing = True
        try:
            while not self._closed:
                if self._request is None:
                    if not self._begin_request():
                        break
                elif self._reading_body:
                    if not self._read_body():
                        break
                else:  # an answer is under way: later requests wait unread
                    if len(self._buffer) > _HOLD and not self._reading_paused:
                        self._pause_reading()
                    break
        except BadRequest:
            self._refuse()
        finally:
            self._advancing = False

    def _begin_request(self) -> bool:
        """Parse a whole head from the buffer and start its request; False when the
        head is not complete yet."""
        buffer = self._buffer
        while buffer[:2] == b"\r\n":  # empty lines before a request are ignored
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD:
                raise BadRequest(b"head too large")
            return False
        if end > MAX_HEAD:
            raise BadRequest(b"head too large")
        head = _parse_head(bytes(buffer[:end]))
        del buffer[:end + 4]
        self._start(head)
        return True

    def _start(self, head: _Head) -> None:
        request = self._request = self.requestFactory(self)
        request.requestHeaders = RequestHeaders(head.headers)
        request.request_line = head.line
        self._head = head
        self._persistent = self._keep_alive(head, request)
        if not self._admit(request, head.length):
            return
        request.gotLength(head.length)
        if self._request is not request:  # gone meanwhile
            return
        if head.version == b"HTTP/1.1" and head.length != 0 and \
                (head.headers.get(b"expect") or [b""])[0].lower() == b"100-continue":
            self.transport.write(_CONTINUE)  # type: ignore[union-attr]
        if head.length == 0:
            self._received()
            return
        self._reading_body = True
        self._body_left = head.length or 0
        self._chunks = _Chunks() if head.chunked else None
        self._awaiting_body(request, head.length)

    # Hooks for a channel that keeps to limits (dockertw.api.limits).

    def _admit(self, request: Any, length: int | None) -> bool:
        """Whether to read ``request``, whose head is in (``length``: its body's, or
        ``None`` for a chunked one); a refusal answers and ends the connection."""
        return True

    def _awaiting_body(self, request: Any, length: int | None) -> None:
        """The body of ``request`` is to be read now."""

    def _request_in(self, request: Any) -> None:
        """The whole of ``request`` is in; it answers now (if it has not begun)."""

    @staticmethod
    def _keep_alive(head: _Head, request: Any) -> bool:
        """Whether the connection stays open after the answer (as Twisted decides)."""
        if head.version != b"HTTP/1.1":
            return False
        connection = head.headers.get(b"connection")
        if connection and b"close" in [t.lower() for t in connection[0].split(b" ")]:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return True

    def _read_body(self) -> bool:
        """Hand the request what the buffer holds of its body; True once it is all in."""
        request, buffer = self._request, self._buffer
        if self._chunks is not None:
            pieces, done = self._chunks.feed(buffer)
            for piece in pieces:
                request.handleContentChunk(piece)
        else:
            take = min(self._body_left, len(buffer))
            if take:
                piece = bytes(buffer[:take])
                del buffer[:take]
                self._body_left -= take
                request.handleContentChunk(piece)
            done = self._body_left == 0
        if not done or self._request is not request or self._closed:
            return False
        self._reading_body = False
        self._received()
        return True

    def _received(self) -> None:
        """The whole request is in: let it answer (a streaming one may have begun)."""
        head = self._head
        assert head is not None
        self._request_in(self._request)
        self._request.requestReceived(head.method, head.target, head.version)

    def _refuse(self) -> None:
        """A bare 400, as Twisted answers what it cannot parse, and the end."""
        if self._request is not None and getattr(self._request, "startedWriting", False):
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self.transport.write(BAD_REQUEST)  # type: ignore[union-attr]
        self.loseConnection()

    # -- what requests call ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        rest = _send_now(self.transport, data)
        if rest:
            self.transport.write(rest)  # type: ignore[union-attr]

    def writeSequence(self, data: list[bytes]) -> None:  # noqa: N802
        self.write(b"".join(data))

    def requestDone(self, request: Any) -> None:  # noqa: N802
        """``request`` has answered: close, or read the next request."""
        if request is not self._request:
            return
        self._request = self._head = None
        if not self._persistent:
            self.loseConnection()
            return
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        self._advance()

    def take_buffered(self) -> bytes:
        """What arrived after the current request (a hijacked stream's first bytes)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def loseConnection(self) -> None:  # noqa: N802
        self._closed = True
        transport: Any = self.transport
        transport.unregisterProducer()
        transport.loseConnection()

    def getPeer(self) -> Any:  # noqa: N802
        return self.transport.getPeer()  # type: ignore[union-attr]

    def getHost(self) -> Any:  # noqa: N802
        return self.transport.getHost()  # type: ignore[union-attr]

    def isSecure(self) -> bool:  # noqa: N802
        return ISSLTransport(self.transport, None) is not None

    def setTimeout(self, seconds: float | None) -> None:  # noqa: N802
        """The idle timeout of Twisted's channel; this one has none to change."""

    def registerProducer(self, producer: Any, streaming: bool) -> None:  # noqa: N802
        """A request's producer: paused while the client does not read."""
        if self._producer is not None:
            raise RuntimeError(f"a producer is registered already: {self._producer}")
        if not streaming:
            raise RuntimeError("only push producers are supported")
        self._producer = producer
        if self._writes_paused:
            producer.pauseProducing()

    def unregisterProducer(self) -> None:  # noqa: N802
        self._producer = None

    # -- the transport's producer --------------------------------------------------------

    def pauseProducing(self) -> None:  # noqa: N802
        """The client does not read: pause the answer, read no further request."""
        self._writes_paused = True
        if self._producer is not None:
            self._producer.pauseProducing()
        if not self._reading_body and not self._reading_paused:
            self._pause_reading()

    def resumeProducing(self) -> None:  # noqa: N802
        self._writes_paused = False
        if self._producer is not None:
            self._producer.resumeProducing()
        if self._reading_paused and (self._request is None or self._reading_body):
            self._reading_paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def stopProducing(self) -> None:  # noqa: N802
        if self._producer is not None:
            self._producer.stopProducing()

    def _pause_reading(self) -> None:
        self._reading_paused = True
        self.transport.pauseProducing()  # type: ignore[union-attr]

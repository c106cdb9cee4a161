"""The request object of the daemon's HTTP/1.1 channel, lean where every request pays.

The channel (:mod:`dockertw.api.channel`) parses requests and hands each to a
request object.  twisted.web's ``server.Request`` would then cost more than the rest
of an API call: a resource traversal, response headers kept through the sanitising
``Headers`` API, a header block built anew for each answer.  :class:`LeanRequest`
keeps ``twisted.web.http.Request``'s contract with the channel and with handlers
(``setHeader``, ``write``, ``finish``, ``notifyFinish``, producers, ``HEAD`` and
chunked answers, ``defaultContentType``) and does the per-request work cheaply:

* the site's resource is rendered directly (the daemon's resource is a leaf);
* response headers are a small dictionary (:class:`ResponseHeaders`), written as one
  block with the status line, the header names' canonical forms computed once;
* the ``Date`` header is formatted once a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.server import NOT_DONE_YET

from dockertw.api.channel import RequestHeaders

__all__ = ["LeanRequest", "ResponseHeaders"]

_NO_BODY_CODES = frozenset(http.NO_BODY_CODES)
_NO_CONTENT_TYPE = frozenset({http.NOT_MODIFIED, http.NO_CONTENT})
_CANONICAL: dict[bytes, bytes] = {}
_to_chunk = http.toChunk
_format_date = http.datetimeToString


def _lower(name: bytes | str) -> bytes:
    return (name.encode("latin-1") if isinstance(name, str) else name).lower()


def _canonical(name: bytes) -> bytes:
    """``content-type`` -> ``Content-Type`` (as Go's and Twisted's capitalisation)."""
    found = _CANONICAL.get(name)
    if found is None:
        found = _CANONICAL[name] = b"-".join(part.capitalize() for part in name.split(b"-"))
    return found


def _safe(value: bytes | str) -> bytes:
    """A header value with no line break or NUL (as Twisted sanitises them)."""
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if b"\r" in raw or b"\n" in raw or b"\0" in raw:
        raw = raw.replace(b"\r\n", b" ").replace(b"\r", b" ").replace(b"\n", b" ") \
            .replace(b"\0", b" ")
    return raw


class ResponseHeaders:
    """The part of ``twisted.web.http_headers.Headers`` that responses use: raw
    values by lower-case name, in the order first set."""

    def __init__(self) -> None:
        self._values: dict[bytes, list[bytes]] = {}

    def setRawHeaders(self, name: bytes | str, values: Iterable[bytes | str]) -> None:  # noqa: N802
        self._values[_lower(name)] = [_safe(value) for value in values]

    def addRawHeader(self, name: bytes | str, value: bytes | str) -> None:  # noqa: N802
        self._values.setdefault(_lower(name), []).append(_safe(value))

    def getRawHeaders(self, name: bytes | str, default: Any = None) -> Any:  # noqa: N802
        return self._values.get(_lower(name), default)

    def hasHeader(self, name: bytes | str) -> bool:  # noqa: N802
        return _lower(name) in self._values

    def removeHeader(self, name: bytes | str) -> None:  # noqa: N802
        self._values.pop(_lower(name), None)

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, list[bytes]]]:  # noqa: N802
        return ((_canonical(name), values) for name, values in self._values.items())

    def set(self, name: bytes, value: bytes) -> None:
        """One value for a lower-case ``name`` (:meth:`block` sanitises it)."""
        self._values[name] = [value]

    def block(self) -> bytes:
        """The header lines, each ended by CRLF; values with a line break or a NUL
        (``setHeader`` takes them as they are) are sanitised here, once."""
        known = _CANONICAL
        parts: list[bytes] = []
        for name, values in self._values.items():
            title = known.get(name) or _canonical(name)
            for value in values:
                parts += (title, b": ", value, b"\r\n")
        block = b"".join(parts)
        lines = len(parts) >> 2
        if block.count(b"\n") != lines or block.count(b"\r") != lines or b"\0" in block:
            block = b"".join([_canonical(name) + b": " + _safe(value) + b"\r\n"
                              for name, values in self._values.items() for value in values])
        return block


class _Clock:
    """``Date`` values, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second, self._text = second, _format_date(second)
        return self._text


_DATE = _Clock()


class LeanRequest(http.Request):
    """A request rendered by its site's resource; see the module's documentation."""

    defaultContentType: bytes | None = b"text/html"  # as twisted.web.server.Request
    site: Any = None
    _log_failures = True

    def __init__(self, channel: Any, queued: Any = None) -> None:
        # http.Request.__init__, less the peer's and the host's addresses, asked of the
        # transport (a system call) only when wanted.
        self.notifications = []
        self.channel = channel
        self.requestHeaders: Any = RequestHeaders()  # the channel's, once parsed
        self.received_cookies = {}
        self.responseHeaders: Any = ResponseHeaders()
        self.cookies = []
        self.transport = channel.transport
        self.queued = False
        self._parsePOSTFormSubmission = True

    @property
    def client(self) -> Any:
        return self.channel.getPeer()

    @client.setter
    def client(self, address: Any) -> None:
        pass  # always the transport's

    @property
    def host(self) -> Any:
        return self.channel.getHost()

    @host.setter
    def host(self, address: Any) -> None:
        pass

    def setHeader(self, name: bytes | str, value: bytes | str) -> None:  # noqa: N802
        key = name.lower() if isinstance(name, bytes) else _lower(name)
        self.responseHeaders._values[key] = [
            value if isinstance(value, bytes) else value.encode("latin-1")]

    @property
    def prepath(self) -> list[bytes]:
        """The path segments traversed (twisted.web's; set only when traversing)."""
        return self.__dict__.setdefault("_prepath", [])

    @prepath.setter
    def prepath(self, segments: list[bytes]) -> None:
        self.__dict__["_prepath"] = segments

    @property
    def postpath(self) -> list[bytes]:
        """The path segments left to traverse, made from the path when first asked."""
        found = self.__dict__.get("_postpath")
        if found is None:
            found = self.__dict__["_postpath"] = [unquote_to_bytes(segment)
                                                  for segment in self.path[1:].split(b"/")]
        return found

    @postpath.setter
    def postpath(self, segments: list[bytes]) -> None:
        self.__dict__["_postpath"] = segments

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        """The whole request is in: answer it.  Unlike twisted.web, no arguments are
        read from a form body (the Docker API takes them from the query alone)."""
        self.content.seek(0)  # type: ignore[union-attr]
        self.take_line(command, path, version)
        self.process()

    def take_line(self, method: bytes, uri: bytes, version: bytes) -> None:
        """Note the request line: method, URI, version, path and query arguments."""
        self.method, self.uri, self.clientproto = method, uri, version
        self.path, _, query = uri.partition(b"?")
        self.args = http.parse_qs(query, 1) if query else {}

    def process(self) -> None:
        """Render the site's resource (found by twisted.web's traversal unless it is a
        leaf): bytes are the whole answer, ``NOT_DONE_YET`` means the resource finishes
        the request itself."""
        self.site = site = self.channel.site  # type: ignore[attr-defined]
        headers = self.responseHeaders
        headers.set(b"server", site.server_header)
        headers.set(b"date", _DATE.now())
        try:
            resource = site.resource
            if not getattr(resource, "isLeaf", False):
                resource = site.getResourceFor(self)
            body = resource.render(self)
        except Exception:
            self.processingFailed(Failure())
            return
        if body is NOT_DONE_YET:
            return
        if not isinstance(body, bytes):
            self.processingFailed(Failure(TypeError(
                f"the resource answered {type(body).__name__}, not bytes")))
            return
        if self.method != b"HEAD" or body:
            headers.set(b"content-length", b"%d" % len(body))
        self.write(b"" if self.method == b"HEAD" else body)
        self.finish()

    def processingFailed(self, reason: Failure) -> None:  # noqa: N802
        """A 500 for a failure no handler caught (the router catches theirs)."""
        self._log.failure("Rendering {uri} failed", failure=reason, uri=self.uri)
        if self.startedWriting:
            if not self.finished and not self._disconnected:
                self.finish()
            return
        body = b'{"message":"internal server error"}\n'
        self.setResponseCode(http.INTERNAL_SERVER_ERROR)
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()

    def write(self, data: bytes) -> None:
        if self.startedWriting:
            super().write(data)
            return
        if self.finished:
            raise RuntimeError("Request.write called after Request.finish")
        if self._disconnected:
            return
        self.startedWriting = 1
        head = self._head()
        if not self._has_body():
            self.channel.write(head)
            self.write = lambda data: None  # type: ignore[method-assign]
            return
        self.sentLength = len(data)
        if self.chunked and data:
            self.channel.write(head + b"".join(_to_chunk(data)))
        else:
            self.channel.write(head + data)

    def _has_body(self) -> bool:
        return self.method != b"HEAD" and self.code not in _NO_BODY_CODES

    def _head(self) -> bytes:
        """The status line and headers (Content-Type by default, chunked framing
        when the length is unknown, as twisted.web decides them)."""
        headers = self.responseHeaders
        values = headers._values
        if (self.code not in _NO_CONTENT_TYPE
                and b"content-type" not in values and self.defaultContentType is not None
                and values.get(b"content-length") != [b"0"]):
            headers.set(b"content-type", self.defaultContentType)
        if (self.clientproto == b"HTTP/1.1" and b"content-length" not in values
                and self._has_body()):
            headers.set(b"transfer-encoding", b"chunked")
            self.chunked = 1
        if self.cookies:
            headers.setRawHeaders(b"set-cookie", self.cookies)
        return (b"%s %d %s\r\n" % (self.clientproto, self.code, self.code_message)
                + headers.block() + b"\r\n")

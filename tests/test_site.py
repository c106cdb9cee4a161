"""The site's channel: each request learns its request line with its headers."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from dockertw.api.site import ApiChannel, ApiRequest, ApiSite


class _Heads(ApiRequest):
    """Records the request line as it stood when the body's length was known."""

    seen: list[bytes] = []

    def gotLength(self, length: int | None) -> None:
        self.seen.append(self.request_line)
        super().gotLength(length)


def _channel() -> tuple[ApiChannel, StringTransport]:
    site = ApiSite(Resource(), "test")
    site.reactor = MemoryReactorClock()  # type: ignore[assignment]
    site.requestFactory = _Heads  # type: ignore[assignment]
    channel: Any = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def test_the_site_builds_api_channels() -> None:
    channel, _ = _channel()
    assert isinstance(channel, ApiChannel)


def test_each_request_has_its_line_before_its_body_arrives() -> None:
    _Heads.seen = []
    channel, _ = _channel()
    channel.dataReceived(b"PUT /containers/c/archive?path=/ HTTP/1.1\r\n"
                         b"Host: x\r\nContent-Length: 5\r\n\r\n")
    assert _Heads.seen == [b"PUT /containers/c/archive?path=/ HTTP/1.1"]
    channel.dataReceived(b"12345GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined
    assert _Heads.seen[1:] == [b"GET /_ping HTTP/1.1"]


def test_a_malformed_request_line_is_still_refused_by_twisted() -> None:
    channel, transport = _channel()
    channel.dataReceived(b"NONSENSE\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ")

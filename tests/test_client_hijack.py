"""Client hijack against a loopback server that answers like Docker's attach/exec."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from dockertw.client.hijack import UpgradeFailed, build_upgrade_request, hijack
from dockertw.streams.stdcopy import Stream, encode_frame

UPGRADED = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")


@implementer(IHalfCloseableProtocol)
class _FakeDaemon(Protocol):
    """Reads the request head, answers, then frames every stdin byte back as stdout."""

    answer: Callable[[_FakeDaemon, bytes], None]

    def __init__(self) -> None:
        self.buffer = b""
        self.upgraded = False
        self.request = b""

    def dataReceived(self, data: bytes) -> None:
        if self.upgraded:
            self.transport.write(encode_frame(Stream.STDOUT, data))
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            self.request, _, rest = self.buffer.partition(b"\r\n\r\n")
            self.upgraded = True
            type(self).answer(self, rest)

    def readConnectionLost(self) -> None:
        self.transport.write(encode_frame(Stream.STDERR, b"stdin closed\n"))
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


async def _serve(answer: Callable[[_FakeDaemon, bytes], None]) -> tuple[object, list]:
    seen: list[_FakeDaemon] = []

    def build() -> _FakeDaemon:
        protocol = _FakeDaemon()
        seen.append(protocol)
        return protocol

    _FakeDaemon.answer = staticmethod(answer)  # type: ignore[assignment]
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Factory.forProtocol(build))
    return port, seen


def _upgrade_with_greeting(daemon: _FakeDaemon, rest: bytes) -> None:
    daemon.transport.write(UPGRADED + encode_frame(Stream.STDOUT, b"hello\n"))


def test_upgrade_request_bytes():
    request = build_upgrade_request("POST", "/v1.41/exec/abc/start", "api.moby.localhost",
                                    {"Content-Type": "application/json"}, b"{}\n")
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1.41/exec/abc/start HTTP/1.1"
    assert b"Host: api.moby.localhost" in lines
    assert b"Connection: Upgrade" in lines and b"Upgrade: tcp" in lines
    assert b"Content-Length: 3" in lines
    assert body == b"{}\n"


@pytest_twisted.ensureDeferred
async def test_bytes_after_the_101_arrive_first_then_stdin_echoes_and_half_close():
    port, seen = await _serve(_upgrade_with_greeting)
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        request = build_upgrade_request("POST", "/x", "h", {}, b"")
        stream = await hijack(endpoint, request, tty=False)
        stream.write(b"ping\n")
        stream.close_write()
        out, err = await stream.read_all()
        assert out == b"hello\nping\n"
        assert err == b"stdin closed\n"
        assert seen[0].request.startswith(b"POST /x HTTP/1.1")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_tty_streams_are_not_demultiplexed():
    def raw(daemon: _FakeDaemon, rest: bytes) -> None:
        daemon.transport.write(UPGRADED + b"tty-out\r\n")
        daemon.transport.loseConnection()

    port, _ = await _serve(raw)
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        stream = await hijack(endpoint, build_upgrade_request("POST", "/x", "h", {}, b""),
                              tty=True)
        assert await stream.read_all() == (b"tty-out\r\n", b"")
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_status_other_than_101_fails_like_docker():
    def refuse(daemon: _FakeDaemon, rest: bytes) -> None:
        daemon.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/"
                               b"vnd.docker.raw-stream\r\n\r\nNo such container: nope\r\n")
        daemon.transport.loseConnection()

    port, _ = await _serve(refuse)
    try:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        with pytest.raises(UpgradeFailed, match="unable to upgrade to tcp, received 404"):
            await hijack(endpoint, build_upgrade_request("POST", "/x", "h", {}, b""), False)
    finally:
        await port.stopListening()

"""TLS half-close (dockertw.tlshalfclose) between two real TLS endpoints on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
)
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw.tlshalfclose import HalfClosingTLS, HalfClosingTLSFactory, wrap_client_tls
from tests.certs import Authority

BIG = 4 * 1024 * 1024


class Peer(Protocol):
    """Records what it receives and when its connection ends; cannot half-close."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.events: list[str] = []
        self.reason: Failure | None = None
        self.made: Deferred[None] = Deferred()
        self.lost: Deferred[None] = Deferred()
        self.on_data: Callable[[Peer], None] = lambda peer: None

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.on_data(self)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.events.append("lost")
        self.reason = reason
        self.lost.callback(None)


@implementer(IHalfCloseableProtocol)
class HalfClosingPeer(Peer):
    def __init__(self) -> None:
        super().__init__()
        self.read_closed: Deferred[None] = Deferred()
        self.on_read_closed: Callable[[Peer], None] = lambda peer: None

    def readConnectionLost(self) -> None:
        self.events.append("read closed")
        self.read_closed.callback(None)
        self.on_read_closed(self)

    def writeConnectionLost(self) -> None:
        pass


@attrs.define
class Pair:
    server: Peer
    client: Peer

    async def ended(self) -> tuple[Failure | None, Failure | None]:
        """Both peers' reasons, once both connections are lost."""
        await self.server.lost.addTimeout(10, reactor)
        await self.client.lost.addTimeout(10, reactor)
        return self.server.reason, self.client.reason


@pytest.fixture
def certificates(workdir: Path) -> tuple[CertificateOptions, Certificate]:
    authority = Authority(workdir)
    issued = authority.issue("server", "localhost", server=True, hosts=("127.0.0.1",))
    server = PrivateCertificate.loadPEM(issued.key.read_bytes() + issued.cert.read_bytes())
    return server.options(), Certificate.loadPEM(authority.files.cert.read_bytes())


@pytest_twisted.async_yield_fixture
async def connect(certificates) -> AsyncIterator[Callable[..., Deferred[Pair]]]:
    """``connect(server_peer, client_peer, version=None)``: the two peers over TLS."""
    options, trust = certificates
    ports: list[IListeningPort] = []

    async def connect(server: Peer, client: Peer, version: TLSVersion | None = None) -> Pair:
        versions = {} if version is None else {"raiseMinimumTo": version,
                                               "lowerMaximumSecurityTo": version}
        served = Factory.forProtocol(lambda: server)
        port = reactor.listenTCP(0, HalfClosingTLSFactory(options, False, served),
                                 interface="127.0.0.1")
        ports.append(port)
        creator = optionsForClientTLS("127.0.0.1", trust, extraCertificateOptions=versions)
        endpoint = wrap_client_tls(creator,
                                   TCP4ClientEndpoint(reactor, "127.0.0.1",
                                                      port.getHost().port))
        assert await endpoint.connect(Factory.forProtocol(lambda: client)) is client
        await server.made
        return Pair(server, client)

    yield lambda *args, **kwargs: Deferred.fromCoroutine(connect(*args, **kwargs))
    for port in ports:
        await port.stopListening()


def _answer_after_eof(peer: Peer) -> None:
    peer.transport.write(b"x" * BIG)
    peer.transport.write(b"end")
    peer.transport.loseConnection()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("version, name", [(TLSVersion.TLSv1_2, "TLSv1.2"),
                                           (TLSVersion.TLSv1_3, "TLSv1.3")])
async def test_close_notify_ends_only_the_reading_side(connect, version, name):
    server, client = HalfClosingPeer(), Peer()
    spoken = []

    def answer(peer: Peer) -> None:
        spoken.append(peer.transport.getHandle().get_protocol_version_name())
        _answer_after_eof(peer)

    server.on_read_closed = answer
    pair = await connect(server, client, version)
    client.transport.write(b"input")
    client.transport.loseWriteConnection()
    server_reason, client_reason = await pair.ended()
    assert spoken == [name]
    assert server.received == b"input"
    assert server.events == ["read closed", "lost"]
    assert client.received == b"x" * BIG + b"end"
    assert client_reason.check(ConnectionDone) and server_reason.check(ConnectionDone)


@pytest_twisted.ensureDeferred
async def test_a_protocol_that_cannot_half_close_loses_the_connection(connect):
    server, client = Peer(), HalfClosingPeer()
    pair = await connect(server, client)
    client.transport.write(b"input")
    client.transport.loseWriteConnection()
    await pair.ended()
    assert (server.received, server.events) == (b"input", ["lost"])
    assert client.events == ["lost"]


@pytest_twisted.ensureDeferred
async def test_the_side_that_closes_writing_first_reads_on(connect):
    server, client = HalfClosingPeer(), HalfClosingPeer()

    def reply_and_close_writing(peer: Peer) -> None:
        if peer.received == b"ping":
            peer.transport.write(b"pong")
            peer.transport.loseWriteConnection()

    def write_more_then_close(peer: Peer) -> None:
        peer.transport.write(b" more")
        peer.transport.loseConnection()

    server.on_data = reply_and_close_writing
    client.on_read_closed = write_more_then_close
    pair = await connect(server, client)
    client.transport.write(b"ping")
    await pair.ended()
    assert (client.received, client.events) == (b"pong", ["read closed", "lost"])
    assert (server.received, server.events) == (b"ping more", ["lost"])


@pytest_twisted.ensureDeferred
async def test_writes_after_the_half_close_are_dropped(connect):
    server, client = HalfClosingPeer(), HalfClosingPeer()
    server.on_read_closed = _answer_after_eof
    pair = await connect(server, client)
    client.transport.write(b"input")
    while server.received != b"input":  # the handshake is done
        await deferLater(reactor, 0.01, lambda: None)
    client.transport.loseWriteConnection()
    client.transport.write(b" late")
    await pair.ended()
    assert server.received == b"input"
    assert client.received == b"x" * BIG + b"end"


@pytest_twisted.ensureDeferred
async def test_lose_connection_after_the_half_close_closes_at_once(connect):
    server, client = HalfClosingPeer(), HalfClosingPeer()
    pair = await connect(server, client)
    client.transport.loseWriteConnection()
    await server.read_closed.addTimeout(10, reactor)
    await deferLater(reactor, 0.05, lambda: None)
    assert client.events == []  # still open, reading
    client.transport.loseConnection()
    await pair.ended()
    assert server.events == ["read closed", "lost"]
    assert client.events == ["lost"]


@pytest_twisted.ensureDeferred
async def test_a_half_close_after_the_connection_is_lost_does_nothing(connect):
    server, client = HalfClosingPeer(), HalfClosingPeer()
    pair = await connect(server, client)
    client.transport.write(b"input")
    while server.received != b"input":  # the handshake is done
        await deferLater(reactor, 0.01, lambda: None)
    server.transport.abortConnection()
    await pair.ended()
    await deferLater(reactor, 0, lambda: None)
    client.transport.loseWriteConnection()


@pytest_twisted.ensureDeferred
async def test_twisted_keeps_the_connection_the_creator_made(connect):
    """The adapter relies on Twisted's TLS using the OpenSSL connection the creator
    made (see dockertw.tlshalfclose): this fails if that changes (and the tests above
    if it stops calling its ``recv``)."""
    server, client = HalfClosingPeer(), HalfClosingPeer()
    pair = await connect(server, client)
    for peer in (server, client):
        assert isinstance(peer.transport, HalfClosingTLS)
        handle = peer.transport.getHandle()
        assert type(handle).__name__ == "_HalfClosingConnection"
    client.transport.loseConnection()
    await pair.ended()


def test_old_style_context_factories_are_refused():
    class OldStyle:
        def getContext(self) -> None:
            return None

    with pytest.raises(TypeError, match="does not provide IOpenSSLServerConnectionCreator"):
        HalfClosingTLSFactory(OldStyle(), False, Factory.forProtocol(Protocol))

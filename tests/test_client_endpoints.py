"""SOCKS5 and CONNECT tunnel endpoints: against in-memory fakes, then real proxies.

The real proxies (tinyproxy, microsocks) run on free loopback ports and are always
stopped; every origin is an in-process Twisted server on 127.0.0.1 or ::1.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
import treq
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet import defer, error, reactor
from twisted.internet.address import HostnameAddress, IPv4Address, IPv6Address
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IOpenSSLContextFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from dockertw.client.endpoints import (
    ConnectTunnelEndpoint,
    ProxyAuthenticationFailed,
    ProxyError,
    ProxyProtocolError,
    ProxyRefused,
    ProxyTimeout,
    Socks5ClientEndpoint,
    SocksError,
    TunnelAuthenticationFailed,
    TunnelFailed,
)
from tests.certs import Authority
from tests.support import free_port

ALICE = base64.b64encode(b"alice:s3cret")
OK_V4 = bytes.fromhex("05 00 00 01 00000000 0000")
PROXY_ADDRESS = IPv4Address("TCP", "127.0.0.1", 1080)


# ---------------------------------------------------------------------------
# Helpers: a recording protocol and in-memory proxy connections.

class Recorder(Protocol):
    """Collects what arrives; ``lost`` fires with the reason on connectionLost."""

    def __init__(self) -> None:
        self.received = b""
        self.made = 0
        self.lost: defer.Deferred[None] = defer.Deferred()
        self.reason: Failure | None = None
        self.events: list[str] = []

    def connectionMade(self) -> None:
        self.made += 1
        self.events.append("made")

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.events.append("data")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.events.append("lost")
        self.reason = reason
        self.lost.callback(None)


@implementer(IHalfCloseableProtocol)
class HalfCloseRecorder(Recorder):
    close_on_eof = True

    def readConnectionLost(self) -> None:
        self.events.append("read-lost")
        if self.close_on_eof:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        self.events.append("write-lost")


class RecorderFactory(Factory):
    def __init__(self, protocol_class: type[Recorder] = Recorder) -> None:
        self.protocol_class = protocol_class
        self.built: list[Recorder] = []
        self.addresses: list[Any] = []
        self.starts = self.stops = 0

    def doStart(self) -> None:
        self.starts += 1

    def doStop(self) -> None:
        self.stops += 1

    def buildProtocol(self, addr: Any) -> Recorder:
        self.addresses.append(addr)
        protocol = self.protocol_class()
        self.built.append(protocol)
        return protocol


class HalfClosingTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__(peerAddress=PROXY_ADDRESS)
        self.write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


@implementer(IStreamClientEndpoint)
class FakeProxyEndpoint:
    """Connects at once to an in-memory transport; the test plays the proxy."""

    def __init__(self) -> None:
        self.transport = HalfClosingTransport()
        self.protocol: Protocol | None = None

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        factory.doStart()
        self.protocol = factory.buildProtocol(PROXY_ADDRESS)
        self.protocol.makeConnection(self.transport)
        return defer.succeed(self.protocol)

    def reply(self, data: bytes) -> bytes:
        """Send ``data`` as the proxy; return what the client wrote since last time."""
        written = self.transport.value()
        self.transport.clear()
        if data:
            self.protocol.dataReceived(data)
        return written


@implementer(IStreamClientEndpoint)
class PendingEndpoint:
    """Never connects; remembers whether it was cancelled."""

    def __init__(self) -> None:
        self.cancelled = False

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        def cancel(deferred: defer.Deferred[Any]) -> None:
            self.cancelled = True
        return defer.Deferred(cancel)


@implementer(IStreamClientEndpoint)
class RefusingEndpoint:
    def connect(self, factory: Any) -> defer.Deferred[Any]:
        return defer.fail(error.ConnectionRefusedError("proxy is down"))


def outcome(deferred: defer.Deferred[Any]) -> Any:
    """The result or Failure of an already-fired Deferred."""
    box: list[Any] = []
    deferred.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def socks_endpoint(fake: IStreamClientEndpoint, clock: Clock, **kwargs: Any) -> Any:
    return Socks5ClientEndpoint(fake, kwargs.pop("host", "localhost"),
                                kwargs.pop("port", 18080), reactor=clock, **kwargs)


# ---------------------------------------------------------------------------
# The endpoints with in-memory proxies.

def test_socks_hand_over_delivers_leftover_after_connection_made():
    fake, clock, factory = FakeProxyEndpoint(), Clock(), RecorderFactory()
    connected = socks_endpoint(fake, clock).connect(factory)
    assert fake.reply(b"\x05\x00") == b"\x05\x01\x00"
    assert not connected.called
    assert fake.reply(OK_V4 + b"banner") == bytes.fromhex("05 01 00 03 09") + b"localhost\x46\xa0"
    protocol = outcome(connected)
    assert protocol is factory.built[0]
    assert protocol.events == ["made", "data"]
    assert protocol.received == b"banner"
    assert protocol.transport is fake.transport
    assert factory.addresses == [HostnameAddress(b"localhost", 18080)]
    assert factory.starts == 1
    assert not clock.getDelayedCalls()


def test_data_and_connection_lost_are_relayed_after_hand_over():
    fake, factory = FakeProxyEndpoint(), RecorderFactory()
    connected = socks_endpoint(fake, Clock(), host="127.0.0.1").connect(factory)
    fake.reply(b"\x05\x00" + OK_V4)
    protocol = outcome(connected)
    fake.protocol.dataReceived(b"hello")
    protocol.transport.write(b"to the origin")
    assert fake.transport.value().endswith(b"to the origin")
    fake.protocol.connectionLost(Failure(error.ConnectionDone()))
    assert protocol.events == ["made", "data", "lost"]
    assert factory.addresses == [IPv4Address("TCP", "127.0.0.1", 18080)]


def test_connect_tunnel_hand_over():
    fake, factory = FakeProxyEndpoint(), RecorderFactory()
    endpoint = ConnectTunnelEndpoint(fake, "::1", 2376, b"Basic " + ALICE, reactor=Clock())
    connected = endpoint.connect(factory)
    assert fake.reply(b"HTTP/1.0 200 Connection established\r\n") == (
        b"CONNECT [::1]:2376 HTTP/1.1\r\nHost: [::1]:2376\r\n"
        b"Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n")
    assert not connected.called
    fake.reply(b"Proxy-agent: tinyproxy/1.11.1\r\n\r\n\x16\x03")
    protocol = outcome(connected)
    assert protocol.received == b"\x16\x03"
    assert factory.addresses == [IPv6Address("TCP", "::1", 2376)]


def test_handshake_timeout_closes_the_connection():
    fake, clock, factory = FakeProxyEndpoint(), Clock(), RecorderFactory()
    connected = socks_endpoint(fake, clock, timeout=5).connect(factory)
    fake.reply(b"\x05")
    clock.advance(4.9)
    assert not connected.called
    clock.advance(0.1)
    failure = outcome(connected)
    assert failure.check(ProxyTimeout, error.TimeoutError, ProxyError, error.ConnectError)
    assert "5 seconds" in str(failure.value)
    assert fake.transport.disconnected
    assert factory.built == []


def test_connect_timeout_default_is_sixty_seconds():
    fake, clock = FakeProxyEndpoint(), Clock()
    connected = ConnectTunnelEndpoint(fake, "h", 1, reactor=clock).connect(RecorderFactory())
    clock.advance(59)
    assert not connected.called
    clock.advance(1)
    assert outcome(connected).check(ProxyTimeout)


def test_proxy_closing_mid_handshake():
    fake, clock = FakeProxyEndpoint(), Clock()
    connected = socks_endpoint(fake, clock).connect(RecorderFactory())
    fake.reply(b"\x05\x00\x05")
    fake.protocol.connectionLost(Failure(error.ConnectionDone()))
    failure = outcome(connected)
    assert failure.check(ProxyProtocolError)
    assert "closed the connection during the handshake" in str(failure.value)
    assert not clock.getDelayedCalls()


def test_proxy_connection_failing_mid_handshake_says_why():
    fake = FakeProxyEndpoint()
    connected = ConnectTunnelEndpoint(fake, "h", 1, reactor=Clock()).connect(RecorderFactory())
    fake.protocol.connectionLost(Failure(error.ConnectionLost("reset by peer")))
    failure = outcome(connected)
    assert failure.check(ProxyProtocolError)
    assert str(failure.value).startswith(
        "proxy closed the connection before answering CONNECT to h:1: ")
    assert "reset by peer" in str(failure.value)
    assert isinstance(failure.value.__cause__, error.ConnectionLost)


def test_proxy_half_closing_mid_handshake_aborts():
    fake = FakeProxyEndpoint()
    connected = ConnectTunnelEndpoint(fake, "h", 1, reactor=Clock()).connect(RecorderFactory())
    fake.reply(b"HTTP/1.1 200")
    fake.protocol.readConnectionLost()
    assert outcome(connected).check(ProxyProtocolError)
    assert fake.transport.disconnected


@pytest.mark.parametrize(("answer", "kind", "status"), [
    (b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n", TunnelAuthenticationFailed, 407),
    (b"HTTP/1.1 500 Unable to connect\r\n\r\n", TunnelFailed, 500),
])
def test_connect_refusals_are_typed(answer, kind, status):
    fake = FakeProxyEndpoint()
    connected = ConnectTunnelEndpoint(fake, "h", 1, reactor=Clock()).connect(RecorderFactory())
    fake.reply(answer)
    failure = outcome(connected)
    assert failure.check(kind)
    assert failure.value.status == status
    assert isinstance(failure.value, ProxyRefused)
    assert isinstance(failure.value, ProxyAuthenticationFailed) == (status == 407)
    assert fake.transport.disconnected


def test_malformed_connect_answer():
    fake = FakeProxyEndpoint()
    connected = ConnectTunnelEndpoint(fake, "h", 1, reactor=Clock()).connect(RecorderFactory())
    fake.reply(b"SSH-2.0-OpenSSH\r\n\r\n")
    assert outcome(connected).check(ProxyProtocolError)


@pytest.mark.parametrize("rep", range(1, 9))
def test_socks_reply_codes_are_typed(rep):
    fake = FakeProxyEndpoint()
    connected = socks_endpoint(fake, Clock()).connect(RecorderFactory())
    fake.reply(bytes([5, 0, 5, rep]))
    failure = outcome(connected)
    assert failure.check(SocksError)
    assert failure.value.rep == rep
    assert fake.transport.disconnected


def test_socks_auth_failures_are_typed():
    fake = FakeProxyEndpoint()
    connected = socks_endpoint(fake, Clock(), username="alice", password="x").connect(
        RecorderFactory())
    assert fake.reply(b"\x05\x02") == b"\x05\x02\x00\x02"
    fake.reply(b"\x01\x01")
    failure = outcome(connected)
    assert failure.check(ProxyAuthenticationFailed)
    assert "rejected the username/password" in str(failure.value)


def test_cancel_during_handshake_aborts_quietly():
    fake, clock = FakeProxyEndpoint(), Clock()
    connected = socks_endpoint(fake, clock).connect(RecorderFactory())
    connected.cancel()
    assert outcome(connected).check(defer.CancelledError)
    assert fake.transport.disconnected
    assert not clock.getDelayedCalls()
    fake.protocol.connectionLost(Failure(error.ConnectionAborted()))


def test_cancel_before_the_proxy_is_connected():
    pending = PendingEndpoint()
    connected = socks_endpoint(pending, Clock()).connect(RecorderFactory())
    connected.cancel()
    assert pending.cancelled
    assert outcome(connected).check(defer.CancelledError)


def test_proxy_connection_failure_is_passed_through():
    connected = socks_endpoint(RefusingEndpoint(), Clock()).connect(RecorderFactory())
    assert outcome(connected).check(error.ConnectionRefusedError)


def test_factory_returning_none():
    fake = FakeProxyEndpoint()
    factory = RecorderFactory()
    factory.buildProtocol = lambda addr: None  # type: ignore[assignment]
    connected = socks_endpoint(fake, Clock()).connect(factory)
    fake.reply(b"\x05\x00" + OK_V4)
    assert outcome(connected).check(error.NoProtocol)
    assert fake.transport.disconnected


class PatientHalfCloseRecorder(HalfCloseRecorder):
    close_on_eof = False


def test_half_close_is_relayed_to_a_half_closeable_protocol():
    fake, factory = FakeProxyEndpoint(), RecorderFactory(PatientHalfCloseRecorder)
    connected = socks_endpoint(fake, Clock()).connect(factory)
    fake.reply(b"\x05\x00" + OK_V4)
    protocol = outcome(connected)
    protocol.transport.loseWriteConnection()
    assert fake.transport.write_closed
    fake.protocol.writeConnectionLost()
    fake.protocol.readConnectionLost()
    assert protocol.events == ["made", "write-lost", "read-lost"]
    assert not fake.transport.disconnecting


def test_eof_closes_for_a_protocol_without_half_close():
    fake, factory = FakeProxyEndpoint(), RecorderFactory()
    connected = socks_endpoint(fake, Clock()).connect(factory)
    fake.reply(b"\x05\x00" + OK_V4)
    fake.protocol.writeConnectionLost()
    fake.protocol.readConnectionLost()
    assert fake.transport.disconnecting and not fake.transport.disconnected
    assert outcome(connected).events == ["made"]


def test_tunnel_protocol_declares_half_close():
    fake = FakeProxyEndpoint()
    socks_endpoint(fake, Clock()).connect(RecorderFactory())
    assert IHalfCloseableProtocol.providedBy(fake.protocol)


@pytest.mark.parametrize("make", [
    lambda: Socks5ClientEndpoint(PendingEndpoint(), "", 80),
    lambda: Socks5ClientEndpoint(PendingEndpoint(), "h", 0),
    lambda: Socks5ClientEndpoint(PendingEndpoint(), "h", 80, password="pw"),
    lambda: ConnectTunnelEndpoint(PendingEndpoint(), "a b", 80),
    lambda: ConnectTunnelEndpoint(PendingEndpoint(), "h", 70000),
    lambda: ConnectTunnelEndpoint(PendingEndpoint(), "h", 80, b"Basic x\r\nX: y"),
])
def test_bad_arguments_fail_at_construction(make):
    with pytest.raises(ValueError):
        make()


# ---------------------------------------------------------------------------

# Origins: in-process Twisted servers on loopback.

class Greeter(Protocol):
    """Speaks first (a banner), then echoes; answers a half-close with ``bye``."""

    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.transport.write(b"hello from origin\n")

    def dataReceived(self, data: bytes) -> None:
        self.factory.received += data
        self.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.ended += 1


@implementer(IHalfCloseableProtocol)
class HalfCloseGreeter(Greeter):
    def readConnectionLost(self) -> None:
        self.factory.half_closed += 1
        self.transport.write(b"bye\n")
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class GreeterFactory(Factory):
    protocol = HalfCloseGreeter

    def __init__(self) -> None:
        self.connections = 0
        self.half_closed = 0
        self.ended = 0  # connections closed, by either side or a reset
        self.received = b""


class Hello(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.clients: list[str] = []

    def render_GET(self, request: Any) -> bytes:
        self.clients.append(f"{request.getClientAddress().host}:{request.getClientAddress().port}")
        request.setHeader(b"content-type", b"text/plain")
        return b"hello over " + (b"https" if request.isSecure() else b"http")


def _listen_as_localhost(factory: Any) -> list[Any]:
    """Listen on 127.0.0.1 and, on the same port, ::1: ``localhost`` names both in
    Debian's /etc/hosts, and a proxy that resolves it may try ::1 first."""
    for _ in range(5):
        ports = [reactor.listenTCP(0, factory, interface="127.0.0.1")]
        try:
            ports.append(reactor.listenTCP(ports[0].getHost().port, factory,
                                           interface="::1"))
        except error.CannotListenError:
            if socket.has_ipv6 and _ipv6_loopback():
                ports[0].stopListening()
                continue  # that port is taken on ::1: another try
        return ports
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def echo_origin() -> Iterator[tuple[GreeterFactory, int]]:
    factory = GreeterFactory()
    ports = _listen_as_localhost(factory)
    try:
        yield factory, ports[0].getHost().port
    finally:
        for port in ports:
            port.stopListening()


@pytest.fixture
def echo_origin_v6() -> Iterator[tuple[GreeterFactory, int]]:
    factory = GreeterFactory()
    try:
        port = reactor.listenTCP(0, factory, interface="::1")
    except error.CannotListenError:
        pytest.skip("no IPv6 loopback")
    try:
        yield factory, port.getHost().port
    finally:
        port.stopListening()


@pytest.fixture
def web_origin() -> Iterator[tuple[Hello, int]]:
    resource = Hello()
    ports = _listen_as_localhost(Site(resource))
    try:
        yield resource, ports[0].getHost().port
    finally:
        for port in ports:
            port.stopListening()


@implementer(IOpenSSLContextFactory)
@attrs.frozen
class ServerContext:
    """A TLS server context from PEM files (no deprecated pyOpenSSL objects involved)."""

    cert: Path
    key: Path

    def getContext(self) -> SSL.Context:
        context = SSL.Context(SSL.TLS_METHOD)
        context.use_certificate_chain_file(str(self.cert))
        context.use_privatekey_file(str(self.key))
        return context


@pytest.fixture
def tls_origin(config_dir) -> Iterator[tuple[Hello, int, Certificate]]:
    authority = Authority(config_dir)
    issued = authority.issue("origin", "127.0.0.1", server=True, hosts=("127.0.0.1", "localhost"))
    resource = Hello()
    port = reactor.listenSSL(0, Site(resource), ServerContext(issued.cert, issued.key),
                             interface="127.0.0.1")
    try:
        yield resource, port.getHost().port, Certificate.loadPEM(
            authority.files.cert.read_bytes())
    finally:
        port.stopListening()


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


class _OneEndpoint:
    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self.endpoint = endpoint

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:
        return self.endpoint


def http_client(endpoint: IStreamClientEndpoint, pool: HTTPConnectionPool) -> HTTPClient:
    return HTTPClient(Agent.usingEndpointFactory(reactor, _OneEndpoint(endpoint), pool=pool))


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await deferLater(reactor, 0.02, lambda: None)


async def lost(protocol: Recorder, timeout: float = 10.0) -> None:
    await protocol.lost.addTimeout(timeout, reactor)


async def converse(endpoint: IStreamClientEndpoint, factory: RecorderFactory | None = None,
                   ) -> Recorder:
    """Connect, read the banner, check an echo, close; return the protocol."""
    protocol = await endpoint.connect(factory or RecorderFactory())
    await wait_for(lambda: b"\n" in protocol.received)
    assert protocol.received == b"hello from origin\n"
    protocol.transport.write(b"ping\n")
    await wait_for(lambda: protocol.received.endswith(b"ping\n"))
    protocol.peer, protocol.host = protocol.transport.getPeer(), protocol.transport.getHost()
    protocol.transport.loseConnection()
    await lost(protocol)
    assert protocol.reason.check(error.ConnectionDone)
    return protocol


@pytest_twisted.ensureDeferred
async def test_socks5_to_ipv4_target(microsocks, echo_origin):
    origin, port = echo_origin
    protocol = await converse(Socks5ClientEndpoint(microsocks.endpoint(), "127.0.0.1", port))
    assert protocol.peer == IPv4Address("TCP", "127.0.0.1", microsocks.port)
    assert protocol.host.host == "127.0.0.1"
    assert origin.connections == 1


@pytest_twisted.ensureDeferred
async def test_socks5_to_a_name_resolved_by_the_proxy(microsocks, echo_origin):
    origin, port = echo_origin
    await converse(Socks5ClientEndpoint(microsocks.endpoint(), "localhost", port))
    assert origin.connections == 1


@pytest_twisted.ensureDeferred
async def test_socks5_to_ipv6_target(microsocks, echo_origin_v6):
    origin, port = echo_origin_v6
    await converse(Socks5ClientEndpoint(microsocks.endpoint(), "::1", port))
    assert origin.connections == 1


@pytest_twisted.ensureDeferred
async def test_socks5_with_username_and_password(microsocks_auth, echo_origin):
    origin, port = echo_origin
    await converse(Socks5ClientEndpoint(microsocks_auth.endpoint(), "127.0.0.1", port,
                                        username="alice", password="s3cret"))
    assert origin.connections == 1


@pytest_twisted.ensureDeferred
async def test_socks5_with_a_wrong_password(microsocks_auth, echo_origin):
    origin, port = echo_origin
    endpoint = Socks5ClientEndpoint(microsocks_auth.endpoint(), "127.0.0.1", port,
                                    username="alice", password="nope")
    with pytest.raises(ProxyAuthenticationFailed, match="rejected the username/password"):
        await endpoint.connect(RecorderFactory())
    assert origin.connections == 0


@pytest_twisted.ensureDeferred
async def test_socks5_without_credentials_to_an_auth_proxy(microsocks_auth, echo_origin):
    _, port = echo_origin
    endpoint = Socks5ClientEndpoint(microsocks_auth.endpoint(), "127.0.0.1", port)
    with pytest.raises(ProxyAuthenticationFailed, match="requires authentication"):
        await endpoint.connect(RecorderFactory())


@pytest_twisted.ensureDeferred
async def test_socks5_to_a_closed_port_is_connection_refused(microsocks):
    endpoint = Socks5ClientEndpoint(microsocks.endpoint(), "127.0.0.1", closed_port())
    with pytest.raises(SocksError, match="connection refused") as caught:
        await endpoint.connect(RecorderFactory())
    assert caught.value.rep == 5


@pytest_twisted.ensureDeferred
async def test_socks5_half_close_reaches_the_origin(microsocks, echo_origin):
    origin, port = echo_origin
    endpoint = Socks5ClientEndpoint(microsocks.endpoint(), "127.0.0.1", port)
    protocol = await endpoint.connect(RecorderFactory(HalfCloseRecorder))
    await wait_for(lambda: protocol.received == b"hello from origin\n")
    protocol.transport.write(b"last words\n")
    protocol.transport.loseWriteConnection()
    await lost(protocol)
    # microsocks closes both sides once the client half-closes, so "bye" never comes
    # back, and the origin sees the end as a FIN, or as a reset when the echo of the
    # last words reached microsocks before it closed: either way the end came from
    # the client's half-close, after its last words.
    await wait_for(lambda: origin.ended == 1)
    assert origin.received == b"last words\n"
    assert protocol.received.startswith(b"hello from origin\n")
    ending = protocol.events[protocol.events.index("write-lost"):]
    assert ending in (["write-lost", "read-lost", "lost"], ["write-lost", "lost"])


@pytest_twisted.ensureDeferred
async def test_socks5_http_through_agent(microsocks, web_origin):
    resource, port = web_origin
    pool = HTTPConnectionPool(reactor, persistent=True)
    client = http_client(Socks5ClientEndpoint(microsocks.endpoint(), "localhost", port), pool)
    try:
        for _ in range(2):
            response = await client.get(f"http://localhost:{port}/")
            assert response.code == 200
            assert await treq.content(response) == b"hello over http"
    finally:
        await pool.closeCachedConnections()
    assert len(set(resource.clients)) == 1  # one tunnel, reused


@pytest_twisted.ensureDeferred
async def test_socks5_https_through_wrap_client_tls(microsocks, tls_origin):
    resource, port, ca = tls_origin
    tunnel = Socks5ClientEndpoint(microsocks.endpoint(), "127.0.0.1", port)
    endpoint = wrapClientTLS(optionsForClientTLS("127.0.0.1", trustRoot=ca), tunnel)
    pool = HTTPConnectionPool(reactor, persistent=False)
    response = await http_client(endpoint, pool).get(f"https://127.0.0.1:{port}/")
    assert await treq.content(response) == b"hello over https"


@pytest_twisted.ensureDeferred
async def test_connect_to_a_plain_origin(tinyproxy, echo_origin):
    origin, port = echo_origin
    protocol = await converse(ConnectTunnelEndpoint(tinyproxy.endpoint(), "127.0.0.1", port))
    assert protocol.peer == IPv4Address("TCP", "127.0.0.1", tinyproxy.port)
    assert origin.connections == 1


@pytest_twisted.ensureDeferred
async def test_connect_to_an_ipv6_target(tinyproxy, echo_origin_v6):
    origin, port = echo_origin_v6
    await converse(ConnectTunnelEndpoint(tinyproxy.endpoint(), "::1", port))
    assert origin.connections == 1


@pytest_twisted.ensureDeferred
async def test_connect_http_through_agent(tinyproxy, web_origin):
    _, port = web_origin
    pool = HTTPConnectionPool(reactor, persistent=False)
    client = http_client(ConnectTunnelEndpoint(tinyproxy.endpoint(), "localhost", port), pool)
    response = await client.get(f"http://localhost:{port}/")
    assert await treq.content(response) == b"hello over http"


@pytest_twisted.ensureDeferred
async def test_connect_with_tls_to_a_tls_origin(tinyproxy, tls_origin):
    resource, port, ca = tls_origin
    tunnel = ConnectTunnelEndpoint(tinyproxy.endpoint(), "127.0.0.1", port)
    endpoint = wrapClientTLS(optionsForClientTLS("127.0.0.1", trustRoot=ca), tunnel)
    pool = HTTPConnectionPool(reactor, persistent=True)
    client = http_client(endpoint, pool)
    try:
        for _ in range(2):
            response = await client.get(f"https://127.0.0.1:{port}/")
            assert response.code == 200
            assert await treq.content(response) == b"hello over https"
    finally:
        await pool.closeCachedConnections()
    assert len(set(resource.clients)) == 1


@pytest_twisted.ensureDeferred
async def test_connect_with_tls_checks_the_origin_certificate(tinyproxy, tls_origin):
    _, port, ca = tls_origin
    tunnel = ConnectTunnelEndpoint(tinyproxy.endpoint(), "127.0.0.1", port)
    endpoint = wrapClientTLS(optionsForClientTLS("daemon.wrong", trustRoot=ca), tunnel)
    pool = HTTPConnectionPool(reactor, persistent=False)
    with pytest.raises(ResponseNeverReceived):
        await http_client(endpoint, pool).get(f"https://daemon.wrong:{port}/")


@pytest_twisted.ensureDeferred
async def test_connect_to_a_closed_port_is_500(tinyproxy):
    endpoint = ConnectTunnelEndpoint(tinyproxy.endpoint(), "127.0.0.1", closed_port())
    with pytest.raises(TunnelFailed) as caught:
        await endpoint.connect(RecorderFactory())
    assert caught.value.status == 500
    assert "500" in str(caught.value)


@pytest_twisted.ensureDeferred
async def test_connect_needs_credentials(tinyproxy_auth, echo_origin):
    origin, port = echo_origin
    endpoint = ConnectTunnelEndpoint(tinyproxy_auth.endpoint(), "127.0.0.1", port)
    with pytest.raises(TunnelAuthenticationFailed) as caught:
        await endpoint.connect(RecorderFactory())
    assert caught.value.status == 407
    assert "407" in str(caught.value)
    assert origin.connections == 0


@pytest_twisted.ensureDeferred
async def test_connect_with_wrong_credentials(tinyproxy_auth, echo_origin):
    _, port = echo_origin
    wrong = b"Basic " + base64.b64encode(b"alice:nope")
    endpoint = ConnectTunnelEndpoint(tinyproxy_auth.endpoint(), "127.0.0.1", port, wrong)
    with pytest.raises(ProxyAuthenticationFailed):
        await endpoint.connect(RecorderFactory())


@pytest_twisted.ensureDeferred
async def test_connect_with_credentials(tinyproxy_auth, echo_origin):
    origin, port = echo_origin
    await converse(ConnectTunnelEndpoint(tinyproxy_auth.endpoint(), "127.0.0.1", port,
                                         b"Basic " + ALICE))
    assert origin.connections == 1


@pytest_twisted.ensureDeferred
async def test_silent_proxy_times_out_and_is_disconnected():
    server = Recorder()
    listening = reactor.listenTCP(0, Factory.forProtocol(lambda: server), interface="127.0.0.1")
    try:
        inner = TCP4ClientEndpoint(reactor, "127.0.0.1", listening.getHost().port)
        endpoint = ConnectTunnelEndpoint(inner, "127.0.0.1", 9, timeout=0.2)
        with pytest.raises(ProxyTimeout):
            await endpoint.connect(RecorderFactory())
        await lost(server)
        assert server.received.startswith(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n")
    finally:
        await listening.stopListening()


class Relay(Protocol):
    """One side of an in-process tunnel: what arrives is written to ``peer``."""

    peer: Protocol | None = None

    def dataReceived(self, data: bytes) -> None:
        self.peer.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.loseConnection()


class TinyConnectProxy(Relay):
    """A minimal CONNECT proxy for loopback targets (to serve it over TLS, as https://)."""

    head = b""

    def dataReceived(self, data: bytes) -> None:
        if self.peer is not None:
            return super().dataReceived(data)
        self.head += data
        if b"\r\n\r\n" in self.head:
            target = self.head.split(b" ")[1].decode()
            host, _, port = target.rpartition(":")
            assert host in ("127.0.0.1", "localhost")
            self.transport.pauseProducing()
            upstream = TCP4ClientEndpoint(reactor, "127.0.0.1", int(port))
            upstream.connect(Factory.forProtocol(Relay)).addCallback(self._joined)

    def _joined(self, upstream: Relay) -> None:
        self.peer, upstream.peer = upstream, self
        self.transport.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.transport.resumeProducing()


@pytest_twisted.ensureDeferred
async def test_tls_through_a_tls_speaking_proxy(config_dir, tls_origin):
    """https:// proxy: TLS to the proxy, CONNECT, then TLS to the origin inside it."""
    resource, port, ca = tls_origin
    authority = Authority(config_dir, "proxy CA")
    issued = authority.issue("proxy", "localhost", server=True, hosts=("localhost",))
    proxy_port = reactor.listenSSL(0, Factory.forProtocol(TinyConnectProxy),
                                   ServerContext(issued.cert, issued.key), interface="127.0.0.1")
    try:
        proxy_ca = Certificate.loadPEM(authority.files.cert.read_bytes())
        to_proxy = wrapClientTLS(
            optionsForClientTLS("localhost", trustRoot=proxy_ca),
            TCP4ClientEndpoint(reactor, "127.0.0.1", proxy_port.getHost().port))
        tunnel = ConnectTunnelEndpoint(to_proxy, "127.0.0.1", port)
        endpoint = wrapClientTLS(optionsForClientTLS("127.0.0.1", trustRoot=ca), tunnel)
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = await http_client(endpoint, pool).get(f"https://127.0.0.1:{port}/")
        assert await treq.content(response) == b"hello over https"
    finally:
        await proxy_port.stopListening()

"""Client endpoints that tunnel through a proxy: SOCKS5 and HTTP ``CONNECT``.

Each endpoint connects its inner (proxy) endpoint, runs the handshake with a sans-IO
codec from :mod:`dockertw.streams`, then gives the proxy connection's own transport to
the protocol built by the caller's factory, so ``wrapClientTLS(creator, endpoint)``
speaks TLS to the target through the tunnel.  As with Twisted's own endpoints, the
Deferred fires once that protocol's ``connectionMade`` has run; bytes that came right
after the proxy's answer are delivered next, before any later ones.  Half-close is
passed through when the underlying transport and the caller's protocol support it.

Failures are :class:`ProxyError` values (a ``ConnectError``); a failed or timed-out
handshake closes the proxy connection.  A failure to reach the proxy at all is the
inner endpoint's own error, unchanged.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol as TypingProtocol

from twisted.internet import error
from twisted.internet.address import HostnameAddress, IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    ITransport,
)
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw.streams import connect as _connect
from dockertw.streams import socks5 as _socks5

__all__ = [
    "ProxyError", "ProxyProtocolError", "ProxyTimeout", "ProxyRefused",
    "ProxyAuthenticationFailed", "TunnelFailed", "TunnelAuthenticationFailed", "SocksError",
    "Socks5ClientEndpoint", "ConnectTunnelEndpoint",
]


class ProxyError(error.ConnectError):
    """The tunnel through the proxy could not be set up."""

    def __init__(self, message: str) -> None:
        super().__init__(string=message)

    def __str__(self) -> str:
        return str(self.args[0])


class ProxyProtocolError(ProxyError):
    """The proxy answered something unexpected, or closed the connection mid-handshake."""


class ProxyTimeout(ProxyError, error.TimeoutError):
    """The proxy handshake did not finish in time."""


class ProxyRefused(ProxyError):
    """The proxy understood the request and would not open the tunnel."""


class ProxyAuthenticationFailed(ProxyRefused):
    """The proxy wants credentials, or rejected the ones given."""


class TunnelFailed(ProxyRefused):
    """The proxy answered CONNECT with a status other than 200."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class TunnelAuthenticationFailed(TunnelFailed, ProxyAuthenticationFailed):
    """The proxy answered CONNECT with 407 (or 401, as tinyproxy does for bad credentials)."""


class SocksError(ProxyRefused):
    """The SOCKS5 proxy answered CONNECT with a non-zero reply code ``rep``."""

    def __init__(self, rep: int, message: str | None = None) -> None:
        super().__init__(message or f"SOCKS5 proxy: {_socks5.reply_message(rep)}")
        self.rep = rep


class _Driver(TypingProtocol):
    """One handshake, with errors already translated to :class:`ProxyError`."""

    def start(self) -> bytes: ...

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """Bytes to write to the proxy, and the trailing tunnel bytes once established."""
        ...

    def closed(self) -> str:
        """What to say when the proxy closes the connection before the tunnel is open."""
        ...


def _from_socks(exc: _socks5.Socks5Error) -> ProxyError:
    if isinstance(exc, _socks5.Socks5ReplyError):
        return SocksError(exc.rep, str(exc))
    if isinstance(exc, _socks5.Socks5AuthError):
        return ProxyAuthenticationFailed(str(exc))
    return ProxyProtocolError(str(exc))


class _SocksDriver:
    def __init__(self, codec: _socks5.Socks5Client) -> None:
        self._codec = codec

    def start(self) -> bytes:
        return self._codec.start()

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        try:
            events = self._codec.receive_data(data)
        except _socks5.Socks5Error as exc:
            raise _from_socks(exc) from exc
        out = b"".join(event.data for event in events if isinstance(event, _socks5.SendData))
        done = [event for event in events if isinstance(event, _socks5.Established)]
        return out, (done[0].trailing if done else None)

    def closed(self) -> str:
        try:
            self._codec.receive_eof()
        except _socks5.Socks5Error as exc:
            return str(exc)
        return "SOCKS5 proxy connection closed"


# 407 is the standard answer; tinyproxy answers wrong credentials with 401 instead.
_AUTH_STATUSES = (401, 407)


def _from_connect(exc: _connect.ConnectTunnelError) -> ProxyError:
    if isinstance(exc, _connect.ConnectResponseError):
        kind = TunnelAuthenticationFailed if exc.status in _AUTH_STATUSES else TunnelFailed
        return kind(exc.status, exc.reason, str(exc))
    return ProxyProtocolError(str(exc))


class _ConnectDriver:
    def __init__(self, codec: _connect.ConnectClient) -> None:
        self._codec = codec

    def start(self) -> bytes:
        return self._codec.start()

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        try:
            established = self._codec.receive_data(data)
        except _connect.ConnectTunnelError as exc:
            raise _from_connect(exc) from exc
        return b"", (established.trailing if established is not None else None)

    def closed(self) -> str:
        try:
            self._codec.receive_eof()
        except _connect.ConnectTunnelError as exc:
            return str(exc)
        return "proxy connection closed"


def _target_address(host: str, port: int) -> IAddress:
    """The address given to the caller's ``buildProtocol``: the tunnel's far end."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        name = host.encode("ascii") if host.isascii() else host.encode("idna")
        return HostnameAddress(name, port)
    if isinstance(address, ipaddress.IPv6Address):
        return IPv6Address("TCP", str(address), port)
    return IPv4Address("TCP", str(address), port)


class _Attempt:
    """One ``connect()`` call: the caller's factory and the Deferred it is waiting on."""

    def __init__(self, driver: _Driver, factory: IProtocolFactory, address: IAddress,
                 timeout: float, clock: IReactorTime) -> None:
        self.driver = driver
        self.factory = factory
        self.address = address
        self.timeout = timeout
        self.clock = clock
        self.result: Deferred[IProtocol] = Deferred(self._cancel)
        self.owner: _TunnelProtocol | None = None
        self._inner: Deferred[IProtocol] | None = None

    def run(self, proxy_endpoint: IStreamClientEndpoint) -> Deferred[IProtocol]:
        inner = proxy_endpoint.connect(_TunnelFactory(self))
        self._inner = inner
        inner.addErrback(self.fail)
        return self.result

    def succeed(self, protocol: IProtocol) -> None:
        if not self.result.called:
            self.result.callback(protocol)

    def fail(self, reason: Failure | BaseException) -> None:
        if not self.result.called:
            self.result.errback(reason)

    def _cancel(self, result: Deferred[IProtocol]) -> None:
        if self.owner is not None:
            self.owner.abort()
        elif self._inner is not None:
            self._inner.cancel()


class _TunnelFactory(ClientFactory):
    def __init__(self, attempt: _Attempt) -> None:
        self.attempt = attempt

    def doStart(self) -> None:
        """Start and stop notices go to the caller's factory, as Twisted's endpoints do."""
        self.attempt.factory.doStart()

    def doStop(self) -> None:
        self.attempt.factory.doStop()

    def buildProtocol(self, addr: IAddress | None) -> _TunnelProtocol:
        return _TunnelProtocol(self.attempt)


@implementer(IHalfCloseableProtocol)
class _TunnelProtocol(Protocol):
    """Runs the handshake on the proxy connection, then relays to the caller's protocol."""

    def __init__(self, attempt: _Attempt) -> None:
        self._attempt = attempt
        self._wrapped: IProtocol | None = None
        self._timer: IDelayedCall | None = None
        self._done = False
        self._lost = False

    @property
    def _channel(self) -> ITransport:
        """The proxy connection's transport (there is one once connected)."""
        assert self.transport is not None
        return self.transport

    def _abort(self) -> None:
        channel = self._channel
        getattr(channel, "abortConnection", channel.loseConnection)()

    def logPrefix(self) -> str:
        wrapped = self._wrapped
        prefix = getattr(wrapped, "logPrefix", None)
        return str(prefix()) if callable(prefix) else type(wrapped or self).__name__

    def connectionMade(self) -> None:
        attempt = self._attempt
        if attempt.owner is not None or attempt.result.called:
            self._done = True
            self._abort()
            return
        attempt.owner = self
        self._timer = attempt.clock.callLater(attempt.timeout, self._timed_out)
        self._channel.write(attempt.driver.start())

    def dataReceived(self, data: bytes) -> None:
        if self._wrapped is not None:
            self._wrapped.dataReceived(data)
        elif not self._done:
            self._handshake(data)

    def _handshake(self, data: bytes) -> None:
        try:
            out, trailing = self._attempt.driver.feed(data)
        except ProxyError as exc:
            self._fail(exc)
            return
        if out:
            self._channel.write(out)
        if trailing is not None:
            self._hand_over(trailing)

    def _hand_over(self, trailing: bytes) -> None:
        self._finish()
        attempt = self._attempt
        try:
            protocol = attempt.factory.buildProtocol(attempt.address)
            if protocol is None:
                raise error.NoProtocol()
        except BaseException:
            self._fail(Failure())
            return
        self._wrapped = protocol
        try:
            protocol.makeConnection(self._channel)
        except BaseException:
            self._fail(Failure())
            return
        attempt.succeed(protocol)
        if trailing and not self._lost:
            protocol.dataReceived(trailing)

    def readConnectionLost(self) -> None:
        wrapped = self._wrapped
        if wrapped is None:
            self._fail(self._closed_error(None))
        elif IHalfCloseableProtocol.providedBy(wrapped):
            wrapped.readConnectionLost()
        else:
            self._channel.loseConnection()

    def writeConnectionLost(self) -> None:
        wrapped = self._wrapped
        if wrapped is not None and IHalfCloseableProtocol.providedBy(wrapped):
            wrapped.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        if self._wrapped is not None:
            self._wrapped.connectionLost(reason)
        elif not self._done:
            self._fail(self._closed_error(reason))

    def _closed_error(self, reason: Failure | None) -> ProxyProtocolError:
        message = self._attempt.driver.closed()
        if reason is None or reason.check(error.ConnectionDone):
            return ProxyProtocolError(message)
        problem = ProxyProtocolError(f"{message}: {reason.getErrorMessage()}")
        problem.__cause__ = reason.value
        return problem

    def abort(self) -> None:
        """Give up on the handshake (the caller cancelled): close without reporting."""
        if not self._done:
            self._finish()
            self._abort()

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(ProxyTimeout(
            f"proxy handshake did not finish within {self._attempt.timeout:g} seconds"))

    def _fail(self, reason: ProxyError | Failure) -> None:
        self._finish()
        if not self._lost:
            self._abort()
        self._attempt.fail(reason)

    def _finish(self) -> None:
        self._done = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _default_clock(reactor: IReactorTime | None) -> IReactorTime:
    if reactor is not None:
        return reactor
    from twisted.internet import reactor as global_reactor

    return global_reactor


@implementer(IStreamClientEndpoint)
class Socks5ClientEndpoint:
    """Connect to ``host:port`` through the SOCKS5 proxy reached by ``proxy_endpoint``.

    Names are resolved by the proxy.  Username/password (RFC 1929) is offered when a
    username is given (an empty one counts as none; str values are sent as UTF-8).
    ``timeout`` bounds the handshake once the proxy is connected.
    """

    def __init__(self, proxy_endpoint: IStreamClientEndpoint, host: str, port: int,
                 username: str | bytes | None = None, password: str | bytes | None = None,
                 timeout: float = 30, *, reactor: IReactorTime | None = None) -> None:
        self._proxy = proxy_endpoint
        self._host, self._port = host, port
        self._username, self._password = username, password
        self._timeout = timeout
        self._clock = _default_clock(reactor)
        self._target = self._codec().target  # arguments are checked now

    def _codec(self) -> _socks5.Socks5Client:
        return _socks5.Socks5Client(self._host, self._port, self._username, self._password)

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        attempt = _Attempt(_SocksDriver(self._codec()), protocolFactory,
                           _target_address(self._host, self._port), self._timeout,
                           self._clock)
        return attempt.run(self._proxy)

    def __repr__(self) -> str:
        return f"<Socks5ClientEndpoint {self._target} via {self._proxy!r}>"


@implementer(IStreamClientEndpoint)
class ConnectTunnelEndpoint:
    """Connect to ``host:port`` through an HTTP proxy's ``CONNECT`` method.

    ``proxy_authorization`` is the whole header value (``b"Basic …"``).  Only a 200
    answer opens the tunnel.  ``timeout`` bounds the exchange once the proxy is connected.
    """

    def __init__(self, proxy_endpoint: IStreamClientEndpoint, host: str, port: int,
                 proxy_authorization: bytes | None = None, timeout: float = 60, *,
                 reactor: IReactorTime | None = None) -> None:
        self._proxy = proxy_endpoint
        self._host, self._port = host, port
        self._authorization = proxy_authorization
        self._timeout = timeout
        self._clock = _default_clock(reactor)
        self._authority = self._codec().authority  # arguments are checked now

    def _codec(self) -> _connect.ConnectClient:
        return _connect.ConnectClient(self._host, self._port, self._authorization)

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        attempt = _Attempt(_ConnectDriver(self._codec()), protocolFactory,
                           _target_address(self._host, self._port), self._timeout,
                           self._clock)
        return attempt.run(self._proxy)

    def __repr__(self) -> str:
        return f"<ConnectTunnelEndpoint {self._authority} via {self._proxy!r}>"

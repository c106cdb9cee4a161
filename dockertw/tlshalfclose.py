"""TLS connections that half-close, as Go's ``crypto/tls`` does (``CloseWrite``).

Docker's CLI half-closes a hijacked stream (attach, exec start) as soon as its input
ends; over TLS that is a close_notify alert, after which it goes on reading.  Twisted's
TLS protocol takes a peer's close_notify for the end of the whole connection, and has
no ``loseWriteConnection`` of its own (the name reaches the TCP transport beneath,
which sends a FIN without close_notify).

Here TLS half-closes as Twisted's TCP does: when the protocol provides
:class:`~twisted.internet.interfaces.IHalfCloseableProtocol` (a hijacked stream), the
peer's close_notify calls its ``readConnectionLost`` and the protocol may go on
writing; its ``loseConnection`` then sends close_notify and closes.  For any other
protocol (HTTP) a close_notify ends the connection, as before.  ``loseWriteConnection``
sends close_notify and keeps reading until the peer's close_notify, which then closes
the connection.  (``writeConnectionLost`` is not called.)

OpenSSL allows both, in TLS 1.2 and 1.3: writing after the peer's close_notify, and
reading after one's own.  Only public Twisted and pyOpenSSL names are used: the
OpenSSL connection is wrapped where the connection creator makes it, so that Twisted
never sees the peer's close_notify of a half-closing protocol.
"""

from __future__ import annotations

from typing import Any, cast

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.protocols.tls import (
    BufferingTLSTransport,
    TLSMemoryBIOFactory,
    TLSMemoryBIOProtocol,
)
from zope.interface import implementer

__all__ = ["HalfClosingTLS", "HalfClosingTLSFactory", "wrap_client_tls"]


class HalfClosingTLS(BufferingTLSTransport):
    """Twisted's TLS protocol, with the half-close described in the module docstring."""

    _write_closed = False
    _read_closed = False
    _read_close_due = False

    def _peer_closed(self) -> bool:
        """The peer's close_notify came: whether it ends only the reading side (it is
        reported once the received bytes are delivered)."""
        if self.disconnecting or self._write_closed:
            return False  # our side is closing too: the connection ends
        if IHalfCloseableProtocol(self.wrappedProtocol, None) is None:
            return False
        if not self._read_closed:
            self._read_closed = self._read_close_due = True
        return True

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if self._write_closed and not self.disconnecting and self.connected:
            self._send_close_notify()  # the handshake may just have finished
        if self._read_close_due and self.connected:
            self._read_close_due = False
            IHalfCloseableProtocol(self.wrappedProtocol).readConnectionLost()

    def loseWriteConnection(self) -> None:
        """Send close_notify (after any pending writes) and read on until the peer's
        own close_notify.  Later writes are dropped, as on TCP (before the handshake
        is done they are sent first: close_notify waits for the handshake)."""
        if not self._write_closed and not self.disconnecting and self.connected:
            self._write_closed = True
            self._send_close_notify()

    def _send_close_notify(self) -> None:
        # Twisted's TLS loseConnection sends close_notify and waits for the peer's,
        # delivering what it receives meanwhile: a half-close.  Before the handshake
        # is done it would abort the connection instead, so it waits for that.
        if self.getHandle().get_peer_finished() is not None:
            super().loseConnection()

    def loseConnection(self) -> None:
        if self._write_closed and self.transport is not None:
            self.transport.loseConnection()  # close_notify has gone: stop reading too
        else:
            super().loseConnection()

    def handshake_failed(self, error: SSL.Error) -> None:
        """The handshake failed with ``error``, and the connection closes.  Nothing is
        done here; a subclass may say so (the daemon logs refused clients)."""


class _HalfClosingConnection:
    """An OpenSSL connection that hides the peer's close_notify from Twisted when the
    protocol takes it as a half-close (Twisted then only waits for more bytes), and
    tells the protocol when its handshake fails."""

    def __init__(self, connection: SSL.Connection, protocol: HalfClosingTLS) -> None:
        self._connection = connection
        self._protocol = protocol

    def do_handshake(self) -> None:
        try:
            self._connection.do_handshake()
        except SSL.WantReadError:
            raise
        except SSL.Error as error:
            self._protocol.handshake_failed(error)
            raise

    def recv(self, bufsiz: int, flags: int | None = None) -> bytes:
        try:
            return self._connection.recv(bufsiz, flags)
        except SSL.ZeroReturnError:
            if not self._protocol._peer_closed():
                raise
            raise SSL.WantReadError() from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


@implementer(IOpenSSLServerConnectionCreator, IOpenSSLClientConnectionCreator)
class _HalfClosingCreator:
    """Wraps what ``creator`` makes in a :class:`_HalfClosingConnection`."""

    def __init__(self, creator: Any) -> None:
        self._creator = creator

    def serverConnectionForTLS(self, protocol: TLSMemoryBIOProtocol) -> Any:
        assert isinstance(protocol, HalfClosingTLS)
        return _HalfClosingConnection(self._creator.serverConnectionForTLS(protocol),
                                      protocol)

    def clientConnectionForTLS(self, protocol: TLSMemoryBIOProtocol) -> Any:
        assert isinstance(protocol, HalfClosingTLS)
        return _HalfClosingConnection(self._creator.clientConnectionForTLS(protocol),
                                      protocol)


class HalfClosingTLSFactory(TLSMemoryBIOFactory):
    """:class:`TLSMemoryBIOFactory` whose connections half-close.

    ``creator`` is an ``IOpenSSLServerConnectionCreator`` (``is_client`` false) or an
    ``IOpenSSLClientConnectionCreator``, such as ``CertificateOptions`` or what
    ``optionsForClientTLS`` returns.
    """

    protocol = HalfClosingTLS

    def __init__(self, creator: IOpenSSLServerConnectionCreator
                 | IOpenSSLClientConnectionCreator, is_client: bool,
                 factory: IProtocolFactory) -> None:
        wanted = IOpenSSLClientConnectionCreator if is_client else IOpenSSLServerConnectionCreator
        if not wanted.providedBy(creator):
            raise TypeError(f"{creator!r} does not provide {wanted.__name__}")
        super().__init__(_HalfClosingCreator(creator), is_client, factory)


@implementer(IStreamClientEndpoint)
class _TLSClientEndpoint:
    def __init__(self, creator: IOpenSSLClientConnectionCreator,
                 endpoint: IStreamClientEndpoint) -> None:
        self._creator = creator
        self._endpoint = endpoint

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        connecting = self._endpoint.connect(HalfClosingTLSFactory(self._creator, True, factory))
        return connecting.addCallback(_wrapped_protocol)


def _wrapped_protocol(tls: IProtocol) -> IProtocol:
    wrapped: IProtocol = cast(HalfClosingTLS, tls).wrappedProtocol
    return wrapped


def wrap_client_tls(creator: IOpenSSLClientConnectionCreator,
                    endpoint: IStreamClientEndpoint) -> IStreamClientEndpoint:
    """Twisted's ``wrapClientTLS``, with connections that half-close."""
    return _TLSClientEndpoint(creator, endpoint)

"""The embedded DNS server of containers on user-defined networks, on Twisted Names.

As Docker's, it answers at ``127.0.0.11:53`` (UDP and TCP) inside each such
container's network namespace: the daemon opens the two sockets in the namespace
(:func:`open_sockets`, from the thread that made it) and serves them from the reactor,
so no process runs per container.  Names of the containers that share a network with
the asking one (their names, aliases, short IDs, ``name.network``; links) are answered
here (``A``, ``AAAA``, ``PTR``); every other question is forwarded from the host's
network namespace to the container's upstream servers (its ``--dns``, the daemon's,
or the host's resolvers).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.names import client, common, dns, error, server

__all__ = ["NameLookup", "EmbeddedDns", "DnsServer", "open_sockets", "ADDRESS", "TTL"]

ADDRESS = "127.0.0.11"
TTL = 600
_FORWARD_TIMEOUT = (1, 3)  # seconds per try: a dead upstream fails in 4 s


class NameLookup(Protocol):
    """The container names a container can resolve (the endpoint table)."""

    def addresses(self, container_id: str, name: str) -> list[str] | None:
        """The addresses ``name`` has for ``container_id`` (``None``: unknown here)."""

    def names_of(self, container_id: str, address: str) -> list[str]:
        """The names ``address`` has for ``container_id`` (for ``PTR``)."""


def open_sockets() -> tuple[socket.socket, socket.socket]:
    """UDP and listening TCP sockets on ``127.0.0.11:53``, non-blocking (call inside
    the container's namespace, once its ``lo`` is up)."""
    opened: list[socket.socket] = []
    try:
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            sock = socket.socket(socket.AF_INET, kind)
            opened.append(sock)
            sock.bind((ADDRESS, 53))
            sock.setblocking(False)
        opened[1].listen(16)
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened[0], opened[1]


def _address_of_reverse(name: str) -> str | None:
    """``4.3.2.1.in-addr.arpa`` -> ``1.2.3.4`` (IPv6 nibbles likewise)."""
    lowered = name.lower().rstrip(".")
    try:
        if lowered.endswith(".in-addr.arpa"):
            parts = lowered[: -len(".in-addr.arpa")].split(".")
            return str(ipaddress.IPv4Address(".".join(reversed(parts))))
        if lowered.endswith(".ip6.arpa"):
            nibbles = "".join(reversed(lowered[: -len(".ip6.arpa")].split(".")))
            return str(ipaddress.IPv6Address(int(nibbles, 16)))
    except ValueError:
        return None
    return None


class _ContainerNames(common.ResolverBase):
    """What one container can resolve locally; anything else is a ``DomainError``
    (the chain then forwards it)."""

    def __init__(self, container_id: str, lookup: NameLookup) -> None:
        super().__init__()
        self._container_id = container_id
        self._names = lookup

    def _answer(self, name: bytes, kind: int, payload: Any) -> dns.RRHeader:
        return dns.RRHeader(name=name, type=kind, cls=dns.IN, ttl=TTL, payload=payload,
                            auth=True)

    def _lookup(self, name: bytes, cls: int, type: int,  # noqa: A002 - Twisted's name
                timeout: Any) -> Deferred[Any]:
        text = name.decode("ascii", "replace").rstrip(".")
        if cls != dns.IN:
            return fail(error.DomainError(text))
        if type == dns.PTR:
            return self._pointer(name, text)
        found = self._names.addresses(self._container_id, text)
        if found is None:
            return fail(error.DomainError(text))
        answers = []
        for address in found:
            version = ipaddress.ip_address(address).version
            if type in (dns.A, dns.ALL_RECORDS) and version == 4:
                answers.append(self._answer(name, dns.A, dns.Record_A(address, TTL)))
            if type in (dns.AAAA, dns.ALL_RECORDS) and version == 6:
                answers.append(self._answer(name, dns.AAAA, dns.Record_AAAA(address, TTL)))
        return succeed((answers, [], []))

    def _pointer(self, name: bytes, text: str) -> Deferred[Any]:
        address = _address_of_reverse(text)
        names = self._names.names_of(self._container_id, address) if address else []
        if not names:
            return fail(error.DomainError(text))
        answers = [self._answer(name, dns.PTR, dns.Record_PTR(target, TTL))
                   for target in names]
        return succeed((answers, [], []))


class _Refuse(common.ResolverBase):
    """No upstream: the name is not found (rather than asking the world)."""

    def _lookup(self, name: bytes, cls: int, type: int,  # noqa: A002
                timeout: Any) -> Deferred[Any]:
        return fail(error.DomainError(name))


class _Forwarder(client.Resolver):
    """The host's resolvers, asked from the daemon's namespace (quietly)."""

    def _connectedProtocol(self, interface: str = "") -> dns.DNSDatagramProtocol:
        protocol = super()._connectedProtocol(interface)
        protocol.noisy = False
        return protocol


class _Server(server.DNSServerFactory):
    """Answers SERVFAIL when an upstream fails, as any resolver: nothing to log."""

    noisy = False

    def gotResolverError(self, failure: Any, protocol: Any, message: dns.Message,
                         address: Any) -> None:
        if failure.check(dns.DomainError, dns.AuthoritativeDomainError):
            super().gotResolverError(failure, protocol, message, address)
            return
        response = self._responseFromMessage(message=message, rCode=dns.ESERVER)
        self.sendReply(protocol, response, address)


class DnsServer:
    """One container's server: its two ports, until :meth:`stop`."""

    def __init__(self, ports: Sequence[IListeningPort]) -> None:
        self._ports = list(ports)

    def stop(self) -> None:
        for port in self._ports:
            port.stopListening()
        self._ports = []


class EmbeddedDns:
    """Serves each container's sockets; the forwarders are shared per set of upstream
    servers (``(address, port)`` pairs)."""

    def __init__(self, reactor: Any, lookup: NameLookup) -> None:
        self._reactor = reactor
        self._lookup = lookup
        self._forwarders: dict[tuple[tuple[str, int], ...], common.ResolverBase] = {}

    def _forwarder(self, upstreams: Sequence[tuple[str, int]]) -> common.ResolverBase:
        key = tuple(upstreams)
        if key not in self._forwarders:
            self._forwarders[key] = _Forwarder(
                servers=list(key), reactor=self._reactor,
                timeout=_FORWARD_TIMEOUT) if key else _Refuse()
        return self._forwarders[key]

    def serve(self, container_id: str, sockets: tuple[socket.socket, socket.socket],
              upstreams: Sequence[tuple[str, int]]) -> DnsServer:
        """Answer on ``sockets`` (made by :func:`open_sockets`) for ``container_id``;
        the sockets are adopted (and closed here)."""
        factory = _Server(authorities=[_ContainerNames(container_id, self._lookup)],
                          clients=[self._forwarder(upstreams)])
        protocol = dns.DNSDatagramProtocol(controller=factory)
        protocol.noisy = False
        udp, tcp = sockets
        try:
            ports = [
                self._reactor.adoptDatagramPort(udp.fileno(), socket.AF_INET, protocol),
                self._reactor.adoptStreamPort(tcp.fileno(), socket.AF_INET, factory)]
        finally:
            udp.close()
            tcp.close()
        return DnsServer(ports)

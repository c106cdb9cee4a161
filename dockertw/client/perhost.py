"""``PerHost``: the bypass policy of ``golang.org/x/net/proxy`` (spec section 1).

Rules only ever add bypasses. Targets are matched literally: no DNS, no IDNA, no case
folding, and a target that is an IP literal is only compared with IP and CIDR rules.
The same ``NO_PROXY`` text means something else to :mod:`dockertw.client.proxyenv`'s
HTTP proxy matcher; keep the two apart.
"""

from __future__ import annotations

from dockertw.client._gonet import (
    AddrError,
    IPAddress,
    IPNetwork,
    ip_equal,
    network_contains,
    parse_addr,
    parse_cidr,
    split_host_port,
    trim_space,
)

__all__ = ["AddrError", "PerHost"]


class PerHost:
    """Which dial addresses bypass the default (proxy) dialer."""

    def __init__(self) -> None:
        self._networks: list[IPNetwork] = []
        self._ips: list[IPAddress] = []
        self._zones: list[str] = []
        self._hosts: list[str] = []

    @classmethod
    def from_string(cls, text: str) -> PerHost:
        """A new policy fed with :meth:`add_from_string`."""
        policy = cls()
        policy.add_from_string(text)
        return policy

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        """The CIDR rules, in insertion order."""
        return tuple(self._networks)

    @property
    def ips(self) -> tuple[IPAddress, ...]:
        """The exact-IP rules."""
        return tuple(self._ips)

    @property
    def zones(self) -> tuple[str, ...]:
        """The DNS suffix rules, each with a leading ``.``."""
        return tuple(self._zones)

    @property
    def hosts(self) -> tuple[str, ...]:
        """The exact-name rules."""
        return tuple(self._hosts)

    def add_from_string(self, text: str) -> None:
        """Add the comma-separated rules of ``text``; malformed pieces never raise."""
        for piece in text.split(","):
            self._add_piece(trim_space(piece))

    def _add_piece(self, piece: str) -> None:
        if not piece:
            return
        if "/" in piece:
            network = parse_cidr(piece)
            if network is not None:
                self.add_network(network)
            return
        ip = parse_addr(piece)
        if ip is not None:
            self.add_ip(ip)
        elif piece.startswith("*."):
            self.add_zone(piece[1:])
        else:
            self.add_host(piece)

    def add_ip(self, ip: IPAddress) -> None:
        """Bypass this address (and its IPv4/IPv4-mapped twin)."""
        self._ips.append(ip)

    def add_network(self, network: IPNetwork) -> None:
        """Bypass every address in ``network``."""
        self._networks.append(network)

    def add_zone(self, zone: str) -> None:
        """Bypass ``zone`` and every name under it (``example.com.`` -> ``.example.com``)."""
        zone = zone.removesuffix(".")
        self._zones.append(zone if zone.startswith(".") else "." + zone)

    def add_host(self, host: str) -> None:
        """Bypass exactly this name (one trailing dot removed, case kept)."""
        self._hosts.append(host.removesuffix("."))

    def bypasses(self, address: str) -> bool:
        """Whether dialling ``host:port`` skips the proxy; :class:`AddrError` (a
        :class:`ValueError`) when ``address`` does not split like Go's
        ``net.SplitHostPort``."""
        host, _port = split_host_port(address)
        ip = parse_addr(host)
        if ip is not None:
            return self._bypasses_ip(ip)
        return self._bypasses_name(host)

    def _bypasses_ip(self, ip: IPAddress) -> bool:
        return (any(network_contains(network, ip) for network in self._networks)
                or any(ip_equal(rule, ip) for rule in self._ips))

    def _bypasses_name(self, host: str) -> bool:
        return (any(host.endswith(zone) or host == zone[1:] for zone in self._zones)
                or host in self._hosts)

    def __repr__(self) -> str:
        return (f"PerHost(networks={[str(n) for n in self._networks]}, "
                f"ips={[str(i) for i in self._ips]}, zones={self._zones}, "
                f"hosts={self._hosts})")

"""The endpoints of running containers: who is on which network, with which
addresses and names.  The embedded DNS, ``docker network inspect`` and the checks of
``docker network rm`` read it; sandboxes add and remove entries (reactor thread)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = ["EndpointInfo", "EndpointTable"]


def _address(cidr: str) -> str:
    return cidr.split("/", 1)[0]


@attrs.frozen
class EndpointInfo:
    """One container's endpoint on one network."""

    container_id: str
    container_name: str  # without the leading "/"
    hostname: str
    network_id: str
    network_name: str
    endpoint_id: str
    mac: str = ""
    ipv4: str = ""  # CIDR
    ipv6: str = ""  # CIDR
    gateway: str = ""
    ipv6_gateway: str = ""
    aliases: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (container name, alias), user networks
    user_defined: bool = True  # a user-defined network (names resolve by DNS)

    def addresses(self) -> list[str]:
        return [_address(cidr) for cidr in (self.ipv4, self.ipv6) if cidr]

    def dns_names(self) -> list[str]:
        """Docker's ``DNSNames``: name, aliases, short ID, hostname (no repeats)."""
        names: list[str] = []
        for name in (self.container_name, *self.aliases, self.container_id[:12],
                     self.hostname):
            if name and name not in names:
                names.append(name)
        return names

    def resource(self) -> dict[str, str]:
        """``Containers[<id>]`` of ``docker network inspect``."""
        return {"Name": self.container_name, "EndpointID": self.endpoint_id,
                "MacAddress": self.mac, "IPv4Address": self.ipv4,
                "IPv6Address": self.ipv6}


class EndpointTable:
    """The live endpoints, by network and by container."""

    def __init__(self) -> None:
        self._by_network: dict[str, dict[str, EndpointInfo]] = {}

    def add(self, info: EndpointInfo) -> None:
        self._by_network.setdefault(info.network_id, {})[info.container_id] = info

    def remove(self, container_id: str, network_id: str) -> None:
        members = self._by_network.get(network_id, {})
        members.pop(container_id, None)
        if not members:
            self._by_network.pop(network_id, None)

    def rename(self, container_id: str, name: str) -> None:
        """A running container got a new name: its DNS name follows."""
        for members in self._by_network.values():
            if container_id in members:
                members[container_id] = attrs.evolve(members[container_id],
                                                     container_name=name)

    def of_network(self, network_id: str) -> list[EndpointInfo]:
        return sorted(self._by_network.get(network_id, {}).values(),
                      key=lambda info: info.container_id)

    def of_container(self, container_id: str) -> list[EndpointInfo]:
        return [members[container_id] for members in self._by_network.values()
                if container_id in members]

    def in_use(self, network_id: str) -> bool:
        return bool(self._by_network.get(network_id))

    # -- NameLookup (the embedded DNS) ---------------------------------------------------

    def _peers(self, container_id: str) -> Iterable[tuple[EndpointInfo, EndpointInfo]]:
        """(the asker's endpoint, a peer's endpoint) on each user-defined network."""
        for own in self.of_container(container_id):
            if own.user_defined:
                for peer in self._by_network.get(own.network_id, {}).values():
                    yield own, peer

    def addresses(self, container_id: str, name: str) -> list[str] | None:
        wanted = name.lower().rstrip(".")
        found: list[str] = []
        known = False
        for own, peer in self._peers(container_id):
            targets = {target.lower() for target, alias in own.links
                       if alias.lower() == wanted}
            names = {n.lower() for n in peer.dns_names()}
            qualified = {f"{n}.{peer.network_name.lower()}" for n in names}
            if wanted in names or wanted in qualified or \
                    peer.container_name.lower() in targets:
                known = True
                found += [a for a in peer.addresses() if a not in found]
        return found if known else None

    def names_of(self, container_id: str, address: str) -> list[str]:
        return [f"{peer.container_name}.{peer.network_name}"
                for _, peer in self._peers(container_id) if address in peer.addresses()]

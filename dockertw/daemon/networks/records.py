"""One network as the engine keeps it, and Docker's JSON of it.

The predefined networks are ``bridge`` (the default bridge), ``host`` and ``none``;
every other is a user-defined ``bridge`` network.  A network's IPAM pools are what the
user asked for, or what the engine chose from its address pools (``user_ipam`` says
which, as Docker shows only the user's fields for the former).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

import attrs

from dockertw.daemon.timestamps import rfc3339_nano

__all__ = ["Network", "IpamPool", "PREDEFINED", "BRIDGE_OPTIONS", "bool_option",
           "Subnet"]

PREDEFINED = ("bridge", "host", "none")
Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network
_OPTION = "com.docker.network."
BRIDGE_OPTIONS = {
    "name": _OPTION + "bridge.name",
    "icc": _OPTION + "bridge.enable_icc",
    "masquerade": _OPTION + "bridge.enable_ip_masquerade",
    "host_ip": _OPTION + "bridge.host_binding_ipv4",
    "mtu": _OPTION + "driver.mtu",
    "default": _OPTION + "bridge.default_bridge",
}


def bool_option(options: Mapping[str, str], key: str, default: bool = True) -> bool:
    """A driver option as Go's ``strconv.ParseBool`` reads it (``default`` if unset)."""
    value = options.get(key)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "t", "true")


@attrs.frozen
class IpamPool:
    """One ``IPAM.Config`` entry: a subnet, its dynamic range, gateway, reserved names."""

    subnet: str
    ip_range: str = ""
    gateway: str = ""
    aux: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def network(self) -> Subnet:
        return ipaddress.ip_network(self.subnet, strict=False)

    @property
    def version(self) -> int:
        return self.network.version

    def gateway_address(self) -> str:
        """The gateway given, or the subnet's first address (Docker's choice)."""
        return self.gateway or str(next(self.network.hosts()))

    def view(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"Subnet": self.subnet}
        if self.ip_range:
            shown["IPRange"] = self.ip_range
        if self.gateway:
            shown["Gateway"] = self.gateway
        if self.aux:
            shown["AuxiliaryAddresses"] = dict(self.aux)
        return shown

    def to_json(self) -> dict[str, Any]:
        return {"Subnet": self.subnet, "IPRange": self.ip_range, "Gateway": self.gateway,
                "AuxiliaryAddresses": dict(self.aux)}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> IpamPool:
        return cls(subnet=str(value["Subnet"]), ip_range=str(value.get("IPRange") or ""),
                   gateway=str(value.get("Gateway") or ""),
                   aux=dict(value.get("AuxiliaryAddresses") or {}))


@attrs.frozen
class Network:
    """A network's settings (what ``docker network inspect`` shows, and the device)."""

    id: str
    name: str
    driver: str
    created_ns: int
    pools: tuple[IpamPool, ...] = ()
    user_ipam: bool = False
    ipam_options: Mapping[str, str] | None = None
    enable_ipv6: bool = False
    internal: bool = False
    attachable: bool = False
    options: Mapping[str, str] = attrs.field(factory=dict)
    labels: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def is_bridge(self) -> bool:
        return self.driver == "bridge"

    @property
    def bridge(self) -> str:
        """The Linux bridge device (bridge driver only)."""
        return self.options.get(BRIDGE_OPTIONS["name"]) or f"br-{self.id[:12]}"

    @property
    def icc(self) -> bool:
        return bool_option(self.options, BRIDGE_OPTIONS["icc"])

    @property
    def masquerade(self) -> bool:
        return bool_option(self.options, BRIDGE_OPTIONS["masquerade"])

    @property
    def host_ip(self) -> str:
        """Where published ports of this network bind unless told (``0.0.0.0``)."""
        return self.options.get(BRIDGE_OPTIONS["host_ip"]) or "0.0.0.0"

    @property
    def mtu(self) -> int:
        try:
            return int(self.options.get(BRIDGE_OPTIONS["mtu"]) or 0)
        except ValueError:
            return 0

    def subnets(self, version: int | None = None) -> list[Subnet]:
        return [pool.network for pool in self.pools
                if version is None or pool.version == version]

    def pool_of(self, version: int) -> IpamPool | None:
        """The first pool of IP ``version`` (4 or 6)."""
        for pool in self.pools:
            if pool.version == version:
                return pool
        return None

    def user_subnet(self, version: int) -> bool:
        """Whether the user chose a subnet of IP ``version`` (needed for ``--ip``)."""
        return self.user_ipam and self.pool_of(version) is not None

    def view(self, containers: Mapping[str, Any] | None = None,
             status: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Docker's network JSON, every field of the newest API (the router drops what
        an older version does not know)."""
        created = rfc3339_nano(self.created_ns) if self.created_ns else \
            "0001-01-01T00:00:00Z"
        shown: dict[str, Any] = {
            "Name": self.name, "Id": self.id, "Created": created, "Scope": "local",
            "Driver": self.driver, "EnableIPv4": self.is_bridge,
            "EnableIPv6": self.enable_ipv6,
            "IPAM": {"Driver": "default", "Options": dict(self.ipam_options)
                     if self.ipam_options is not None else None,
                     "Config": [pool.view() for pool in self.pools]},
            "Internal": self.internal, "Attachable": self.attachable, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
            "Containers": dict(containers or {}), "Options": dict(self.options),
            "Labels": dict(self.labels),
        }
        if status is not None:
            shown["Status"] = dict(status)
        return shown

    def to_json(self) -> bytes:
        return json.dumps({
            "Id": self.id, "Name": self.name, "Driver": self.driver,
            "CreatedNano": self.created_ns, "Pools": [p.to_json() for p in self.pools],
            "UserIPAM": self.user_ipam, "IPAMOptions": self.ipam_options,
            "EnableIPv6": self.enable_ipv6, "Internal": self.internal,
            "Attachable": self.attachable, "Options": dict(self.options),
            "Labels": dict(self.labels)}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Network:
        value = json.loads(data)
        return cls(id=str(value["Id"]), name=str(value["Name"]),
                   driver=str(value["Driver"]), created_ns=int(value["CreatedNano"]),
                   pools=tuple(IpamPool.from_json(p) for p in value.get("Pools") or ()),
                   user_ipam=bool(value.get("UserIPAM")),
                   ipam_options=value.get("IPAMOptions"),
                   enable_ipv6=bool(value.get("EnableIPv6")),
                   internal=bool(value.get("Internal")),
                   attachable=bool(value.get("Attachable")),
                   options=dict(value.get("Options") or {}),
                   labels=dict(value.get("Labels") or {}))

"""Create-time checks of a HostConfig's network options: ``--add-host``, ``--dns``,
``-p``, ``--link``, and what a ``container:`` or ``host`` network mode rules out
(moby's ``runconfig`` errors, with its messages)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from dockertw.daemon.networks.ports import check_port_bindings
from dockertw.errdefs import InvalidParameter

__all__ = ["check_network_options", "parse_extra_host", "HOST_GATEWAY"]

HOST_GATEWAY = "host-gateway"
_CONTAINER_CONFLICTS = (
    ("Links", "conflicting options: container type network can't be used with links. "
              "This would result in undefined behavior"),
    ("PortBindings", "conflicting options: port publishing and the container type "
                     "network mode"),
    ("PublishAllPorts", "conflicting options: port publishing and the container type "
                        "network mode"),
    ("Dns", "conflicting options: dns and the network mode"),
    ("ExtraHosts", "conflicting options: custom host-to-IP mapping and the network mode"),
)


def _strings(host: Mapping[str, Any], key: str) -> list[str]:
    value = host.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid JSON: {key} must be an array of strings")
    return list(value)


def parse_extra_host(entry: str) -> tuple[str, str]:
    """``name:address`` (``host-gateway`` allowed; IPv6 addresses keep their colons)."""
    name, separator, address = entry.partition(":")
    if not separator or not name or not address:
        raise InvalidParameter(f'bad format for add-host: "{entry}"')
    if address != HOST_GATEWAY:
        try:
            ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            raise InvalidParameter(f'invalid IP address in add-host: "{address}"') from None
    return name, address.strip("[]")


def _check_dns(host: Mapping[str, Any]) -> None:
    for server in _strings(host, "Dns"):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidParameter(f"{server} is not an ip address") from None
    _strings(host, "DnsSearch")
    _strings(host, "DnsOptions")


def _check_links(host: Mapping[str, Any]) -> None:
    for link in _strings(host, "Links"):
        target, _, alias = link.partition(":")
        if not target.strip("/"):
            raise InvalidParameter(f"invalid link format: {link}")
        if alias and not alias.strip("/"):
            raise InvalidParameter(f"invalid link format: {link}")


def check_network_options(host: Mapping[str, Any]) -> None:
    """400 for malformed network options, and for combinations Docker refuses."""
    for entry in _strings(host, "ExtraHosts"):
        parse_extra_host(entry)
    _check_dns(host)
    _check_links(host)
    check_port_bindings(host.get("PortBindings"))
    mode = str(host.get("NetworkMode") or "default")
    if mode.startswith("container:"):
        if not mode.partition(":")[2]:
            raise InvalidParameter("Invalid network mode: invalid container format "
                                   "container:<name|id>")
        for key, message in _CONTAINER_CONFLICTS:
            if host.get(key):
                raise InvalidParameter(message)
    if mode == "host" and host.get("Links"):
        raise InvalidParameter("conflicting options: host type networking can't be used "
                               "with links. This would result in undefined behavior")

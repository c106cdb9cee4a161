"""A container's network settings: what it asked for at create or connect (its
``EndpointsConfig``), what its endpoints are while it runs, and Docker's views of them.

The record keeps ``NetworkSettings`` as ``{"Networks": {name: EndpointSettings},
"Ports": ..., "SandboxID": ..., "SandboxKey": ...}``; the run-time fields of each
endpoint are filled at start and cleared at stop, as Docker's ``cleanOperationalData``.
Views carry every field of the newest API; the router drops or reshapes what an older
version does not know.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from dockertw.errdefs import InvalidParameter

__all__ = ["endpoint_settings", "with_runtime", "without_runtime", "network_settings_view",
           "summary_networks", "empty_settings", "after_stop", "user_links"]

# EndpointSettings in Docker's order, with their zero values.
_ENDPOINT: tuple[tuple[str, Any], ...] = (
    ("IPAMConfig", None), ("Links", None), ("Aliases", None), ("MacAddress", ""),
    ("DriverOpts", None), ("GwPriority", 0), ("NetworkID", ""), ("EndpointID", ""),
    ("Gateway", ""), ("IPAddress", ""), ("IPPrefixLen", 0), ("IPv6Gateway", ""),
    ("GlobalIPv6Address", ""), ("GlobalIPv6PrefixLen", 0), ("DNSNames", None))
_RUNTIME = ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway",
            "GlobalIPv6Address", "GlobalIPv6PrefixLen", "DNSNames")
_CONFIGURED_MAC = "ConfiguredMacAddress"  # the user's MAC, kept while the run's shows


def _strings(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid JSON: {what} must be an array of strings")
    return list(value)


def _ipam_config(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidParameter("invalid JSON: IPAMConfig must be an object")
    shown: dict[str, Any] = {}
    for key in ("IPv4Address", "IPv6Address"):
        if value.get(key):
            if not isinstance(value[key], str):
                raise InvalidParameter(f"invalid JSON: {key} must be a string")
            shown[key] = value[key]
    links = _strings(value.get("LinkLocalIPs"), "LinkLocalIPs")
    if links:
        shown["LinkLocalIPs"] = links
    return shown or None


def endpoint_settings(given: Mapping[str, Any] | None, network_id: str = "") -> dict[str, Any]:
    """An ``EndpointsConfig`` entry as the record keeps it (run-time fields empty)."""
    given = given or {}
    if not isinstance(given, Mapping):
        raise InvalidParameter("invalid JSON: an endpoint config must be an object")
    settings = {key: copy.deepcopy(default) for key, default in _ENDPOINT}
    settings["IPAMConfig"] = _ipam_config(given.get("IPAMConfig"))
    settings["Links"] = _strings(given.get("Links"), "Links") or None
    settings["Aliases"] = _strings(given.get("Aliases"), "Aliases") or None
    mac = given.get("MacAddress") or ""
    if not isinstance(mac, str):
        raise InvalidParameter("invalid JSON: MacAddress must be a string")
    settings["MacAddress"] = settings[_CONFIGURED_MAC] = mac
    options = given.get("DriverOpts")
    if options is not None and not isinstance(options, dict):
        raise InvalidParameter("invalid JSON: DriverOpts must be an object")
    settings["DriverOpts"] = dict(options) if options else None
    priority = given.get("GwPriority") or 0
    settings["GwPriority"] = priority if isinstance(priority, int) else 0
    settings["NetworkID"] = network_id or str(given.get("NetworkID") or "")
    return settings


def with_runtime(settings: Mapping[str, Any], *, network_id: str, endpoint_id: str,
                 ipv4: str, gateway: str, ipv6: str, ipv6_gateway: str, mac: str,
                 dns_names: Sequence[str]) -> dict[str, Any]:
    """The settings of an endpoint that is up (addresses in CIDR notation)."""
    address, _, prefix = ipv4.partition("/")
    address6, _, prefix6 = ipv6.partition("/")
    return {**settings, "NetworkID": network_id, "EndpointID": endpoint_id,
            "Gateway": gateway, "IPAddress": address, "IPPrefixLen": int(prefix or 0),
            "IPv6Gateway": ipv6_gateway, "GlobalIPv6Address": address6,
            "GlobalIPv6PrefixLen": int(prefix6 or 0), "MacAddress": mac,
            "DNSNames": list(dns_names) or None}


def without_runtime(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings once the endpoint is gone (the container stopped)."""
    cleared = dict(settings)
    for key, default in _ENDPOINT:
        if key in _RUNTIME:
            cleared[key] = copy.deepcopy(default)
    cleared["MacAddress"] = cleared.get(_CONFIGURED_MAC, "")
    return cleared


def after_stop(stored: Mapping[str, Any]) -> dict[str, Any]:
    """``NetworkSettings`` once the container stopped: run-time fields cleared."""
    return {"Networks": {name: without_runtime(entry)
                         for name, entry in (stored.get("Networks") or {}).items()},
            "Ports": None, "SandboxID": "", "SandboxKey": ""}


def empty_settings() -> dict[str, Any]:
    return {"Networks": {}, "Ports": None, "SandboxID": "", "SandboxKey": ""}


def user_links(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An endpoint's ``Links`` (``container[:alias]``) as ``(container, alias)``."""
    links = []
    for link in settings.get("Links") or ():
        target, _, alias = str(link).partition(":")
        links.append((target.lstrip("/"), alias or target.lstrip("/")))
    return links


def _endpoint_view(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(settings.get(key, default)) for key, default in _ENDPOINT}


def network_settings_view(stored: Mapping[str, Any] | None, running: bool) -> dict[str, Any]:
    """``NetworkSettings`` of inspect, legacy fields from the ``bridge`` endpoint."""
    stored = stored or empty_settings()
    networks = {name: _endpoint_view(s) for name, s in (stored.get("Networks") or {}).items()}
    bridge = networks.get("bridge") or {}
    ports = stored.get("Ports") if running else None
    return {"Bridge": "", "SandboxID": stored.get("SandboxID") or "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
            "Ports": dict(ports or {}), "SandboxKey": stored.get("SandboxKey") or "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": bridge.get("EndpointID", ""), "Gateway": bridge.get("Gateway", ""),
            "GlobalIPv6Address": bridge.get("GlobalIPv6Address", ""),
            "GlobalIPv6PrefixLen": bridge.get("GlobalIPv6PrefixLen", 0),
            "IPAddress": bridge.get("IPAddress", ""),
            "IPPrefixLen": bridge.get("IPPrefixLen", 0),
            "IPv6Gateway": bridge.get("IPv6Gateway", ""),
            "MacAddress": bridge.get("MacAddress", ""), "Networks": networks}


def summary_networks(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """The list's ``NetworkSettings``."""
    stored = stored or empty_settings()
    return {"Networks": {name: _endpoint_view(s)
                         for name, s in (stored.get("Networks") or {}).items()}}

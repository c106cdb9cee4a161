"""Networks and container endpoints as each API version has them (moby's network
router and the network parts of its container router).

* 1.28: ``GET /networks`` stops listing each network's ``Containers`` (``{}``), and
  from 1.52 (moby's ``network.Summary``) has no such field;
* 1.44: an endpoint's ``MacAddress`` is read on create (before, ``Config.MacAddress``
  moves to the main network's endpoint); from 1.44 ``Config.MacAddress`` still moves
  there with a deprecation warning; endpoints show ``DNSNames``;
* 1.45: endpoint ``Aliases`` no longer carry the short ID and the hostname;
* 1.48: networks show ``EnableIPv4``, endpoints ``GwPriority``;
* 1.52: ``GET /networks/{id}`` shows ``Status``; ``Config.MacAddress`` is refused.
"""

from __future__ import annotations

from typing import Any

from dockertw.api.versions import before, since
from dockertw.errdefs import InvalidParameter

__all__ = ["network_view", "endpoints_view", "mac_address_gates", "MAC_WARNING"]

MAC_WARNING = ("The container-wide MacAddress field is now deprecated. It should be "
               "specified in EndpointsConfig instead.")
_PREDEFINED = ("bridge", "host", "none")


def network_view(network: dict[str, Any], version: str, listed: bool) -> dict[str, Any]:
    """A network of ``GET /networks`` (``listed``) or ``GET /networks/{id}``."""
    if before(version, "1.48"):
        network.pop("EnableIPv4", None)
    if listed or before(version, "1.52"):
        network.pop("Status", None)
    if listed and since(version, "1.52"):
        network.pop("Containers", None)  # moby 29's network.Summary
    elif listed and since(version, "1.28"):
        network["Containers"] = {}
    return network


def _endpoint_view(name: str, endpoint: dict[str, Any], version: str) -> None:
    dns_names = endpoint.get("DNSNames") or []
    if before(version, "1.45") and dns_names and name not in _PREDEFINED:
        aliases = list(endpoint.get("Aliases") or [])
        endpoint["Aliases"] = aliases + [n for n in dns_names[1:] if n not in aliases]
    if before(version, "1.44"):
        endpoint.pop("DNSNames", None)
    if before(version, "1.48"):
        endpoint.pop("GwPriority", None)


def endpoints_view(settings: Any, version: str) -> None:
    """A container's ``NetworkSettings.Networks`` (inspect or list) at ``version``."""
    if not isinstance(settings, dict):
        return
    for name, endpoint in (settings.get("Networks") or {}).items():
        if isinstance(endpoint, dict):
            _endpoint_view(name, endpoint, version)


def _main_endpoint(body: dict[str, Any]) -> dict[str, Any]:
    """The ``EndpointsConfig`` entry of the container's ``NetworkMode`` (made if none)."""
    host = body.get("HostConfig")
    mode = str((host.get("NetworkMode") if isinstance(host, dict) else "") or "default")
    if mode in ("host", "none") or mode.startswith("container:"):
        raise InvalidParameter("conflicting options: mac-address and the network mode")
    networking = body.get("NetworkingConfig")
    if not isinstance(networking, dict):
        networking = body["NetworkingConfig"] = {}
    endpoints = networking.get("EndpointsConfig")
    if not isinstance(endpoints, dict):
        endpoints = networking["EndpointsConfig"] = {}
    key = next(iter(endpoints), "bridge" if mode == "default" else mode)
    endpoint = endpoints.get(key)
    if not isinstance(endpoint, dict):
        endpoint = endpoints[key] = {}
    return endpoint


def mac_address_gates(body: dict[str, Any], version: str) -> list[str]:
    """moby's ``handleMACAddressBC`` on a create body: the warnings to add."""
    mac = body.get("MacAddress") or ""
    if before(version, "1.44"):
        networking = body.get("NetworkingConfig")
        endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) \
            else None
        for endpoint in (endpoints or {}).values():
            if isinstance(endpoint, dict):
                endpoint.pop("MacAddress", None)
        if mac:
            _main_endpoint(body)["MacAddress"] = mac
        return []
    if not mac:
        return []
    if since(version, "1.52"):
        raise InvalidParameter("container-wide MAC address no longer supported; use "
                               "endpoint-specific MAC address instead")
    endpoint = _main_endpoint(body)
    if endpoint.get("MacAddress") and endpoint["MacAddress"] != mac:
        raise InvalidParameter("the container-wide MAC address must match the "
                               "endpoint-specific MAC address for the main network, "
                               "or be left empty")
    endpoint["MacAddress"] = mac
    return [MAC_WARNING]

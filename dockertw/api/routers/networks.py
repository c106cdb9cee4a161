"""Network routes: list, inspect, create, connect, disconnect, remove, prune; and the
version gates of the network parts of the container routes.

The engine answers every field of the newest API; the shapes older versions see are
decided here, next to the routes (moby's gates):

* 1.28: ``GET /networks`` stops listing each network's ``Containers`` (``{}``);
* 1.44: ``POST /containers/create`` takes several ``EndpointsConfig`` (before: 400)
  and an endpoint ``MacAddress`` (the container-wide ``Config.MacAddress`` moves
  there before 1.44, and gives a deprecation warning from 1.44); ``DNSNames`` appear
  in endpoint settings;
* 1.45: endpoint ``Aliases`` no longer carry the short container ID (and hostname);
* 1.48: networks show ``EnableIPv4``, endpoints ``GwPriority`` (ignored before);
* 1.52: ``GET /networks/{id}`` shows ``Status``; container ``NetworkSettings`` loses
  the legacy fields of the default bridge endpoint; ``Config.MacAddress`` is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from dockertw import versions
from dockertw.api.responses import Empty, Json
from dockertw.api.router import ApiCall, Route
from dockertw.daemon.containers.records.networking import LEGACY_FIELDS
from dockertw.daemon.networks.service import LIST_FILTERS, PRUNE_FILTERS
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters

__all__ = ["NetworkRouter", "NetworkBackend", "shape_network_settings",
           "container_create_gates"]


class NetworkBackend(Protocol):
    def list_networks(self, filters: Filters) -> Deferred[list[dict[str, Any]]]: ...
    def inspect(self, term: str, scope: str = "") -> Deferred[dict[str, Any]]: ...
    def create(self, body: Any) -> Deferred[dict[str, Any]]: ...
    def remove(self, term: str) -> Deferred[None]: ...
    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]: ...
    def connect(self, term: str, body: Any) -> Deferred[None]: ...
    def disconnect(self, term: str, body: Any) -> Deferred[None]: ...


def _network_shape(network: dict[str, Any], version: str, listed: bool) -> dict[str, Any]:
    if versions.is_less(version, "1.48"):
        network.pop("EnableIPv4", None)
    if listed or versions.is_less(version, "1.52"):
        network.pop("Status", None)
    if listed and not versions.is_less(version, "1.28"):
        network["Containers"] = {}
    return network


def _endpoint_shape(name: str, endpoint: dict[str, Any], version: str) -> None:
    dns_names = endpoint.get("DNSNames") or []
    if versions.is_less(version, "1.45") and dns_names and name not in (
            "bridge", "host", "none"):
        aliases = list(endpoint.get("Aliases") or [])
        endpoint["Aliases"] = aliases + [n for n in dns_names[1:] if n not in aliases]
    if versions.is_less(version, "1.44"):
        endpoint.pop("DNSNames", None)
    if versions.is_less(version, "1.48"):
        endpoint.pop("GwPriority", None)


def shape_network_settings(document: dict[str, Any], version: str) -> dict[str, Any]:
    """A container's inspect or list item as API ``version`` shows its networks."""
    settings = document.get("NetworkSettings")
    if not isinstance(settings, dict):
        return document
    for name, endpoint in (settings.get("Networks") or {}).items():
        _endpoint_shape(name, endpoint, version)
    if not versions.is_less(version, "1.52"):
        for key in LEGACY_FIELDS:
            settings.pop(key, None)
    return document


def _migrate_mac(body: dict[str, Any], mac: str) -> None:
    """Before 1.44: the container-wide MAC address is the main network's endpoint's."""
    host = body.get("HostConfig") or {}
    mode = str(host.get("NetworkMode") or "default") if isinstance(host, dict) else "default"
    if mode in ("host", "none") or mode.startswith("container:"):
        raise InvalidParameter("conflicting options: mac-address and the network mode")
    networking = body.setdefault("NetworkingConfig", {}) or {}
    body["NetworkingConfig"] = networking
    endpoints = networking.setdefault("EndpointsConfig", {}) or {}
    networking["EndpointsConfig"] = endpoints
    key = next(iter(endpoints), "bridge" if mode == "default" else mode)
    endpoint = endpoints.get(key) or {}
    endpoint["MacAddress"] = mac
    endpoints[key] = endpoint


def container_create_gates(body: Any, version: str) -> list[str]:
    """The network gates of ``POST /containers/create``: rewrites ``body`` for older
    versions; answers the warnings to add."""
    if not isinstance(body, dict):
        return []
    networking = body.get("NetworkingConfig") or {}
    endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) else None
    endpoints = endpoints if isinstance(endpoints, dict) else {}
    mac = body.get("MacAddress") or ""
    if versions.is_less(version, "1.44"):
        if len(endpoints) > 1:
            raise InvalidParameter("Container cannot be created with multiple network "
                                   f"endpoints: {', '.join(endpoints)}")
        for endpoint in endpoints.values():
            if isinstance(endpoint, dict):
                endpoint.pop("MacAddress", None)
        if mac:
            _migrate_mac(body, str(mac))
        return []
    if versions.is_less(version, "1.48"):
        for endpoint in endpoints.values():
            if isinstance(endpoint, dict):
                endpoint.pop("GwPriority", None)
    if not mac:
        return []
    if not versions.is_less(version, "1.52"):
        raise InvalidParameter("container-wide MAC address no longer supported; use "
                               "endpoint-specific MAC address instead")
    _migrate_mac(body, str(mac))
    return ["The container-wide MacAddress field is now deprecated. It should be "
            "specified in EndpointsConfig instead."]


class NetworkRouter:
    def __init__(self, networks: NetworkBackend) -> None:
        self._networks = networks

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/networks", self.list_networks),
            Route("GET", "/networks/", self.list_networks),
            Route("POST", "/networks/create", self.create),
            Route("POST", "/networks/prune", self.prune),
            Route("GET", "/networks/<path:name>", self.inspect),
            Route("DELETE", "/networks/<path:name>", self.remove),
            Route("POST", "/networks/<path:name>/connect", self.connect),
            Route("POST", "/networks/<path:name>/disconnect", self.disconnect),
        ]

    def list_networks(self, call: ApiCall) -> Deferred[list[dict[str, Any]]]:
        filters = call.filters(LIST_FILTERS)
        listed = self._networks.list_networks(filters)
        return listed.addCallback(
            lambda items: [_network_shape(item, call.version, True) for item in items])

    def inspect(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        verbose = call.query("verbose")
        if verbose and verbose.lower() not in ("1", "0", "t", "f", "true", "false"):
            raise InvalidParameter(f"invalid value for verbose: {verbose}")
        found = self._networks.inspect(call.params["name"], call.query("scope"))
        return found.addCallback(lambda item: _network_shape(item, call.version, False))

    def create(self, call: ApiCall) -> Deferred[Json]:
        body = call.json_body()
        if body is None:
            raise InvalidParameter("got EOF while reading request body")
        return self._networks.create(body).addCallback(lambda result: Json(result, 201))

    def remove(self, call: ApiCall) -> Deferred[Empty]:
        return self._networks.remove(call.params["name"]).addCallback(
            lambda _: Empty(204))

    def prune(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._networks.prune(call.filters(PRUNE_FILTERS))

    def connect(self, call: ApiCall) -> Deferred[None]:
        body = call.json_body()
        if body is None:
            raise InvalidParameter("got EOF while reading request body")
        return self._networks.connect(call.params["name"], body)

    def disconnect(self, call: ApiCall) -> Deferred[None]:
        body = call.json_body()
        if body is None:
            raise InvalidParameter("got EOF while reading request body")
        return self._networks.disconnect(call.params["name"], body)

"""Network routes: list, inspect, create, connect, disconnect, remove, prune (the
shapes of each API version: :mod:`dockertw.api.views.networks`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from dockertw.api.responses import Empty, Json
from dockertw.api.router import ApiCall, Route
from dockertw.api.views.networks import network_view
from dockertw.daemon.networks.service import LIST_FILTERS, PRUNE_FILTERS
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters

__all__ = ["NetworkRouter", "NetworkBackend"]


class NetworkBackend(Protocol):
    def list_networks(self, filters: Filters) -> Deferred[list[dict[str, Any]]]: ...
    def inspect(self, term: str, scope: str = "") -> Deferred[dict[str, Any]]: ...
    def create(self, body: Any) -> Deferred[dict[str, Any]]: ...
    def remove(self, term: str) -> Deferred[None]: ...
    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]: ...
    def connect(self, term: str, body: Any) -> Deferred[None]: ...
    def disconnect(self, term: str, body: Any) -> Deferred[None]: ...


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
            lambda items: [network_view(item, call.version, True) for item in items])

    def inspect(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        verbose = call.query("verbose")
        if verbose and verbose.lower() not in ("1", "0", "t", "f", "true", "false"):
            raise InvalidParameter(f"invalid value for verbose: {verbose}")
        found = self._networks.inspect(call.params["name"], call.query("scope"))
        return found.addCallback(lambda item: network_view(item, call.version, False))

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

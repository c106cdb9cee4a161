"""Volume routes: list, create, inspect, remove, prune."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from twisted.internet.defer import Deferred

from dockertw.api.responses import Empty, Json
from dockertw.api.router import ApiCall, Route
from dockertw.api.versions import since
from dockertw.daemon.volumes.service import LIST_FILTERS, PRUNE_FILTERS
from dockertw.errdefs import InvalidParameter, Unavailable
from dockertw.filters import Filters

__all__ = ["VolumeRouter", "VolumeBackend"]


class VolumeBackend(Protocol):
    def list_volumes(self, filters: Filters) -> Deferred[dict[str, Any]]: ...
    def create(self, body: Any) -> Deferred[dict[str, Any]]: ...
    def inspect(self, name: str) -> Deferred[dict[str, Any]]: ...
    def remove(self, name: str, force: bool = False) -> Deferred[None]: ...
    def prune(self, filters: Filters, anonymous_only: bool) -> Deferred[dict[str, Any]]: ...


def _created(volume: dict[str, Any]) -> Json:
    return Json(volume, 201)


def _no_content(_: object) -> Empty:
    return Empty(204)


class VolumeRouter:
    def __init__(self, volumes: VolumeBackend) -> None:
        self._volumes = volumes

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/volumes", self.list_volumes),
            Route("POST", "/volumes/create", self.create),
            Route("POST", "/volumes/prune", self.prune),
            Route("GET", "/volumes/<path:name>", self.inspect),
            Route("PUT", "/volumes/<path:name>", self.update, min_version="1.42"),
            Route("DELETE", "/volumes/<path:name>", self.remove),
        ]

    def list_volumes(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        try:
            filters = call.filters(LIST_FILTERS)
        except InvalidParameter as error:
            raise InvalidParameter(f"error reading volume filters: {error}") from None
        return self._volumes.list_volumes(filters)

    def create(self, call: ApiCall) -> Deferred[Json]:
        return self._volumes.create(call.json_body()).addCallback(_created)

    def inspect(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._volumes.inspect(call.params["name"])

    def remove(self, call: ApiCall) -> Deferred[Empty]:
        removed = self._volumes.remove(call.params["name"], force=call.bool("force"))
        return removed.addCallback(_no_content)

    def update(self, call: ApiCall) -> NoReturn:
        """API 1.42: only cluster volumes can be updated, and this node has no swarm."""
        raise Unavailable("volume update only valid for cluster volumes, but swarm is "
                          "unavailable")

    def prune(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        anonymous_only = since(call.version, "1.42")
        return self._volumes.prune(call.filters(PRUNE_FILTERS), anonymous_only)

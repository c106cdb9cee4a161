"""Container routes: create, list, inspect, remove, rename, prune (nothing starts yet)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from dockertw.api import versions
from dockertw.api.responses import Empty, Json
from dockertw.api.router import ApiCall, Route
from dockertw.daemon.containers.listing import LIST_FILTERS, PRUNE_FILTERS
from dockertw.daemon.containers.service import CreateOptions, ListOptions
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters

__all__ = ["ContainerRouter", "ContainerBackend"]


class ContainerBackend(Protocol):
    def create(self, body: Any, options: CreateOptions) -> Deferred[dict[str, Any]]: ...
    def list_containers(self, options: ListOptions) -> Deferred[list[dict[str, Any]]]: ...
    def inspect(self, name: str, size: bool = False) -> Deferred[dict[str, Any]]: ...
    def remove(self, name: str, force: bool = False, volumes: bool = False,
               link: bool = False) -> Deferred[None]: ...
    def rename(self, old: str, new: str) -> Deferred[None]: ...
    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]: ...


def _limit(raw: str) -> int:
    """``limit``: an integer (Docker answers 500 for junk; a 400 here)."""
    if not raw:
        return -1
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


def _created(result: dict[str, Any]) -> Json:
    return Json(result, 201)


def _no_content(_: object) -> Empty:
    return Empty(204)


class ContainerRouter:
    def __init__(self, containers: ContainerBackend) -> None:
        self._containers = containers

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/containers/json", self.list_containers),
            Route("GET", "/containers/<path:name>/json", self.inspect),
            Route("POST", "/containers/create", self.create),
            Route("POST", "/containers/prune", self.prune),
            Route("POST", "/containers/<path:name>/rename", self.rename),
            Route("DELETE", "/containers/<path:name>", self.remove),
        ]

    def create(self, call: ApiCall) -> Deferred[Json]:
        platform = "" if versions.is_less(call.version, "1.41") else call.query("platform")
        options = CreateOptions(name=call.query("name"), platform=platform)
        return self._containers.create(call.json_body(), options).addCallback(_created)

    def list_containers(self, call: ApiCall) -> Deferred[list[dict[str, Any]]]:
        options = ListOptions(all=call.bool("all"), limit=_limit(call.query("limit")),
                              size=call.bool("size"), filters=call.filters(LIST_FILTERS))
        return self._containers.list_containers(options)

    def inspect(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._containers.inspect(call.params["name"], size=call.bool("size"))

    def remove(self, call: ApiCall) -> Deferred[Empty]:
        removed = self._containers.remove(call.params["name"], force=call.bool("force"),
                                          volumes=call.bool("v"), link=call.bool("link"))
        return removed.addCallback(_no_content)

    def rename(self, call: ApiCall) -> Deferred[Empty]:
        renamed = self._containers.rename(call.params["name"], call.query("name"))
        return renamed.addCallback(_no_content)

    def prune(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._containers.prune(call.filters(PRUNE_FILTERS))

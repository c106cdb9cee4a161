"""``GET /containers/json`` and ``POST /containers/prune`` filters, as Docker reads them."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from dockertw.daemon.containers.records.health import HEALTH_STATUSES
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.timestamps import parse_filter_time
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters

__all__ = ["LIST_FILTERS", "PRUNE_FILTERS", "STATUSES", "check_list_filters",
           "matches", "prune_matches", "check_prune_filters"]

LIST_FILTERS = frozenset({"ancestor", "before", "exited", "expose", "health", "id", "label",
                          "name", "network", "publish", "since", "status", "volume"})
PRUNE_FILTERS = frozenset({"until", "label", "label!"})
STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited",
                      "dead"})


def check_list_filters(filters: Filters) -> None:
    """Refuse unknown keys and bad ``status``/``exited`` values (400)."""
    filters.validate(LIST_FILTERS)
    for value in sorted(filters.get("status")):
        if value not in STATUSES:
            raise InvalidParameter(f"Invalid filter 'status={value}'")
    for value in sorted(filters.get("health")):
        if value not in HEALTH_STATUSES:
            raise InvalidParameter(f"invalid filter 'health={value}': invalid value for "
                                   f"health ({value}): must be one of "
                                   f"{', '.join(HEALTH_STATUSES)}")
    for value in sorted(filters.get("exited")):
        if not re.fullmatch(r"-?[0-9]+", value):
            raise InvalidParameter(f"Invalid filter 'exited={value}'")
    for key in ("name", "id"):
        for value in filters.get(key):
            try:
                re.compile(value)
            except re.error as error:
                raise InvalidParameter(f"invalid filter '{key}={value}': {error}") from None



def matches(filters: Filters, container: Container, *,
            ancestors: frozenset[str] | None, before: Container | None,
            since: Container | None) -> bool:
    """Whether ``container`` passes every list filter (``ancestors``: image IDs)."""
    if not (filters.exact_match("status", container.state_string)
            and filters.exact_match("health", container.health_status)
            and filters.regex_match("name", container.name)
            and filters.regex_match("id", container.id)
            and filters.match_labels("label", container.labels)):
        return False
    if "exited" in filters and (container.state_string != "exited" or str(
            container.state.exit_code) not in {str(int(v)) for v in filters.get("exited")}):
        return False
    if ancestors is not None and container.image_id not in ancestors \
            and str(container.config.get("Image")) not in filters.get("ancestor"):
        return False
    if "volume" in filters and not _uses_volume(filters.get("volume"), container):
        return False
    if not _network_matches(filters, container):
        return False
    if before is not None and container.created_ns >= before.created_ns:
        return False
    return since is None or container.created_ns > since.created_ns


def _network_matches(filters: Filters, container: Container) -> bool:
    """``network=`` (a network's name or ID), ``publish=``/``expose=`` (``80``,
    ``80/tcp``, ``8000-8080/tcp``: a published host port, an exposed container port)."""
    networks = container.networks
    if "network" in filters and not any(
            value in networks or any(str(entry.get("NetworkID") or "").startswith(value)
                                     for entry in networks.values() if value)
            for value in filters.get("network")):
        return False
    ports = container.network_settings.get("Ports") or {} if container.running else {}
    published = {(int(b["HostPort"]), key.partition("/")[2])
                 for key, bindings in ports.items() for b in bindings or ()}
    exposed = {(int(key.partition("/")[0]), key.partition("/")[2] or "tcp")
               for key in container.config.get("ExposedPorts") or {}}
    return _ports_match(filters.get("publish"), published) and \
        _ports_match(filters.get("expose"), exposed)


def _ports_match(values: frozenset[str], ports: set[tuple[int, str]]) -> bool:
    for value in values:
        numbers, _, proto = value.partition("/")
        low, _, high = numbers.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise InvalidParameter(f"invalid port range: {value}")
        wanted = range(int(low), int(high or low) + 1)
        if not any(port in wanted and found == (proto or "tcp") for port, found in ports):
            return False
    return True


def _uses_volume(values: frozenset[str], container: Container) -> bool:
    """``volume=``: a mount's volume name, source or destination is one of ``values``."""
    return any(point.get(key) in values for point in container.mount_points
               for key in ("name", "source", "destination"))


def check_prune_filters(filters: Filters) -> None:
    filters.validate(PRUNE_FILTERS)
    _until_ns(filters, time.time())


def _until_ns(filters: Filters, now: float) -> int | None:
    values = filters.get("until")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter("more than one until filter specified")
    return int(parse_filter_time(next(iter(values)), now) * 1_000_000_000)


def prune_matches(filters: Filters, now: float | None = None
                  ) -> Callable[[Container], bool]:
    """A predicate choosing the (stopped) containers ``docker container prune`` removes."""
    until = _until_ns(filters, time.time() if now is None else now)

    def chosen(container: Container) -> bool:
        if container.running or (until is not None and container.created_ns > until):
            return False
        labels = container.labels
        if "label" in filters and not filters.match_labels("label", labels):
            return False
        return not ("label!" in filters and filters.match_labels("label!", labels))

    return chosen


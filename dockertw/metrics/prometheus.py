"""The daemon's metrics in Prometheus' text format (``--metrics-listen``).

:class:`PrometheusMeter` receives what the daemon measures through
:mod:`dockertw.meters`; :class:`EventCounter` counts what the event bus publishes
(container starts, stops and OOM kills, image pulls, every event); a collector reads
the containers by state at each scrape.  All of it goes to one private registry,
served by ``prometheus_client``'s Twisted resource.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from twisted.web.resource import IResource

from dockertw import meters
from dockertw.daemon.events import Event
from dockertw.filters import Filters

__all__ = ["PrometheusMeter", "EventCounter", "ContainerStates", "new_registry",
           "metrics_resource"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0, 30.0)
_RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# meters' name: (kind, exported name, help, label names, histogram buckets)
_DECLARED: dict[str, tuple[type, str, str, tuple[str, ...], tuple[float, ...]]] = {
    meters.HTTP_REQUESTS: (Counter, "dockertw_http_requests", "API requests answered",
                           ("listener", "route", "method", "status"), ()),
    meters.HTTP_SECONDS: (Histogram, "dockertw_http_request_duration_seconds",
                          "Time from a request's arrival to its answer (to the hijack "
                          "for attach and exec start)", ("listener", "route"),
                          _LATENCY_BUCKETS),
    meters.OPEN_CONNECTIONS: (Gauge, "dockertw_http_open_connections",
                              "Connections open, hijacked ones included", ("listener",), ()),
    meters.HIJACKED_STREAMS: (Gauge, "dockertw_http_hijacked_streams",
                              "Hijacked streams open (attach, exec start)", ("listener",), ()),
    meters.RUNTIME_SECONDS: (Histogram, "dockertw_runtime_call_duration_seconds",
                             "Time an OCI runtime (runc) command took", ("command",),
                             _RUNTIME_BUCKETS),
    meters.PULL_BYTES: (Counter, "dockertw_image_pull_bytes",
                        "Bytes of layers downloaded from registries", (), ()),
    meters.POLICY_DECISIONS: (Counter, "dockertw_policy_decisions",
                              "Access policy decisions (allow, deny, would_deny in log-only "
                              "mode)", ("listener", "route", "decision"), ()),
}


def new_registry() -> CollectorRegistry:
    """A registry with the process's own metrics (CPU, memory, descriptors, Python)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class PrometheusMeter:
    """A :class:`dockertw.meters.Meter` that keeps Prometheus metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._metrics: dict[str, Any] = {}
        for name, (kind, exported, text, labels, buckets) in _DECLARED.items():
            extra = {"buckets": buckets} if buckets else {}
            self._metrics[name] = kind(exported, text, labels, registry=registry, **extra)
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _child(self, metric: str, labels: tuple[str, ...]) -> Any:
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            family = self._metrics[metric]
            child = self._children[key] = family.labels(*labels) if labels else family
        return child

    def count(self, metric: str, labels: tuple[str, ...] = (), amount: float = 1.0
              ) -> None:
        self._child(metric, labels).inc(amount)

    def observe(self, metric: str, value: float, labels: tuple[str, ...] = ()) -> None:
        self._child(metric, labels).observe(value)

    def adjust(self, metric: str, delta: float, labels: tuple[str, ...] = ()) -> None:
        self._child(metric, labels).inc(delta)


class _Subscribing(Protocol):
    def subscribe(self, filters: Filters, deliver: Any, *, counted: bool = True) -> Any: ...


class EventCounter:
    """Counts what the event bus publishes: every event by type and action, and
    container starts, stops (``die``) and OOM kills, and image pulls."""

    _CONTAINER = {"start": "starts", "die": "stops", "oom": "oom_kills"}

    def __init__(self, registry: CollectorRegistry) -> None:
        self._events = Counter("dockertw_events", "Events published",
                               ("type", "action"), registry=registry)
        self._containers = {
            action: Counter(f"dockertw_container_{name}", f"Container {name.replace('_', ' ')}",
                            registry=registry)
            for action, name in self._CONTAINER.items()}
        self._pulls = Counter("dockertw_image_pulls", "Images pulled", registry=registry)

    def follow(self, bus: _Subscribing) -> Any:
        """Count every event ``bus`` publishes from now on."""
        return bus.subscribe(Filters(), self.seen, counted=False)

    def seen(self, event: Event) -> None:
        action = event.action.split(":", 1)[0]  # exec_start: <command> -> exec_start
        self._events.labels(event.type, action).inc()
        if event.type == "container" and action in self._containers:
            self._containers[action].inc()
        elif event.type == "image" and action == "pull":
            self._pulls.inc()


class _Counting(Protocol):
    def container_counts(self) -> tuple[int, int, int]: ...


class ContainerStates(Collector):
    """``dockertw_containers{state}``, read at each scrape."""

    def __init__(self, containers: _Counting) -> None:
        self._containers = containers

    def collect(self) -> Iterator[Metric]:
        running, paused, stopped = self._containers.container_counts()
        family = _state_family()
        for state, number in (("running", running), ("paused", paused),
                              ("stopped", stopped)):
            family.add_metric((state,), number)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield _state_family()


def _state_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("dockertw_containers", "Containers by state", labels=("state",))


def metrics_resource(registry: CollectorRegistry) -> IResource:
    """What the metrics listener serves (every path): the registry's exposition."""
    from prometheus_client.twisted import MetricsResource

    resource: IResource = MetricsResource(registry)
    return resource

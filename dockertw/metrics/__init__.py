"""``--metrics-listen``: the daemon's metrics for Prometheus.

The rest of the daemon measures through :mod:`dockertw.meters` and publishes events;
this package turns both into Prometheus metrics (with ``prometheus-client``).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, disable_created_metrics

from dockertw import meters
from dockertw.metrics.prometheus import (
    ContainerStates,
    EventCounter,
    PrometheusMeter,
    metrics_resource,
    new_registry,
)

__all__ = ["start_metrics", "metrics_resource"]


def start_metrics(events: Any, containers: Any) -> CollectorRegistry:
    """Measure from now on: install the meter, follow ``events`` (an event bus), count
    ``containers`` by state at each scrape; the registry to serve."""
    disable_created_metrics()  # no *_created series beside every counter
    registry = new_registry()
    meters.use(PrometheusMeter(registry))
    EventCounter(registry).follow(events)
    registry.register(ContainerStates(containers))
    return registry

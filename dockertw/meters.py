"""What the daemon measures, published through one small interface.

Any layer counts, observes or adjusts a named metric here, with its label values in
the order the metric names them; it knows nothing of Prometheus.  Until a
:class:`Meter` is installed with :func:`use` (``--metrics-listen``), every call does
nothing.  The metrics themselves (names, help, label names, buckets) are declared
where they are exported (:mod:`dockertw.metrics`).
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Meter", "use", "enabled", "count", "observe", "adjust", "HTTP_REQUESTS", "HTTP_SECONDS",
           "OPEN_CONNECTIONS", "HIJACKED_STREAMS", "RUNTIME_SECONDS", "PULL_BYTES",
           "POLICY_DECISIONS"]

# name: label names
HTTP_REQUESTS = "http_requests"  # listener, route, method, status
HTTP_SECONDS = "http_request_seconds"  # listener, route
OPEN_CONNECTIONS = "open_connections"  # listener
HIJACKED_STREAMS = "hijacked_streams"  # listener
RUNTIME_SECONDS = "runtime_call_seconds"  # command
PULL_BYTES = "image_pull_bytes"  # (none)
POLICY_DECISIONS = "policy_decisions"  # listener, route, decision


class Meter(Protocol):
    """Where measurements go: counters, histograms (observe) and gauges (adjust)."""

    def count(self, metric: str, labels: tuple[str, ...] = (), amount: float = 1.0
              ) -> None: ...
    def observe(self, metric: str, value: float, labels: tuple[str, ...] = ()) -> None: ...
    def adjust(self, metric: str, delta: float, labels: tuple[str, ...] = ()) -> None: ...


class _Nothing:
    def count(self, metric: str, labels: tuple[str, ...] = (), amount: float = 1.0
              ) -> None:
        pass

    def observe(self, metric: str, value: float, labels: tuple[str, ...] = ()) -> None:
        pass

    def adjust(self, metric: str, delta: float, labels: tuple[str, ...] = ()) -> None:
        pass


_meter: Meter = _Nothing()


def use(meter: Meter | None) -> None:
    """Send every measurement to ``meter`` from now on (``None``: measure nothing)."""
    global _meter
    _meter = meter if meter is not None else _Nothing()


def enabled() -> bool:
    """Whether a meter is installed (callers skip costly preparation otherwise)."""
    return not isinstance(_meter, _Nothing)


def count(metric: str, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
    _meter.count(metric, labels, amount)


def observe(metric: str, value: float, labels: tuple[str, ...] = ()) -> None:
    _meter.observe(metric, value, labels)


def adjust(metric: str, delta: float, labels: tuple[str, ...] = ()) -> None:
    _meter.adjust(metric, delta, labels)

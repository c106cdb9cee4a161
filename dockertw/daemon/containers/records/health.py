"""Health checks as data: a container's ``Healthcheck`` and ``State.Health``, and the
rules moby's health monitor follows (``daemon/health.go``).

A probe runs ``Interval`` after the previous one ended (``StartInterval`` while the
container is ``starting`` within its ``StartPeriod``); a probe exiting 0 makes it
``healthy``; ``Retries`` failures in a row make it ``unhealthy``, failures within the
start period not counted while it is still ``starting``.  The last five results are
kept, each output cut at 4096 bytes.  The scheduling itself is
:mod:`dockertw.daemon.containers.running.health`'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dockertw.daemon.images.views import rfc3339_nano
from dockertw.daemon.jsonlog import parse_time
from dockertw.errdefs import InvalidParameter

__all__ = ["HealthConfig", "HealthResult", "Health", "check_healthcheck", "next_health",
           "probe_interval", "limited_output", "go_duration", "STARTING", "HEALTHY",
           "UNHEALTHY", "NO_HEALTHCHECK", "HEALTH_STATUSES"]

STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK = "starting", "healthy", "unhealthy", "none"
HEALTH_STATUSES = (NO_HEALTHCHECK, STARTING, HEALTHY, UNHEALTHY)
_SECOND = 1_000_000_000
_MINIMUM = 1_000_000  # 1ms, the shortest duration a Healthcheck may give
_DEFAULT_INTERVAL = 30 * _SECOND
_DEFAULT_TIMEOUT = 30 * _SECOND
_DEFAULT_START_INTERVAL = 5 * _SECOND
_DEFAULT_RETRIES = 3
_MAX_LOG = 5
_MAX_OUTPUT = 4096
_DURATIONS = ("Interval", "Timeout", "StartPeriod", "StartInterval")


def _duration(value: Any, key: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"invalid JSON: Healthcheck.{key} must be an integer")
    return value


def check_healthcheck(value: Any) -> None:
    """moby's ``validateHealthCheck`` (400 with its messages)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidParameter("invalid JSON: Healthcheck must be an object")
    test = value.get("Test")
    if test is not None and (not isinstance(test, list)
                             or not all(isinstance(word, str) for word in test)):
        raise InvalidParameter("invalid JSON: Healthcheck.Test must be an array of strings")
    for key in _DURATIONS:
        duration = _duration(value.get(key), key)
        if duration and duration < _MINIMUM:
            raise InvalidParameter(f"{key} in Healthcheck cannot be less than 1ms")
    retries = value.get("Retries") or 0
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise InvalidParameter("invalid JSON: Healthcheck.Retries must be an integer")
    if retries < 0:
        raise InvalidParameter("Retries in Healthcheck cannot be negative")


@attrs.frozen
class HealthConfig:
    """A container's probe: its command and timing (nanoseconds; 0: the default)."""

    command: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> HealthConfig | None:
        """The probe of a container's Config (``None``: no probe, or ``NONE``);
        ``CMD-SHELL`` runs its command with ``Shell`` (``/bin/sh -c``)."""
        healthcheck = config.get("Healthcheck")
        if not isinstance(healthcheck, dict):
            return None
        test = list(healthcheck.get("Test") or ())
        if not test or test[0] not in ("CMD", "CMD-SHELL") or len(test) < 2:
            return None
        command = test[1:]
        if test[0] == "CMD-SHELL":
            command = list(config.get("Shell") or ("/bin/sh", "-c")) + command
        def nanoseconds(key: str) -> int:
            return int(healthcheck.get(key) or 0)

        return cls(tuple(command), interval=nanoseconds("Interval"),
                   timeout=nanoseconds("Timeout"), start_period=nanoseconds("StartPeriod"),
                   start_interval=nanoseconds("StartInterval"),
                   retries=int(healthcheck.get("Retries") or 0))

    @property
    def probe_timeout(self) -> int:
        return self.timeout or _DEFAULT_TIMEOUT


@attrs.frozen
class HealthResult:
    """One probe's run (``HealthcheckResult``)."""

    start_ns: int
    end_ns: int
    exit_code: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"Start": rfc3339_nano(self.start_ns), "End": rfc3339_nano(self.end_ns),
                "ExitCode": self.exit_code, "Output": self.output}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> HealthResult:
        return cls(_time_ns(value.get("Start")), _time_ns(value.get("End")),
                   int(value.get("ExitCode") or 0), str(value.get("Output") or ""))


def _time_ns(text: Any) -> int:
    try:
        return parse_time(str(text))
    except ValueError:
        return 0


@attrs.frozen
class Health:
    """``State.Health``: the status, the failures in a row, the last results."""

    status: str = STARTING
    failing_streak: int = 0
    log: tuple[HealthResult, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak,
                "Log": [result.to_json() for result in self.log]}

    @classmethod
    def from_json(cls, value: Any) -> Health | None:
        if not isinstance(value, dict):
            return None
        return cls(str(value.get("Status") or UNHEALTHY), int(value.get("FailingStreak") or 0),
                   tuple(HealthResult.from_json(item) for item in value.get("Log") or ()
                         if isinstance(item, dict)))

    def shown(self) -> str:
        """As ``docker ps`` shows it: ``health: starting``, ``healthy``, ``unhealthy``."""
        return "health: starting" if self.status == STARTING else self.status


def next_health(health: Health, result: HealthResult, config: HealthConfig,
                started_ns: int) -> Health:
    """The health after ``result`` (moby's ``handleProbeResult``)."""
    log = (*health.log, result)[-_MAX_LOG:]
    if result.exit_code == 0:
        return Health(HEALTHY, 0, log)
    within_start = result.start_ns - started_ns < config.start_period
    if health.status == STARTING and within_start:
        return attrs.evolve(health, log=log)
    streak = health.failing_streak + 1
    retries = config.retries if config.retries > 0 else _DEFAULT_RETRIES
    return Health(UNHEALTHY if streak >= retries else health.status, streak, log)


def probe_interval(config: HealthConfig, status: str, started_ns: int, now_ns: int) -> int:
    """Nanoseconds until the next probe (moby's ``getInterval``)."""
    interval = config.interval or _DEFAULT_INTERVAL
    if now_ns - started_ns >= config.start_period or status != STARTING:
        return interval
    return config.start_interval or _DEFAULT_START_INTERVAL


def limited_output(chunks: Sequence[bytes]) -> str:
    """A probe's output as kept: 4096 bytes, then ``...`` when there was more."""
    data = b"".join(chunks)
    text = data[:_MAX_OUTPUT].decode("utf-8", "replace")
    return text + "..." if len(data) > _MAX_OUTPUT else text


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String`` (``1s``, ``1.5s``, ``500ms``, ``1m30s``)."""
    if nanoseconds == 0:
        return "0s"
    if nanoseconds < _SECOND:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if nanoseconds >= size:
                return _decimal(nanoseconds, size) + unit
    hours, rest = divmod(nanoseconds, 3600 * _SECOND)
    minutes, rest = divmod(rest, 60 * _SECOND)
    text = f"{hours}h" if hours else ""
    text += f"{minutes}m" if hours or minutes else ""
    return text + _decimal(rest, _SECOND) + "s"


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    digits = f"{fraction:0{len(str(unit)) - 1}d}".rstrip("0") if unit > 1 else ""
    return f"{whole}.{digits}" if digits else str(whole)

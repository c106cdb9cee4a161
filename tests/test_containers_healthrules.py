"""Health-check rules as moby's monitor applies them (pure functions, no daemon)."""

from __future__ import annotations

import pytest

from dockertw.daemon.containers.records import config as configs
from dockertw.daemon.containers.records.health import (
    HEALTHY,
    STARTING,
    UNHEALTHY,
    Health,
    HealthConfig,
    HealthResult,
    check_healthcheck,
    go_duration,
    limited_output,
    next_health,
    probe_interval,
)
from dockertw.errdefs import InvalidParameter

S = 1_000_000_000


def _result(start_s: float, code: int) -> HealthResult:
    return HealthResult(int(start_s * S), int(start_s * S) + 1, code, "")


def test_config_of_a_container():
    assert HealthConfig.of({}) is None
    assert HealthConfig.of({"Healthcheck": {"Test": ["NONE"]}}) is None
    assert HealthConfig.of({"Healthcheck": {"Test": []}}) is None
    assert HealthConfig.of({"Healthcheck": {"Test": ["BOGUS", "x"]}}) is None
    shell = HealthConfig.of({"Healthcheck": {"Test": ["CMD-SHELL", "exit 1"], "Retries": 2,
                                             "Interval": S}})
    assert shell == HealthConfig(("/bin/sh", "-c", "exit 1"), interval=S, retries=2)
    custom = HealthConfig.of({"Shell": ["/bin/ash", "-e", "-c"],
                              "Healthcheck": {"Test": ["CMD-SHELL", "true"]}})
    assert custom is not None and custom.command == ("/bin/ash", "-e", "-c", "true")
    assert custom.probe_timeout == 30 * S


def test_results_make_the_status():
    config = HealthConfig(("true",), retries=2, start_period=10 * S)
    health = Health()
    health = next_health(health, _result(1, 1), config, 0)  # within the start period
    assert (health.status, health.failing_streak, len(health.log)) == (STARTING, 0, 1)
    health = next_health(health, _result(11, 1), config, 0)
    assert (health.status, health.failing_streak) == (STARTING, 1)
    health = next_health(health, _result(12, 1), config, 0)
    assert (health.status, health.failing_streak) == (UNHEALTHY, 2)
    health = next_health(health, _result(13, 0), config, 0)
    assert (health.status, health.failing_streak) == (HEALTHY, 0)
    for second in range(14, 20):
        health = next_health(health, _result(second, 2), config, 0)
    assert len(health.log) == 5 and health.log[-1].start_ns == 19 * S
    # a healthy container's failures count even within the start period
    early = next_health(Health(HEALTHY), _result(1, 1), HealthConfig(("x",), retries=1,
                                                                     start_period=10 * S), 0)
    assert early.status == UNHEALTHY


def test_intervals():
    config = HealthConfig(("true",), interval=2 * S, start_period=10 * S)
    assert probe_interval(config, STARTING, 0, 1 * S) == 5 * S  # the default start interval
    assert probe_interval(config, HEALTHY, 0, 1 * S) == 2 * S
    assert probe_interval(config, STARTING, 0, 10 * S) == 2 * S
    assert probe_interval(HealthConfig(("true",)), STARTING, 0, 0) == 30 * S
    assert probe_interval(HealthConfig(("t",), start_interval=S, start_period=5 * S),
                          STARTING, 0, 0) == S


def test_output_and_durations():
    assert limited_output([b"a" * 4000, b"b" * 96]) == "a" * 4000 + "b" * 96
    assert limited_output([b"a" * 4097]) == "a" * 4096 + "..."
    assert limited_output([b"\xff ok"]) == "\ufffd ok"
    assert [go_duration(n) for n in (0, 500_000_000, S, 1_500_000_000, 90 * S, 3600 * S,
                                     1500, 7)] == \
        ["0s", "500ms", "1s", "1.5s", "1m30s", "1h0m0s", "1.5µs", "7ns"]


def test_checks_and_merge_with_the_image():
    check_healthcheck(None)
    check_healthcheck({"Test": ["CMD", "true"], "Interval": 1_000_000})
    for value, message in [({"Interval": 999_999}, "Interval in Healthcheck cannot be less"),
                           ({"StartInterval": 1}, "StartInterval in Healthcheck cannot"),
                           ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
                           ({"Test": "true"}, "Healthcheck.Test must be an array"),
                           ("x", "Healthcheck must be an object")]:
        with pytest.raises(InvalidParameter, match=message):
            check_healthcheck(value)
    image = {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 5 * S, "Retries": 2}}
    user = {"Healthcheck": {"Interval": S}}
    configs.merge_image_config(user, image)
    assert user["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": S, "Retries": 2}
    none = {"Healthcheck": {"Test": ["NONE"]}}
    configs.merge_image_config(none, image)
    assert none["Healthcheck"]["Test"] == ["NONE"]
    inherited: dict = {}
    configs.merge_image_config(inherited, image)
    assert inherited["Healthcheck"] == image["Healthcheck"]


def test_health_is_kept_with_the_record():
    health = Health(HEALTHY, 0, (HealthResult(1_700_000_000_123_456_789,
                                              1_700_000_001_000_000_000, 0, "ok\n"),))
    shown = health.to_json()
    assert shown["Log"][0]["Start"] == "2023-11-14T22:13:20.123456789Z"
    assert Health.from_json(shown) == health
    assert Health.from_json(None) is None
    assert Health(STARTING).shown() == "health: starting" and health.shown() == "healthy"

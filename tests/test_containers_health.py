"""Acceptance: health checks as Docker runs them, with the real CLI.

``--health-*`` flags and an image's ``HEALTHCHECK``, ``State.Health`` (status,
failing streak, the last five results, output cut at 4096 bytes, the timeout's
message), Docker's timing (interval, retries, start period with the default 5 s start
interval), ``health_status`` events, ``(healthy)`` in ``docker ps``, the ``health``
filter; a stopped container is ``unhealthy``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import cli, import_image, inspect, ok
from tests.support import Daemon, post_json

pytestmark = pytest.mark.integration


def _health(daemon: Daemon, name: str) -> dict[str, Any] | None:
    return inspect(daemon, name)["State"].get("Health")


def _seconds_until(daemon: Daemon, name: str, status: str, started: float,
                   timeout: float = 15) -> float:
    """Seconds from ``started`` until the container's health is ``status``."""
    while time.monotonic() - started < timeout:
        health = _health(daemon, name)
        if health and health["Status"] == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{name} never became {status}: {_health(daemon, name)}")


def _run(daemon: Daemon, name: str, *options: str) -> float:
    ok(daemon, "run", "-d", "--name", name, *options, "bb:1", "sleep", "1000")
    return time.monotonic()


def test_passing_and_failing_checks_at_dockers_times(running_daemon: Daemon):
    daemon = running_daemon
    since = str(int(time.time()) - 1)
    started = _run(daemon, "good", "--health-cmd", "echo hello", "--health-interval", "1s",
                   "--health-retries", "1")
    assert _health(daemon, "good") == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert "(health: starting)" in ok(daemon, "ps", "--format", "{{.Status}}")
    assert 0.6 < _seconds_until(daemon, "good", "healthy", started) < 3.5
    started = _run(daemon, "bad", "--health-cmd", "exit 3", "--health-interval", "1s",
                   "--health-retries", "3")
    assert 2.5 < _seconds_until(daemon, "bad", "unhealthy", started) < 7
    bad = _health(daemon, "bad")
    assert bad is not None and bad["FailingStreak"] == 3
    assert [entry["ExitCode"] for entry in bad["Log"]] == [3, 3, 3]
    good = _health(daemon, "good")
    assert good is not None and good["Log"][0]["Output"] == "hello\n"
    assert good["Log"][0]["Start"] < good["Log"][0]["End"]
    # within the start period failures do not count, and probes come every 5 s
    started = _run(daemon, "slow", "--health-cmd", "false", "--health-interval", "1s",
                   "--health-retries", "1", "--health-start-period", "2s")
    assert 4.5 < _seconds_until(daemon, "slow", "unhealthy", started, 12) < 9
    shown = ok(daemon, "ps", "--format", "{{.Names}} {{.Status}}").splitlines()
    assert any(line.startswith("good Up") and line.endswith("(healthy)") for line in shown)
    assert any(line.startswith("bad Up") and line.endswith("(unhealthy)") for line in shown)
    assert ok(daemon, "ps", "--filter", "health=healthy", "--format", "{{.Names}}") == "good\n"
    assert sorted(ok(daemon, "ps", "--filter", "health=unhealthy", "--format",
                     "{{.Names}}").split()) == ["bad", "slow"]
    refused = cli(daemon, "ps", "--filter", "health=great")
    assert refused.returncode != 0 and "invalid filter 'health=great'" in refused.stderr
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", "event=health_status", "--format", "{{.Actor.Attributes.name}} "
                "{{.Action}}").splitlines()
    assert "good health_status: healthy" in events and "bad health_status: unhealthy" in events
    ok(daemon, "stop", "-t", "0", "good")
    stopped = _health(daemon, "good")
    assert stopped is not None and stopped["Status"] == "unhealthy"
    assert ok(daemon, "ps", "-a", "--filter", "name=good", "--format",
              "{{.Status}}").startswith("Exited")
    ok(daemon, "rm", "-f", "good", "bad", "slow")


def test_timeout_output_cap_and_log_length(running_daemon: Daemon):
    daemon = running_daemon
    started = _run(daemon, "hang", "--health-cmd", "echo partial; sleep 5",
                   "--health-timeout", "500ms", "--health-interval", "1s",
                   "--health-retries", "1")
    _seconds_until(daemon, "hang", "unhealthy", started)
    hang = _health(daemon, "hang")
    assert hang is not None
    assert hang["Log"][0]["ExitCode"] == -1
    assert hang["Log"][0]["Output"] == "Health check exceeded timeout (500ms): partial\n"
    started = _run(daemon, "loud", "--health-cmd", "head -c 5000 /dev/zero | tr '\\0' x",
                   "--health-interval", "100ms")
    _seconds_until(daemon, "loud", "healthy", started)
    deadline = time.monotonic() + 10
    while len((_health(daemon, "loud") or {})["Log"]) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    loud = _health(daemon, "loud")
    assert loud is not None and len(loud["Log"]) == 5
    assert loud["Log"][-1]["Output"] == "x" * 4096 + "..."
    ok(daemon, "rm", "-f", "hang", "loud")


def test_image_healthcheck_flags_and_idle_cost(running_daemon: Daemon, busybox_tar: Path):
    daemon = running_daemon
    import_image(daemon, busybox_tar, "--change",
                 'HEALTHCHECK --interval=1s --retries=1 CMD ["true"]', "checked:1")
    started = time.monotonic()
    ok(daemon, "run", "-d", "--name", "img", "checked:1", "sleep", "1000")
    assert inspect(daemon, "img")["Config"]["Healthcheck"]["Test"] == ["CMD", "true"]
    _seconds_until(daemon, "img", "healthy", started)
    ok(daemon, "run", "-d", "--name", "off", "--no-healthcheck", "checked:1", "sleep", "1000")
    assert _health(daemon, "off") is None
    assert ok(daemon, "ps", "--filter", "health=none", "--format", "{{.Names}}") == "off\n"
    # flags override the image's timing and keep its command
    ok(daemon, "create", "--name", "mixed", "--health-interval", "5s", "checked:1", "true")
    mixed = inspect(daemon, "mixed")["Config"]["Healthcheck"]
    assert (mixed["Test"], mixed["Interval"], mixed["Retries"]) == \
        (["CMD", "true"], 5_000_000_000, 1)
    ok(daemon, "rm", "-f", "img", "off", "mixed")  # img probes every second
    for name in ("idle1", "idle2", "idle3"):
        _run(daemon, name, "--health-cmd", "true", "--health-interval", "1h")
    assert daemon.process is not None
    children = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(daemon.process.pid)],
                              capture_output=True, text=True).stdout.splitlines()
    assert len(children) == 3, children  # the containers' inits, no helper per container
    refused = cli(daemon, "create", "--health-interval", "10us", "bb:1", "true")
    assert refused.returncode != 0
    ok(daemon, "rm", "-f", "idle1", "idle2", "idle3")


def test_healthcheck_reaches_the_api_as_docker_takes_it(running_daemon: Daemon):
    daemon = running_daemon
    socket = str(daemon.socket)
    body = {"Image": "bb:1", "Cmd": ["true"],
            "Healthcheck": {"Test": ["CMD-SHELL", "true"], "StartInterval": 2_000_000_000,
                            "Interval": 1_000_000_000}}
    status, answer = post_json(socket, "/v1.41/containers/create", body)
    assert status == 201, answer
    created = inspect(daemon, json.loads(answer)["Id"])["Config"]["Healthcheck"]
    assert "StartInterval" not in created  # a 1.44 field, dropped for older clients
    for field, value, message in [
            ("Interval", 1000, "Interval in Healthcheck cannot be less than 1ms"),
            ("Timeout", 10, "Timeout in Healthcheck cannot be less than 1ms"),
            ("StartPeriod", 5, "StartPeriod in Healthcheck cannot be less than 1ms"),
            ("Retries", -1, "Retries in Healthcheck cannot be negative")]:
        status, answer = post_json(socket, "/v1.41/containers/create", {
            "Image": "bb:1", "Cmd": ["true"],
            "Healthcheck": {"Test": ["CMD", "true"], field: value}})
        assert (status, json.loads(answer)["message"]) == (400, message)

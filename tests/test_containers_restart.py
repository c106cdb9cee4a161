"""Restart policies, ``docker update`` and a daemon killed with running containers.

All with the real ``docker`` CLI against a real daemon running busybox containers.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from dockertw.runtime.mounts import mounts_under
from tests.cli import cli, inspect, ok
from tests.support import Daemon, process_alive, wait_for

pytestmark = pytest.mark.integration


def state(daemon: Daemon, name: str) -> dict[str, Any]:
    return dict(inspect(daemon, name)["State"])


def test_on_failure_restarts_up_to_the_limit(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "of", "--restart", "on-failure:2", "bb:1",
       "sh", "-c", "echo run; exit 3")
    wait_for(lambda: inspect(daemon, "of")["RestartCount"] == 2
             and state(daemon, "of")["Status"] == "exited", "two restarts")
    time.sleep(0.5)  # no third run
    shown = inspect(daemon, "of")
    assert shown["RestartCount"] == 2 and shown["State"]["ExitCode"] == 3
    assert ok(daemon, "logs", "of") == "run\n" * 3
    # a success is never restarted by on-failure
    ok(daemon, "run", "-d", "--name", "good", "--restart", "on-failure", "bb:1", "true")
    wait_for(lambda: state(daemon, "good")["Status"] == "exited", "good to exit")
    time.sleep(0.3)
    assert inspect(daemon, "good")["RestartCount"] == 0


def test_always_restarts_until_stopped_and_events_show_it(running_daemon: Daemon):
    daemon = running_daemon
    since = str(int(time.time()) - 1)
    ok(daemon, "run", "-d", "--name", "al", "--restart", "always", "bb:1",
       "sh", "-c", "sleep 0.1")
    wait_for(lambda: inspect(daemon, "al")["RestartCount"] >= 2, "two restarts")
    ok(daemon, "stop", "-t", "1", "al")
    after_stop = inspect(daemon, "al")
    assert after_stop["State"]["Status"] == "exited"
    time.sleep(0.6)
    assert inspect(daemon, "al")["RestartCount"] == after_stop["RestartCount"]
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", "container=al", "--format", "{{.Action}}").split()
    assert events.count("start") >= 2 and events.count("die") >= 2
    assert events[-1] == "stop"
    # a user's start resets the count
    ok(daemon, "start", "al")
    assert inspect(daemon, "al")["RestartCount"] == 0
    ok(daemon, "rm", "-f", "al")


def test_restarting_container_refuses_rm_without_force(running_daemon: Daemon):
    daemon = running_daemon
    container_id = ok(daemon, "run", "-d", "--name", "rs", "--restart", "always",
                      "bb:1", "sh", "-c", "exit 1").strip()
    found: list[str] = []

    def restarting() -> bool:
        found.append(state(daemon, "rs")["Status"])
        return found[-1] == "restarting"

    wait_for(restarting, "the restarting status")
    refused = cli(daemon, "rm", "rs")
    if refused.returncode != 0:  # it may be running again at this very moment
        assert container_id in refused.stderr
    ok(daemon, "rm", "-f", "rs")
    assert ok(daemon, "ps", "-aq") == ""


def test_update_restart_policy_and_limits(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "create", "--name", "up", "bb:1", "sh", "-c", "exit 5")
    ok(daemon, "update", "--restart", "on-failure:1", "up")
    assert inspect(daemon, "up")["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure", "MaximumRetryCount": 1}
    ok(daemon, "start", "up")
    wait_for(lambda: inspect(daemon, "up")["RestartCount"] == 1
             and state(daemon, "up")["Status"] == "exited", "one restart")
    # limits of a running container change in its cgroup
    ok(daemon, "run", "-d", "--name", "lim", "bb:1", "sleep", "100")
    ok(daemon, "update", "--memory", "64m", "--pids-limit", "50", "lim")
    host = inspect(daemon, "lim")["HostConfig"]
    assert host["Memory"] == 64 * 1024 * 1024 and host["PidsLimit"] == 50
    cgroup = [p for p in daemon.container_cgroups() if (p / "pids.max").exists()]
    limits = {p.name: (p / "pids.max").read_text().strip() for p in cgroup}
    assert "50" in limits.values(), limits
    ok(daemon, "rm", "-f", "lim")


def test_update_errors(running_daemon: Daemon):
    daemon = running_daemon
    container_id = ok(daemon, "run", "-d", "--rm", "--name", "auto", "bb:1",
                      "sleep", "100").strip()
    refused = cli(daemon, "update", "--restart", "always", "auto")
    assert refused.returncode != 0
    assert (f"Cannot update container {container_id}: Restart policy cannot be updated "
            "because AutoRemove is enabled for the container") in refused.stderr
    assert "invalid restart policy" in cli(daemon, "update", "--restart", "sometimes",
                                           "auto").stderr
    assert "No such container: nothere" in cli(daemon, "update", "--restart", "no",
                                               "nothere").stderr
    ok(daemon, "rm", "-f", "auto")


def test_daemon_killed_with_running_containers(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "plain", "bb:1", "sleep", "1000")
    ok(daemon, "run", "-d", "--name", "back", "--restart", "always", "bb:1",
       "sleep", "1000")
    ok(daemon, "run", "-d", "--name", "us", "--restart", "unless-stopped", "bb:1",
       "sleep", "1000")
    ok(daemon, "stop", "-t", "0", "us")
    ok(daemon, "run", "-d", "--name", "gone", "--rm", "bb:1", "sleep", "1000")
    pids = {name: state(daemon, name)["Pid"] for name in ("plain", "back", "gone")}
    daemon.stop(signal.SIGKILL)
    assert all(process_alive(pid) for pid in pids.values())  # orphans, out of reach
    daemon.start()
    try:
        wait_for(lambda: not any(process_alive(pid) for pid in pids.values()),
                 "the old containers to be killed")
        assert state(daemon, "plain")["Status"] == "exited"
        assert state(daemon, "plain")["ExitCode"] == 137
        wait_for(lambda: state(daemon, "back")["Running"], "the always container")
        assert state(daemon, "back")["Pid"] != pids["back"]
        assert state(daemon, "us")["Status"] == "exited"  # stopped by the user
        wait_for(lambda: "gone" not in ok(daemon, "ps", "-a", "--format", "{{.Names}}"),
                 "the --rm container to be removed")
        mounted = {path.parent.name for path in mounts_under(daemon.root)}
        assert mounted == {inspect(daemon, "back")["Id"]}
    finally:
        for pid in pids.values():  # never leave a process behind, even on failure
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
    ok(daemon, "rm", "-f", "back")


def test_inspect_shape_of_restart_fields(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "create", "--name", "sh", "bb:1", "true")
    shown = inspect(daemon, "sh")
    assert shown["RestartCount"] == 0 and shown["State"]["Restarting"] is False
    raw = json.dumps(shown)
    assert "HasBeenManuallyStopped" not in raw  # internal, never shown

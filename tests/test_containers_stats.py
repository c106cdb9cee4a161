"""Acceptance: ``docker top`` and ``docker stats`` with the real CLI against real
containers (cgroup files of the host's hierarchy, the host's ``ps``)."""

from __future__ import annotations

import pytest

from tests.cli import cli, inspect, ok
from tests.support import Daemon

pytestmark = pytest.mark.integration


def test_top_lists_the_container_processes_only(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "t1", "bb:1", "sh", "-c",
       "sleep 1001 & sleep 1002 & wait")
    lines = ok(daemon, "top", "t1").splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    commands = sorted(line.split(None, 7)[7] for line in lines[1:])
    assert commands == ["sh -c sleep 1001 & sleep 1002 & wait", "sleep 1001", "sleep 1002"]
    init = str(inspect(daemon, "t1")["State"]["Pid"])
    assert init in [line.split()[1] for line in lines[1:]]
    columns = [line.split() for line in ok(daemon, "top", "t1", "-o", "pid,comm").splitlines()]
    assert columns[0] == ["PID", "COMMAND"]
    assert sorted(row[1] for row in columns[1:]) == ["sh", "sleep", "sleep"]
    ok(daemon, "rm", "-f", "t1")


def test_top_errors(running_daemon: Daemon):
    daemon = running_daemon
    container_id = ok(daemon, "create", "--name", "t2", "bb:1", "true").strip()
    stopped = cli(daemon, "top", "t2")
    assert stopped.returncode != 0
    assert f"Container {container_id} is not running" in stopped.stderr
    assert "No such container: nope" in cli(daemon, "top", "nope").stderr
    ok(daemon, "rm", "t2")
    ok(daemon, "run", "-d", "--name", "t3", "bb:1", "sleep", "100")
    failed = cli(daemon, "top", "t3", "--bogus-option")
    assert failed.returncode != 0 and "Error running ps: " in failed.stderr
    nopid = cli(daemon, "top", "t3", "-o", "comm")
    assert "Couldn't find PID field in ps output" in nopid.stderr
    ok(daemon, "rm", "-f", "t3")

"""Acceptance: ``docker top`` and ``docker stats`` with the real CLI against real
containers (cgroup files of the host's hierarchy, the host's ``ps``)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.cli import cli, inspect, ok
from tests.support import Daemon, _UnixConnection, unix_get

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
    failed = cli(daemon, "top", "t3", "--bogus-option")  # dockerd 20.10's words
    assert failed.returncode != 0
    assert "Error response from daemon: ps: error: unknown gnu long option" in failed.stderr
    nopid = cli(daemon, "top", "t3", "-o", "comm")
    assert "Couldn't find PID field in ps output" in nopid.stderr
    renamed = cli(daemon, "top", "t3", "-o", "user=PID")
    assert 'specifying "user=PID" is not allowed' in renamed.stderr
    status, _, _ = unix_get(daemon.socket, "/containers/t3/top?ps_args=-o%20user=PID")
    assert status == 500
    forest = ok(daemon, "top", "t3", "axf")  # ps refuses -q with f: run again without
    assert "sleep 100" in forest
    status, _, body = unix_get(daemon.socket, "/containers/t3/top")
    assert status == 200 and list(json.loads(body)) == ["Processes", "Titles"]
    ok(daemon, "rm", "-f", "t3")



ZERO_TIME = "0001-01-01T00:00:00Z"


def get_stats(daemon: Daemon, name: str, query: str) -> dict:
    status, headers, body = unix_get(daemon.socket, f"/v1.41/containers/{name}/stats?{query}")
    assert status == 200, body
    if "stream=false" in query:
        assert headers["Content-Type"] == "application/json"
    else:  # moby sets none on a stream
        assert "Content-Type" not in headers
    return json.loads(body)


def test_docker_stats_memory_limit_and_cpu(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "s1", "-m", "64m", "bb:1", "sleep", "100")
    ok(daemon, "run", "-d", "--name", "s2", "bb:1", "sh", "-c", "while :; do :; done")
    shown = ok(daemon, "stats", "--no-stream", "--format",
               "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", "s1", "s2").splitlines()
    rows = {line.split("|")[0]: line.split("|")[1:] for line in shown}
    usage, limit = rows["s1"][1].split(" / ")
    assert limit == "64MiB" and not usage.startswith("0B"), rows
    assert rows["s1"][2] == "1"
    assert float(rows["s2"][0].rstrip("%")) > 10, rows
    table = ok(daemon, "stats", "--no-stream", "s2")
    assert table.split("\n")[0].split()[:4] == ["CONTAINER", "ID", "NAME", "CPU"]
    assert " s2 " in table
    ok(daemon, "rm", "-f", "s1", "s2")


def test_stats_once_with_the_previous_sample(running_daemon: Daemon):
    daemon = running_daemon
    container_id = ok(daemon, "run", "-d", "--name", "s3", "bb:1", "sleep", "100").strip()
    shown = get_stats(daemon, "s3", "stream=false")
    assert set(shown) >= {"read", "preread", "pids_stats", "blkio_stats", "num_procs",
                          "storage_stats", "cpu_stats", "precpu_stats", "memory_stats",
                          "name", "id"}
    assert shown["name"] == "/s3" and shown["id"] == container_id
    assert shown["preread"] != ZERO_TIME and shown["preread"] < shown["read"]
    assert shown["precpu_stats"]["system_cpu_usage"] > 0
    assert shown["cpu_stats"]["system_cpu_usage"] > shown["precpu_stats"]["system_cpu_usage"]
    assert shown["cpu_stats"]["online_cpus"] >= 1
    assert shown["memory_stats"]["usage"] > 0 and shown["memory_stats"]["limit"] > 0
    assert shown["pids_stats"]["current"] == 1
    started = time.monotonic()
    once = get_stats(daemon, "s3", "stream=false&one-shot=true")
    assert time.monotonic() - started < 0.8
    assert once["preread"] == ZERO_TIME and once["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert once["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    status, _, body = unix_get(daemon.socket, "/containers/s3/stats?one-shot=true")
    assert status == 400 and b"cannot have stream=true and one-shot=true" in body
    assert unix_get(daemon.socket, "/containers/nope/stats?one-shot=true")[0] == 404
    started = time.monotonic()  # before API 1.41 one-shot is not read
    status, _, _ = unix_get(daemon.socket, "/v1.40/containers/s3/stats?stream=0&one-shot=1")
    assert status == 200 and time.monotonic() - started >= 0.9
    ok(daemon, "rm", "-f", "s3")


def test_stats_of_a_stopped_or_unknown_container(running_daemon: Daemon):
    daemon = running_daemon
    container_id = ok(daemon, "create", "--name", "s4", "bb:1", "true").strip()
    once = get_stats(daemon, "s4", "stream=false")
    first, response = first_of_stream(daemon, "s4")  # a stream goes on until the removal
    response.close()
    for shown in (once, first):
        assert shown["read"] == ZERO_TIME and shown["name"] == "/s4"
        assert shown["id"] == container_id and shown["memory_stats"] == {}
        assert shown["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert unix_get(daemon.socket, "/containers/nope/stats")[0] == 404
    ok(daemon, "rm", "s4")


def first_of_stream(daemon: Daemon, name: str) -> tuple[dict, Any]:
    """The first object of a stats stream, and the response to read on."""
    connection = _UnixConnection(daemon.socket)
    connection.request("GET", f"/containers/{name}/stats", headers={"Host": "x"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") is None
    return json.loads(response.readline()), response


def test_streaming_zeroes_after_the_stop_until_the_removal(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "s5", "bb:1", "sleep", "100")
    first, response = first_of_stream(daemon, "s5")
    try:
        second = json.loads(response.readline())
        assert second["preread"] == first["read"] and second["read"] > first["read"]
        assert second["memory_stats"]["usage"] > 0
        ok(daemon, "kill", "s5")
        shown = json.loads(response.readline())
        while shown["read"] != ZERO_TIME:  # as moby's: zeroed objects go on
            shown = json.loads(response.readline())
        assert shown["name"] == "/s5" and shown["memory_stats"] == {}
        assert json.loads(response.readline())["read"] == ZERO_TIME
        ok(daemon, "rm", "s5")
        started = time.monotonic()
        response.read()  # the removal ends the response
        assert time.monotonic() - started < 5
    finally:
        response.close()


def test_a_stream_the_client_leaves(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "s6", "bb:1", "sleep", "100")
    connection = _UnixConnection(daemon.socket)
    try:
        connection.request("GET", "/containers/s6/stats", headers={"Host": "x"})
        assert json.loads(connection.getresponse().readline())["name"] == "/s6"
    finally:
        connection.close()
    time.sleep(1.5)  # the daemon noticed; its timer must be gone, not writing
    assert get_stats(daemon, "s6", "stream=false&one-shot=true")["name"] == "/s6"
    assert "Unhandled" not in daemon.output(), daemon.output()
    ok(daemon, "rm", "-f", "s6")

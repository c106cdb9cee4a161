"""``docker stats``: parsers on fixture texts (cgroup v1 and v2) and the real CLI."""

from __future__ import annotations

import json
import time

import pytest

from dockertw.daemon.containers.stats import (
    Sample,
    parse_cgroups,
    parse_net_dev,
    stats_document,
    system_cpu_ns,
)
from tests.cli import cli, ok
from tests.support import Daemon, _UnixConnection

_NET_DEV = "\n".join([
    "Inter-|   Receive |  Transmit", " face |bytes packets errs drop ...",
    "    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0",
    "  eth0: 2000 20 1 2 0 0 0 0 3000 30 3 4 0 0 0 0", ""])
_PROC_STAT = "cpu  10 0 20 30 0 0 0 0 0 0\ncpu0 10 0 20 30 0 0 0 0 0 0\n"


def _v2_sample(usage_usec: int, time_ns: int) -> Sample:
    files = {"memory.current": "4096\n", "memory.max": "max\n",
             "memory.stat": "anon 1024\ninactive_file 512\n",
             "cpu.stat": f"usage_usec {usage_usec}\nuser_usec 3\nsystem_usec 4\n"
                         "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
             "pids.current": "2\n", "pids.max": "max\n",
             "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"}
    return Sample(time_ns, "2", files, _PROC_STAT, _NET_DEV, 8 << 30, 2)


def test_v2_document():
    doc = stats_document("/c", "abc", _v2_sample(2000, 2_000_000_000),
                         _v2_sample(1000, 1_000_000_000))
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] == 2_000_000
    assert doc["precpu_stats"]["cpu_usage"]["total_usage"] == 1_000_000
    assert doc["memory_stats"]["usage"] == 4096 and doc["memory_stats"]["limit"] == 8 << 30
    assert doc["memory_stats"]["stats"]["inactive_file"] == 512
    assert doc["pids_stats"] == {"current": 2}
    assert doc["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 10},
        {"major": 8, "minor": 0, "op": "write", "value": 20}]
    assert doc["networks"] == {"eth0": {
        "rx_bytes": 2000, "rx_packets": 20, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 3000, "tx_packets": 30, "tx_errors": 3, "tx_dropped": 4}}
    assert doc["read"].startswith("1970-01-01T00:00:02")


def test_v1_document_and_helpers():
    files = {"memory.usage_in_bytes": "8192\n", "memory.max_usage_in_bytes": "9000\n",
             "memory.limit_in_bytes": "67108864\n", "memory.stat": "cache 10\n",
             "cpuacct.usage": "5000\n", "cpuacct.usage_percpu": "2000 3000 \n",
             "cpuacct.stat": "user 1\nsystem 2\n", "cpu.stat": "nr_periods 4\n",
             "pids.current": "3\n", "pids.max": "50\n",
             "blkio.throttle.io_service_bytes_recursive": "8:0 Read 7\nTotal 7\n",
             "blkio.throttle.io_serviced_recursive": ""}
    doc = stats_document("/c", "abc", Sample(1, "1", files, _PROC_STAT, "", 8 << 30, 2),
                         None)
    assert doc["memory_stats"]["limit"] == 64 << 20
    assert doc["cpu_stats"]["cpu_usage"]["percpu_usage"] == [2000, 3000]
    assert doc["cpu_stats"]["throttling_data"]["periods"] == 4
    assert doc["pids_stats"] == {"current": 3, "limit": 50}
    assert doc["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 7}]
    assert doc["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert parse_cgroups("4:memory:/a/b\n1:cpu,cpuacct:/a/b\n0::/x\n") == {
        "memory": "/a/b", "cpu": "/a/b", "cpuacct": "/a/b", "": "/x"}
    assert system_cpu_ns(_PROC_STAT) > 0 and parse_net_dev("") == {}


def _get(daemon: Daemon, url: str) -> tuple[int, bytes]:
    connection = _UnixConnection(str(daemon.socket))
    try:
        connection.request("GET", url, headers={"Host": "x"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.integration
def test_docker_stats_shows_real_numbers(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "busy", "-m", "64m", "bb:1", "sh", "-c",
       "while :; do :; done")
    time.sleep(0.5)
    line = ok(daemon, "stats", "--no-stream", "--format",
              "{{.Name}} {{.CPUPerc}} {{.MemUsage}}", "busy").split()
    assert line[0] == "busy" and float(line[1].rstrip("%")) > 0
    assert line[-1] == "64MiB" and not line[2].startswith("0B")
    started = time.monotonic()
    status, body = _get(daemon, "/v1.41/containers/busy/stats?stream=0")
    document = json.loads(body)
    assert status == 200 and time.monotonic() - started >= 0.9
    assert document["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert document["cpu_stats"]["cpu_usage"]["total_usage"] > \
        document["precpu_stats"]["cpu_usage"]["total_usage"]
    assert document["memory_stats"]["usage"] > 0 and document["name"] == "/busy"
    started = time.monotonic()
    status, body = _get(daemon, "/v1.41/containers/busy/stats?stream=0&one-shot=1")
    assert status == 200 and time.monotonic() - started < 0.9
    ok(daemon, "rm", "-f", "busy")


@pytest.mark.integration
def test_stream_ends_with_the_container_and_stopped_ones_read_zero(
        running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "brief", "bb:1", "sleep", "2.5")
    status, body = _get(daemon, "/v1.41/containers/brief/stats")
    documents = [json.loads(line) for line in body.splitlines() if line.strip()]
    assert status == 200 and len(documents) >= 2
    assert documents[0]["preread"] == "0001-01-01T00:00:00Z"
    assert documents[1]["preread"] == documents[0]["read"]
    _, body = _get(daemon, "/v1.41/containers/brief/stats?stream=0")
    assert json.loads(body)["read"] == "0001-01-01T00:00:00Z"
    assert "No such container: nope" in cli(daemon, "stats", "--no-stream", "nope").stderr

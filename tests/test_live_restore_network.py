"""``--live-restore`` with networking: a container taken back keeps its namespace, its
addresses, its published ports and its embedded DNS, and its health checks go on; one
that ended while the daemon was away has its network released (real daemons with a
bridge and chains of their own, runc containers, the docker CLI; traffic only to
127.0.0.1 and the test's containers)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dockertw.daemon.jsonlog import parse_time
from dockertw.daemon.networks.firewall import chain_prefix
from tests.cli import inspect, ok
from tests.netsupport import http_get, ip_of, port_is_free
from tests.support import Daemon, free_port, process_alive, wait_for

pytestmark = pytest.mark.integration

_WEB = ("httpd", "-f", "-p", "8080", "-h", "/etc")
# serves, then ends on its own a little later (while the daemon is away)
_BRIEF = ("sh", "-c", "httpd -p 8080 -h /etc; sleep 2")
_HEALTHY = ("--health-cmd", "true", "--health-interval", "1s")


@pytest.fixture
def live_net(start_net_daemon: Callable[..., Daemon]) -> Iterator[Daemon]:
    """A ``--live-restore`` daemon with networking; what it leaves running is killed
    and unnetted before the networking check of :func:`start_net_daemon`."""
    daemon = start_net_daemon("--live-restore")
    try:
        yield daemon
    finally:
        daemon.kill_leftovers()


def _dnat_comments(daemon: Daemon) -> list[str]:
    """The container IDs (12 characters) the daemon's DNAT rules are for."""
    shown = subprocess.run(["iptables", "-t", "nat", "-S", f"{chain_prefix(daemon.root)}-DNAT"],
                           capture_output=True, text=True, check=True).stdout
    return sorted(line.split("--comment ")[1].split()[0] for line in shown.splitlines()
                  if line.startswith("-A"))


def _health(daemon: Daemon, name: str) -> dict[str, Any]:
    return dict(inspect(daemon, name)["State"]["Health"])


def _leased(daemon: Daemon) -> set[str]:
    """The addresses ``host-local`` has leased, in every network."""
    return {path.name for path in (daemon.root / "network" / "ipam").glob("*/*")
            if path.name != "lock" and not path.name.startswith("last_reserved_ip")}


def test_a_taken_back_container_keeps_its_network_and_an_ended_one_loses_it(
        live_net: Daemon):
    daemon = live_net
    web_port, brief_port = free_port(), free_port()
    ok(daemon, "network", "create", "n1")
    ok(daemon, "run", "-d", "--name", "web", "--network", "n1",
       "-p", f"127.0.0.1:{web_port}:8080", *_HEALTHY, "bb:1", *_WEB)
    ok(daemon, "run", "-d", "--name", "peer", "--network", "n1", "bb:1", "sleep", "600")
    ok(daemon, "run", "-d", "--name", "brief", "-p", f"127.0.0.1:{brief_port}:8080",
       "bb:1", *_BRIEF)
    hostname = inspect(daemon, "web")["Config"]["Hostname"]
    assert http_get("127.0.0.1", web_port) == hostname
    addresses = {name: ip_of(daemon, name, network)
                 for name, network in (("web", "n1"), ("peer", "n1"), ("brief", "bridge"))}
    ids = {name: inspect(daemon, name)["Id"] for name in addresses}
    brief_pid = inspect(daemon, "brief")["State"]["Pid"]
    wait_for(lambda: _health(daemon, "web")["Status"] == "healthy", "web healthy")
    assert not port_is_free(brief_port)

    daemon.stop(signal.SIGKILL)
    wait_for(lambda: not process_alive(brief_pid), "brief ending while no daemon runs")
    restarted = time.time()
    daemon.start()

    web, peer, brief = (inspect(daemon, name) for name in ("web", "peer", "brief"))
    assert web["State"]["Running"] and peer["State"]["Running"]
    assert (brief["State"]["Status"], brief["State"]["ExitCode"]) == ("exited", 0)
    assert ip_of(daemon, "web", "n1") == addresses["web"]
    assert web["NetworkSettings"]["Ports"]["8080/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(web_port)}]
    assert http_get("127.0.0.1", web_port) == hostname  # the NAT rule and the held port again
    assert not port_is_free(web_port)
    assert _dnat_comments(daemon) == [ids["web"][:12]]
    assert port_is_free(brief_port)  # the ended one's port is free again
    assert addresses["brief"] not in _leased(daemon)
    assert {addresses["web"], addresses["peer"]} <= _leased(daemon)
    assert not (daemon.root / "netns" / ids["brief"]).exists()
    answer = ok(daemon, "exec", "peer", "nslookup", "web")  # the embedded DNS again
    assert addresses["web"] in answer, answer
    members = json.loads(ok(daemon, "network", "inspect", "n1"))[0]["Containers"]
    assert sorted(m["Name"] for m in members.values()) == ["peer", "web"]

    ok(daemon, "run", "-d", "--name", "fresh", "--network", "n1", "bb:1", "sleep", "600")
    assert ip_of(daemon, "fresh", "n1") not in (addresses["web"], addresses["peer"])
    wait_for(lambda: any(_started_after(entry, restarted)
                         for entry in _health(daemon, "web")["Log"] or ()),
             "a health check after the restart")
    assert _health(daemon, "web")["Status"] == "healthy"

    daemon.stop()  # a clean stop leaves them running too, networks and all
    assert http_get("127.0.0.1", web_port) == hostname  # kernel NAT, with no daemon at all
    daemon.start()
    assert http_get("127.0.0.1", web_port) == hostname
    assert ip_of(daemon, "web", "n1") == addresses["web"]
    ok(daemon, "rm", "-f", "web", "peer", "brief", "fresh")
    assert _dnat_comments(daemon) == [] and port_is_free(web_port)
    ok(daemon, "network", "rm", "n1")


def _started_after(entry: dict[str, Any], moment: float) -> bool:
    """Whether a ``Health.Log`` entry started after ``moment``."""
    return parse_time(str(entry["Start"])) / 1e9 >= moment

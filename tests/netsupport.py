"""Networking tests' helpers: daemons with a bridge, pool and chains of their own, and
the check that nothing of theirs is left on the host (links, rules, leases, mounts).

Traffic goes only to loopback, to the containers' namespaces and to an address the
test gives the host on a dummy link of its own (in 198.18.0.0/15, a benchmarking range
no network uses) on a veth pair it makes."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import random
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockertw.daemon.networks.firewall import chain_prefix
from dockertw.daemon.networks.ipam import host_routes
from dockertw.runtime.mounts import mounts_under
from tests.cli import import_image, inspect, ok
from tests.support import Daemon

__all__ = ["network_args", "network_leftovers", "net_daemon", "start_net_daemon",
           "check_clean", "pool_of", "free_block", "host_address",
           "in_namespace", "container_pid", "ip_of", "run_ok", "http_get", "port_is_free"]


def free_block(prefix: int = 16) -> ipaddress.IPv4Network:
    """A random ``10.N.0.0/prefix`` no route of the host overlaps."""
    routes = [r for r in host_routes() if r.version == 4]
    while True:
        block = ipaddress.IPv4Network(f"10.{random.randint(64, 199)}.0.0/{prefix}")
        if not any(block.overlaps(route) for route in routes):
            return block


def network_args(*extra: str, dns: str = "127.0.0.1") -> list[str]:
    """A bridge named ``dtwt<hex>``, a /16 of 10.0.0.0/8 no route uses (subnets /24),
    DNS only to loopback, no global ``ip_forward`` change."""
    return ["--bridge", f"dtwt{secrets.token_hex(4)}", "--default-address-pool",
            f"base={free_block()},size=24", "--dns", dns, "--ip-forward", "false", *extra]


def pool_of(daemon: Daemon) -> ipaddress.IPv4Network:
    """The daemon's address pool (``--default-address-pool``)."""
    value = daemon.args[daemon.args.index("--default-address-pool") + 1]
    return ipaddress.IPv4Network(value.split(",")[0].removeprefix("base="))


def _bridges_of(daemon: Daemon) -> list[str]:
    names = []
    for record in (daemon.root / "network" / "networks").glob("*.json"):
        network = json.loads(record.read_text())
        if network["Driver"] == "bridge":
            names.append(network["Options"].get("com.docker.network.bridge.name")
                         or f"br-{network['Id'][:12]}")
    return names


def _links() -> set[str]:
    shown = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in shown.splitlines()}


def _leases(root: Path) -> list[Path]:
    return [path for path in (root / "network" / "ipam").glob("*/*")
            if path.name != "lock" and not path.name.startswith("last_reserved_ip")]


def network_leftovers(daemon: Daemon, bridges: list[str]) -> list[str]:
    """What a stopped daemon left: its bridges, chains, leases, namespace mounts."""
    left = [f"link {name}" for name in sorted(_links() & set(bridges))]
    prefix = chain_prefix(daemon.root)
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True,
                           check=False).stdout
    left += [f"rule {line}" for line in rules.splitlines() if prefix in line]
    left += [f"lease {path}" for path in _leases(daemon.root)]
    left += [f"mount {path}" for path in mounts_under(daemon.root)]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                check=False).stdout
    left += [f"netns {line}" for line in namespaces.splitlines()
             if any(bridge in line for bridge in bridges)]
    return left


def check_clean(daemon: Daemon) -> None:
    """After a daemon stopped: nothing of its networking left, nor a mount, cgroup or
    traceback."""
    daemon.stop()
    assert network_leftovers(daemon, _bridges_of(daemon)) == []
    assert daemon.container_cgroups() == []
    assert "Traceback" not in daemon.output(), daemon.output()


@pytest.fixture
def start_net_daemon(start_daemon: Callable[..., Daemon], busybox_tar: Path
                     ) -> Iterator[Callable[..., Daemon]]:
    """Start daemons with networking (:func:`network_args`, ``bb:1`` imported); each
    is checked by :func:`check_clean` afterwards."""
    started: list[Daemon] = []

    def start(*extra: str, dns: str = "127.0.0.1") -> Daemon:
        daemon = start_daemon(*network_args(*extra, dns=dns))
        started.append(daemon)
        import_image(daemon, busybox_tar, "bb:1")
        return daemon

    try:
        yield start
    finally:
        for daemon in started:
            check_clean(daemon)


@pytest.fixture
def net_daemon(start_net_daemon: Callable[..., Daemon]) -> Daemon:
    """A daemon with a default bridge of its own (see :func:`start_net_daemon`)."""
    return start_net_daemon()


@contextlib.contextmanager
def host_address() -> Iterator[str]:
    """An address of the host's own, on one end of a veth pair made for the test (the
    kernel here has no dummy links)."""
    name = f"dtwh{secrets.token_hex(4)}"
    address = f"198.18.{random.randint(1, 254)}.{random.randint(1, 254)}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"],
                   check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", name], check=True)
        for link in (name, f"{name}p"):
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        yield address
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def container_pid(daemon: Daemon, name: str) -> int:
    return int(inspect(daemon, name)["State"]["Pid"])


def in_namespace(pid: int, code: str, timeout: float = 20.0) -> subprocess.Popen[str]:
    """This test's Python running ``code`` in the network namespace of process ``pid``
    (a container's): a server the host reaches through a published port."""
    return subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c",
                             code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def ip_of(daemon: Daemon, name: str, network: str = "bridge") -> str:
    return str(inspect(daemon, name)["NetworkSettings"]["Networks"][network]["IPAddress"])


def run_ok(daemon: Daemon, *args: str) -> str:
    return ok(daemon, "run", "--rm", *args)


def http_get(host: str, port: int, path: str = "/hostname", tries: int = 50) -> str:
    """An HTTP GET straight to ``host:port`` (no proxy), retried while the server
    comes up."""
    for attempt in range(tries):
        try:
            connection = http.client.HTTPConnection(host, port, timeout=5)
            connection.request("GET", path)
            return connection.getresponse().read().decode().strip()
        except OSError:
            if attempt == tries - 1:
                raise
            time.sleep(0.1)
        finally:
            connection.close()
    raise AssertionError("unreachable")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True

"""User-defined networks with the real docker CLI: names and aliases by the embedded
DNS, isolation, ``--internal``, connect and disconnect of a running container,
``--ip``/``--subnet``/``--gateway``, the network routes and events, the container's
``/etc`` files, legacy links, DNS forwarding to a loopback upstream, and a daemon
killed with SIGKILL."""

from __future__ import annotations

import json
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli import cli, import_image, inspect, ok
from tests.netsupport import free_block, host_address, ip_of, pool_of, run_ok
from tests.support import REPO, Daemon, unix_get

pytestmark = pytest.mark.integration


def _failed(daemon: Daemon, *args: str) -> str:
    done = cli(daemon, *args)
    assert done.returncode != 0, done.stdout
    return done.stderr


def _addresses(daemon: Daemon, name: str) -> list[str]:
    shown = ok(daemon, "exec", name, "ip", "-o", "-4", "addr", "show")
    return sorted(line.split()[3] for line in shown.splitlines() if " lo " not in line)


def test_names_aliases_isolation_and_internal(net_daemon: Daemon):
    daemon = net_daemon
    for name in ("n1", "n2"):
        ok(daemon, "network", "create", name)
    ok(daemon, "network", "create", "--internal", "inside")
    ok(daemon, "run", "-d", "--name", "a1", "--network", "n1", "--network-alias", "alpha",
       "bb:1", "sleep", "100")
    address = ip_of(daemon, "a1", "n1")
    for name in ("a1", "alpha", "a1.n1", inspect(daemon, "a1")["Id"][:12]):
        answer = run_ok(daemon, "--network", "n1", "bb:1", "nslookup", name)
        assert address in answer, (name, answer)
    assert "1 packets received" in run_ok(daemon, "--network", "n1", "bb:1", "ping", "-c1",
                                          "-W2", "alpha")
    ok(daemon, "rename", "a1", "renamed")
    assert address in run_ok(daemon, "--network", "n1", "bb:1", "nslookup", "renamed")
    unknown = cli(daemon, "run", "--rm", "--network", "n2", "bb:1", "nslookup", "a1")
    assert unknown.returncode != 0 and address not in unknown.stdout
    unreachable = cli(daemon, "run", "--rm", "--network", "n2", "bb:1", "ping", "-c1",
                      "-W1", address)
    assert " 0 packets received" in unreachable.stdout
    routes = run_ok(daemon, "--network", "inside", "bb:1", "ip", "route")
    assert "default" not in routes and routes.strip()
    with host_address() as host:
        outside = cli(daemon, "run", "--rm", "--network", "inside", "bb:1", "ping", "-c1",
                      "-W1", host)
        assert outside.returncode != 0
        assert "1 packets received" in run_ok(daemon, "--network", "n1", "bb:1", "ping",
                                              "-c1", "-W2", host)
    ok(daemon, "rm", "-f", "renamed")


def test_connect_disconnect_ip_subnet_and_gateway(net_daemon: Daemon):
    daemon = net_daemon
    subnet = list(pool_of(daemon).subnets(new_prefix=24))[200]
    gateway, fixed = str(subnet.network_address + 254), str(subnet.network_address + 9)
    ok(daemon, "network", "create", "--subnet", str(subnet), "--gateway", gateway,
       "--ip-range", str(list(subnet.subnets(new_prefix=25))[1]), "fixed")
    ok(daemon, "network", "create", "second")
    ok(daemon, "run", "-d", "--name", "c1", "--network", "fixed", "--ip", fixed, "bb:1",
       "sleep", "100")
    assert _addresses(daemon, "c1") == [f"{fixed}/24"]
    assert f"default via {gateway}" in ok(daemon, "exec", "c1", "ip", "route")
    dynamic = run_ok(daemon, "--network", "fixed", "bb:1", "ip", "-o", "-4", "addr",
                     "show", "eth0")
    assert f"{subnet.network_address + 129}/24" in dynamic  # the range's first address
    ok(daemon, "network", "connect", "--alias", "joined", "second", "c1")
    assert len(_addresses(daemon, "c1")) == 2
    networks = inspect(daemon, "c1")["NetworkSettings"]["Networks"]
    assert sorted(networks) == ["fixed", "second"]
    second = networks["second"]["IPAddress"]
    assert second in ok(daemon, "exec", "c1", "cat", "/etc/hosts")
    assert second in run_ok(daemon, "--network", "second", "bb:1", "nslookup", "joined")
    members = json.loads(ok(daemon, "network", "inspect", "second"))[0]["Containers"]
    assert [m["Name"] for m in members.values()] == ["c1"]
    ok(daemon, "network", "disconnect", "second", "c1")
    assert _addresses(daemon, "c1") == [f"{fixed}/24"]
    assert sorted(inspect(daemon, "c1")["NetworkSettings"]["Networks"]) == ["fixed"]
    ok(daemon, "stop", "-t", "0", "c1")
    ok(daemon, "network", "connect", "second", "c1")
    ok(daemon, "start", "c1")
    assert len(_addresses(daemon, "c1")) == 2
    ok(daemon, "rm", "-f", "c1")


def test_network_routes_events_and_filters(net_daemon: Daemon):
    daemon = net_daemon
    since = str(int(time.time()))
    created = ok(daemon, "network", "create", "--label", "team=a", "--opt",
                 "com.docker.network.driver.mtu=1400", "mine").strip()
    listed = ok(daemon, "network", "ls", "--format", "{{.Name}} {{.Driver}}").splitlines()
    assert sorted(listed) == ["bridge bridge", "host host", "mine bridge", "none null"]
    shown = json.loads(ok(daemon, "network", "inspect", "mine"))[0]
    assert (shown["Id"], shown["Driver"], shown["Labels"]) == (created, "bridge",
                                                               {"team": "a"})
    assert shown["IPAM"]["Config"][0]["Subnet"].startswith(str(pool_of(daemon))[:-6])
    bridge = json.loads(ok(daemon, "network", "inspect", "bridge"))[0]
    assert bridge["Options"]["com.docker.network.bridge.name"] == \
        daemon.args[daemon.args.index("--bridge") + 1]
    assert "network with name mine already exists" in _failed(daemon, "network", "create",
                                                              "mine")
    assert "operation is not permitted on predefined host network" in _failed(
        daemon, "network", "create", "host")
    assert "bridge is a pre-defined network and cannot be removed" in _failed(
        daemon, "network", "rm", "bridge")
    missing = _failed(daemon, "network", "inspect", "nosuch")
    # CLI 20.10 words a 404 itself; newer ones print the daemon's message
    assert "network nosuch not found" in missing or "No such network: nosuch" in missing
    for args, expected in [(("name=mi",), ["mine"]), (("driver=null",), ["none"]),
                           (("type=custom",), ["mine"]), (("label=team=a",), ["mine"]),
                           (("dangling=true",), ["mine"])]:
        found = ok(daemon, "network", "ls", "-q", "--filter", args[0], "--format",
                   "{{.Name}}").split()
        assert found == expected, (args, found)
    ok(daemon, "run", "-d", "--name", "user", "--network", "mine", "bb:1", "sleep", "100")
    assert "ip link" and "mtu 1400" in ok(daemon, "exec", "user", "ip", "link", "show",
                                          "eth0")
    refused = _failed(daemon, "network", "rm", "mine")
    assert "error while removing network: network mine has active endpoints" in refused
    ok(daemon, "network", "create", "unused")
    pruned = ok(daemon, "network", "prune", "-f")
    assert "unused" in pruned and "mine" not in pruned
    ok(daemon, "rm", "-f", "user")
    ok(daemon, "network", "rm", "mine")
    until = str(int(time.time()) + 1)
    events = ok(daemon, "events", "--since", since, "--until", until, "--filter",
                "type=network", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert [line for line in events.splitlines() if line.endswith(" mine")] == [
        "create mine", "connect mine", "disconnect mine", "destroy mine"]


def test_etc_files_dns_options_and_links(net_daemon: Daemon, busybox_tar: Path):
    daemon = net_daemon
    gateway = json.loads(ok(daemon, "network", "inspect", "bridge"))[0]["IPAM"][
        "Config"][0]["Gateway"]
    ok(daemon, "run", "-d", "--name", "files", "--hostname", "h1", "--domainname",
       "example.test", "--add-host", "x.test:198.18.0.5", "--add-host", "gw:host-gateway",
       "--dns-search", "s.test", "--dns-option", "ndots:3", "bb:1", "sleep", "100")
    address = ip_of(daemon, "files")
    hosts = ok(daemon, "exec", "files", "cat", "/etc/hosts").splitlines()
    assert hosts[0] == "127.0.0.1\tlocalhost"
    assert hosts[-3:] == ["198.18.0.5\tx.test", f"{gateway}\tgw",
                          f"{address}\th1.example.test h1"]
    assert ok(daemon, "exec", "files", "cat", "/etc/hostname") == "h1\n"
    assert ok(daemon, "exec", "files", "cat", "/etc/resolv.conf").splitlines() == [
        "search s.test", "nameserver 127.0.0.1", "options ndots:3"]
    shown = inspect(daemon, "files")
    directory = daemon.root / "containers" / shown["Id"]
    assert (shown["HostsPath"], shown["HostnamePath"], shown["ResolvConfPath"]) == (
        str(directory / "hosts"), str(directory / "hostname"),
        str(directory / "resolv.conf"))
    ok(daemon, "network", "create", "user")
    assert run_ok(daemon, "--network", "user", "bb:1", "cat",
                  "/etc/resolv.conf").splitlines() == ["nameserver 127.0.0.11",
                                                       "options ndots:0"]
    assert run_ok(daemon, "--network", "host", "bb:1", "cat", "/etc/resolv.conf") == \
        Path("/etc/resolv.conf").read_text()
    import_image(daemon, busybox_tar, "--change", "EXPOSE 8080", "bbx:1")
    ok(daemon, "run", "-d", "--name", "target", "-e", "FOO=1", "bbx:1", "sleep", "100")
    target = ip_of(daemon, "target")
    linked = run_ok(daemon, "--name", "linker", "--link", "target:tg", "bb:1", "sh", "-c",
                    "env; cat /etc/hosts")
    for line in ("TG_NAME=/linker/tg", "TG_ENV_FOO=1", f"TG_PORT_8080_TCP_ADDR={target}",
                 f"TG_PORT=tcp://{target}:8080"):
        assert line in linked.splitlines(), (line, linked)
    target_hostname = inspect(daemon, "target")["Config"]["Hostname"]
    assert f"{target}\ttg {target_hostname} target" in linked
    assert _listed_names(daemon, "/target") == ["/target"]  # listed once before the link
    ok(daemon, "create", "--name", "linker2", "--link", "target:tg2", "bb:1", "true")
    assert _listed_names(daemon, "/target") == ["/target", "/linker2/tg2"]
    ok(daemon, "rm", "linker2")
    assert _listed_names(daemon, "/target") == ["/target"]
    ok(daemon, "rm", "-f", "files", "target")


def _listed_names(daemon: Daemon, name: str) -> list[str]:
    """``Names`` of the container called ``name`` in ``GET /containers/json``."""
    assert daemon.socket is not None
    status, _, body = unix_get(daemon.socket, "/containers/json?all=1")
    assert status == 200, body
    return next(item["Names"] for item in json.loads(body) if item["Names"][0] == name)


@pytest.fixture
def upstream() -> Iterator[str]:
    """A DNS server on 127.x.y.z:53 that knows ``upstream.test``."""
    address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
    server = subprocess.Popen([sys.executable, str(REPO / "tests" / "dnsupstream.py"),
                               address, "upstream.test", "198.18.7.7"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield address
    finally:
        server.kill()
        server.wait()


def test_dns_forwarding_goes_to_the_configured_loopback_upstream(
        start_net_daemon: Callable[..., Daemon], upstream: str):
    daemon = start_net_daemon(dns=upstream)
    ok(daemon, "network", "create", "fwd")
    answer = run_ok(daemon, "--network", "fwd", "bb:1", "nslookup", "upstream.test")
    assert "198.18.7.7" in answer
    missing = cli(daemon, "run", "--rm", "--network", "fwd", "bb:1", "nslookup",
                  "missing.test")
    assert missing.returncode != 0 and "198.18" not in missing.stdout
    per_container = run_ok(daemon, "--network", "fwd", "--dns", upstream, "bb:1",
                           "nslookup", "upstream.test")
    assert "198.18.7.7" in per_container


def test_sigkill_then_restart_tears_down_what_was_recorded(net_daemon: Daemon):
    daemon = net_daemon
    ok(daemon, "network", "create", "kept")
    ok(daemon, "run", "-d", "--name", "k1", "--network", "kept", "-p", "127.0.0.1::80",
       "bb:1", "sleep", "100")
    ok(daemon, "run", "-d", "--name", "k2", "bb:1", "sleep", "100")
    netns = sorted(p.name for p in (daemon.root / "netns").iterdir())
    assert len(netns) == 2
    assert daemon.stop(signal.SIGKILL) is not None
    daemon.start()
    assert list((daemon.root / "netns").iterdir()) == []
    leases = [p for p in (daemon.root / "network" / "ipam").glob("*/*")
              if p.name[0].isdigit()]
    assert leases == []
    for name in ("k1", "k2"):
        assert inspect(daemon, name)["State"]["ExitCode"] == 137
    ok(daemon, "start", "k1", "k2")
    assert run_ok(daemon, "--network", "kept", "bb:1", "ping", "-c1", "-W2", "k1")
    ok(daemon, "rm", "-f", "k1", "k2")


def test_a_bridge_the_daemon_did_not_make_stays(start_net_daemon: Callable[..., Daemon]):
    name = f"dtwu{secrets.token_hex(4)}"
    gateway = free_block(24).network_address + 1
    subprocess.run(["ip", "link", "add", "name", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{gateway}/24", "dev", name], check=True)
        daemon = start_net_daemon("--bridge", name, "--bip", f"{gateway}/24")
        assert "1 packets received" in run_ok(daemon, "bb:1", "ping", "-c1", "-W2",
                                              str(gateway))
        daemon.stop()
        assert Path(f"/sys/class/net/{name}").exists()
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_mac_address_with_the_cli_as_it_negotiates(net_daemon: Daemon):
    daemon = net_daemon
    negotiated = ok(daemon, "version", "--format", "{{.Client.APIVersion}}").strip()
    mac = "02:42:0a:de:ad:01"
    ok(daemon, "network", "create", "macs")
    ok(daemon, "run", "-d", "--name", "m1", "--network", "macs", "--mac-address", mac,
       "bb:1", "sleep", "100")
    try:
        assert mac in ok(daemon, "exec", "m1", "ip", "link", "show", "eth0"), negotiated
        assert inspect(daemon, "m1")["NetworkSettings"]["Networks"]["macs"][
            "MacAddress"] == mac
    finally:
        ok(daemon, "rm", "-f", "m1")
        ok(daemon, "network", "rm", "macs")

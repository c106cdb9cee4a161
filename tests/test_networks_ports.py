"""Published ports with the real docker CLI: ``-p``, ``-P``, UDP, ``docker port``, taken
ports; reached from the host on 127.0.0.1 and on an address of its own, and from a
container (hairpin)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from dockertw.daemon.networks.firewall import chain_prefix
from tests.cli import cli, import_image, inspect, ok
from tests.netsupport import container_pid, host_address, http_get, in_namespace, port_is_free
from tests.support import Daemon, free_port

pytestmark = pytest.mark.integration

_UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5353))
print("ready", flush=True)
s.settimeout(15)
data, peer = s.recvfrom(100)
s.sendto(b"echo:" + data, peer)
"""


def _dnat_rules(daemon: Daemon) -> list[str]:
    shown = subprocess.run(["iptables", "-t", "nat", "-S", f"{chain_prefix(daemon.root)}-DNAT"],
                           capture_output=True, text=True, check=True).stdout
    return [line for line in shown.splitlines() if line.startswith("-A")]


def test_published_ports_answer_on_loopback_the_host_address_and_hairpin(
        net_daemon: Daemon):
    daemon = net_daemon
    local_port, any_port = free_port(), free_port()
    ok(daemon, "run", "-d", "--name", "web", "-p", f"127.0.0.1:{local_port}:8080",
       "-p", f"{any_port}:8080", "bb:1", "httpd", "-f", "-p", "8080", "-h", "/etc")
    hostname = inspect(daemon, "web")["Config"]["Hostname"]
    assert http_get("127.0.0.1", local_port) == hostname
    assert http_get("127.0.0.1", any_port) == hostname
    with host_address() as address:
        assert http_get(address, any_port) == hostname
        with pytest.raises(OSError):
            http_get(address, local_port, tries=1)  # bound to 127.0.0.1 only
        request = "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {} {}"
        hairpin = ok(daemon, "run", "--rm", "bb:1", "sh", "-c",
                     request.format(address, any_port))
        assert hairpin.rstrip().endswith(hostname)
    assert sorted(ok(daemon, "port", "web").splitlines()) == [
        f"8080/tcp -> 0.0.0.0:{any_port}", f"8080/tcp -> 127.0.0.1:{local_port}"]
    summary = [c for c in ok(daemon, "ps", "--format", "{{.Ports}}").splitlines() if c]
    assert summary == [f"0.0.0.0:{any_port}->8080/tcp, 127.0.0.1:{local_port}->8080/tcp"]
    for chosen, expected in ((f"publish={any_port}", "web"), ("publish=1/udp", ""),
                             ("network=bridge", "web"), ("network=none", "")):
        listed = ok(daemon, "ps", "--filter", chosen, "--format", "{{.Names}}").strip()
        assert listed == expected, chosen
    assert len(_dnat_rules(daemon)) == 2 and not port_is_free(any_port)
    ok(daemon, "rm", "-f", "web")
    assert _dnat_rules(daemon) == [] and port_is_free(any_port)


def test_publish_all_exposed_and_a_udp_port(net_daemon: Daemon, busybox_tar: Path):
    daemon = net_daemon
    import_image(daemon, busybox_tar, "--change", "EXPOSE 8080", "--change",
                 "EXPOSE 5353/udp", "bbx:1")
    ok(daemon, "run", "-d", "--name", "all", "-P", "bbx:1", "sleep", "100")
    ports = inspect(daemon, "all")["NetworkSettings"]["Ports"]
    assert sorted(ports) == ["5353/udp", "8080/tcp"]
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range")
                 .read_text().split())
    host_ports = {key: int(value[0]["HostPort"]) for key, value in ports.items()}
    assert all(low <= port <= high for port in host_ports.values()), host_ports
    echo = in_namespace(container_pid(daemon, "all"), _UDP_ECHO)
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            client.sendto(b"ping", ("127.0.0.1", host_ports["5353/udp"]))
            assert client.recvfrom(100)[0] == b"echo:ping"
    finally:
        echo.kill()
        echo.wait()
    ok(daemon, "run", "-d", "--name", "exposed", "bbx:1", "sleep", "100")
    assert ok(daemon, "ps", "-q", "--filter", "expose=5353/udp").count("\n") == 2
    assert inspect(daemon, "exposed")["NetworkSettings"]["Ports"] == {
        "5353/udp": None, "8080/tcp": None}
    ok(daemon, "rm", "-f", "all", "exposed")


def test_a_taken_port_fails_the_start_and_leaves_nothing(net_daemon: Daemon):
    daemon = net_daemon
    port = free_port()
    ok(daemon, "run", "-d", "--name", "first", "-p", f"{port}:80", "bb:1", "sleep", "100")
    refused = cli(daemon, "run", "-d", "--name", "second", "-p", f"{port}:80", "bb:1",
                  "sleep", "100")
    assert refused.returncode != 0
    assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in refused.stderr
    assert inspect(daemon, "second")["State"]["Running"] is False
    assert len(_dnat_rules(daemon)) == 1
    assert sorted(p.name for p in (daemon.root / "netns").iterdir()) == [
        inspect(daemon, "first")["Id"]]
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        refused = cli(daemon, "run", "-d", "-p", f"{taken}:80", "bb:1", "sleep", "100")
        assert f"Bind for 0.0.0.0:{taken} failed: port is already allocated" in \
            refused.stderr
    assert len(_dnat_rules(daemon)) == 1
    ok(daemon, "rm", "-f", "first", "second")

"""The pure parts of networking: IPAM pools and ranges, firewall rule text, /etc files,
port bindings, the DNS name table, and the API's version gates."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from twisted.python import usage

from dockertw.api.views.containers import create_body, inspect_view
from dockertw.api.views.networks import network_view
from dockertw.daemon.containers.records import networking
from dockertw.daemon.networks import etcfiles, ipam
from dockertw.daemon.networks.firewall import BridgeRules, Firewall, PortRule
from dockertw.daemon.networks.ports import (
    PortRequest,
    parse_port_key,
    port_requests,
    ports_view,
    summary_ports,
)
from dockertw.daemon.networks.records import IpamPool, Network
from dockertw.daemon.networks.table import EndpointInfo, EndpointTable
from dockertw.errdefs import Forbidden, InvalidParameter
from dockertw.runtime.iptables import Iptables
from dockertw.runtime.processes import blocking_runner
from dockertw.tap import Options


def _network(*pools: IpamPool, **fields: Any) -> Network:
    return Network(id="a" * 64, name="n", driver="bridge", created_ns=1, pools=pools,
                   user_ipam=True, **fields)


# -- IPAM ----------------------------------------------------------------------------------


def test_pools_skip_subnets_in_use_and_parse_options():
    pools = [ipam.parse_address_pool("base=10.9.0.0/16,size=24")]
    taken = [ipaddress.ip_network("10.9.0.0/23"), ipaddress.ip_network("fd00::/64")]
    assert ipam.choose_subnet(pools, taken) == ipaddress.ip_network("10.9.2.0/24")
    assert ipam.choose_subnet(ipam.DEFAULT_POOLS, []) == ipaddress.ip_network(
        "172.17.0.0/16")
    with pytest.raises(Forbidden, match="non-overlapping"):
        ipam.choose_subnet([ipam.parse_address_pool("base=10.9.0.0/24,size=24")],
                           [ipaddress.ip_network("10.0.0.0/8")])
    with pytest.raises(ValueError, match="size"):
        ipam.parse_address_pool("base=10.9.0.0/16,size=8")


def test_host_routes_come_from_proc(tmp_path: Path):
    (tmp_path / "route").write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "br0\t0000110A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    routes = ipam.host_routes(except_devices=["br0"], proc=tmp_path)
    assert routes == [ipaddress.ip_network("192.0.2.0/24")]


@pytest.mark.parametrize("config, message", [
    ({"Subnet": "10.0.0.1/24"}, "invalid subnet 10.0.0.1/24: it should be 10.0.0.0/24"),
    ({"Subnet": "nonsense"}, "invalid subnet nonsense: invalid CIDR block notation"),
    ({"Subnet": "10.0.0.0/24", "IPRange": "10.0.1.0/25"},
     "invalid ip-range 10.0.1.0/25: parent subnet 10.0.0.0/24 doesn't contain ip-range"),
    ({"Subnet": "10.0.0.0/24", "Gateway": "10.0.1.1"},
     "invalid gateway 10.0.1.1: parent subnet 10.0.0.0/24 doesn't contain this address"),
    ({"Subnet": "10.0.0.0/24", "AuxiliaryAddresses": {"a": "fd00::1"}},
     "invalid auxiliary address a: parent subnet is an IPv4 block"),
])
def test_ipam_config_is_checked_as_moby_does(config: dict[str, Any], message: str):
    with pytest.raises(InvalidParameter, match=message):
        ipam.parse_ipam({"Driver": "default", "Config": [config]}, enable_ipv6=False)


def test_ipv6_pools_count_only_with_ipv6_enabled():
    config = {"Config": [{"Subnet": "10.1.0.0/16"}, {"Subnet": "2001:389::/64",
                                                     "IPRange": "2001:389::0/96"}]}
    assert [p.subnet for p in ipam.parse_ipam(config, False)[0]] == ["10.1.0.0/16"]
    assert len(ipam.parse_ipam(config, True)[0]) == 2


def test_host_local_ranges_keep_out_gateway_and_auxiliary_addresses():
    pool = IpamPool("172.28.0.0/16", "172.28.5.0/24", "172.28.5.254", {"a": "172.28.5.9"})
    ranges = ipam.cni_ranges(_network(pool))
    assert ranges == [[
        {"subnet": "172.28.0.0/16", "rangeStart": "172.28.5.1", "rangeEnd": "172.28.5.8",
         "gateway": "172.28.5.254"},
        {"subnet": "172.28.0.0/16", "rangeStart": "172.28.5.10",
         "rangeEnd": "172.28.5.255", "gateway": "172.28.5.254"}]]
    static = ipam.cni_ranges(_network(pool), static=True)[0]
    assert (static[0]["rangeStart"], static[-1]["rangeEnd"]) == ("172.28.0.1",
                                                                 "172.28.255.254")


def test_overlapping_user_subnets_are_refused():
    with pytest.raises(Forbidden, match="Pool overlaps"):
        ipam.check_no_overlap([IpamPool("10.5.1.0/24")],
                              [_network(IpamPool("10.5.0.0/16"))])


# -- firewall ------------------------------------------------------------------------------


def test_network_rules_live_in_the_daemons_chains():
    firewall = Firewall("DTW-ABC123", Iptables(blocking_runner))
    text = firewall.network_rules([BridgeRules("br-1", ("10.1.0.0/24",)),
                                   BridgeRules("br-2", ("10.2.0.0/24",), internal=True,
                                               icc=False)])
    lines = text.splitlines()
    assert lines[0] == "*filter" and "*nat" in lines
    rules = [line for line in lines if line.startswith("-A")]
    assert all(line.split()[1].startswith("DTW-ABC123-") for line in rules)
    assert "-A DTW-ABC123-FORWARD -i br-2 -o br-2 -j DROP" in rules
    assert "-A DTW-ABC123-FORWARD -i br-2 ! -o br-2 -j DROP" in rules
    assert "-A DTW-ABC123-POSTROUTING -s 10.1.0.0/24 ! -o br-1 -j MASQUERADE" in rules
    assert not any("-s 10.2.0.0/24 ! -o br-2" in line for line in rules)


def test_port_rules_and_teardown_of_what_a_crash_left():
    firewall = Firewall("DTW-ABC123", Iptables(blocking_runner))
    port = PortRule("udp", "127.0.0.1", 5353, "10.1.0.2", 53, "c" * 64)
    assert firewall.port_rules([port], add=False).splitlines()[1] == (
        "-D DTW-ABC123-DNAT -d 127.0.0.1/32 -p udp -m udp --dport 5353 -m comment "
        "--comment cccccccccccc -j DNAT --to-destination 10.1.0.2:53")
    saved = {"nat": ":PREROUTING ACCEPT [0:0]\n:DTW-ABC123-DNAT - [0:0]\n"
                    ":OTHER-DNAT - [0:0]\n"
                    "-A PREROUTING -m addrtype --dst-type LOCAL -j DTW-ABC123-DNAT\n"
                    "-A PREROUTING -j OTHER-DNAT\n"}
    assert firewall.teardown_rules(saved).splitlines() == [
        "*nat", "-D PREROUTING -m addrtype --dst-type LOCAL -j DTW-ABC123-DNAT",
        ":DTW-ABC123-DNAT - [0:0]", "-X DTW-ABC123-DNAT", "COMMIT"]


# -- /etc files ------------------------------------------------------------------------------


def test_hosts_file_has_docker_defaults_extra_entries_and_own_names():
    text = etcfiles.hosts_file("web", "example.test", ["10.0.0.2"],
                               [etcfiles.HostEntry("1.2.3.4", "x")])
    lines = text.splitlines()
    assert lines[:2] == ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    assert lines[-2:] == ["1.2.3.4\tx", "10.0.0.2\tweb.example.test web"]


def test_resolv_conf_leaves_loopback_servers_out_or_names_the_embedded_dns():
    host = etcfiles.parse_resolv_conf(
        "# comment\nnameserver 127.0.0.53\nnameserver 10.9.9.9\nsearch a.test\n"
        "options edns0\n")
    assert etcfiles.resolv_conf(host) == "# comment\nnameserver 10.9.9.9\nsearch a.test\n" \
                                         "options edns0\n"
    only_local = etcfiles.parse_resolv_conf("nameserver 127.0.0.1\nnameserver ::1\n")
    assert etcfiles.resolv_conf(only_local).splitlines() == ["nameserver 8.8.8.8",
                                                             "nameserver 8.8.4.4"]
    assert etcfiles.resolv_conf(host, embedded=True).splitlines() == [
        "search a.test", "nameserver 127.0.0.11", "options edns0 ndots:0"]
    assert etcfiles.resolv_conf(host, dns=["1.1.1.1"], options=["ndots:2"]).splitlines() == [
        "search a.test", "nameserver 1.1.1.1", "options ndots:2"]


# -- ports ---------------------------------------------------------------------------------


def test_port_requests_from_bindings_and_publish_all():
    exposed = {"80/tcp": {}, "53/udp": {}}
    bindings = {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000-8010"}]}
    assert port_requests(exposed, bindings, publish_all=True) == [
        PortRequest(53, "udp"), PortRequest(80, "tcp", "127.0.0.1", 8000, 8010)]
    assert port_requests(exposed, bindings, publish_all=False) == [
        PortRequest(80, "tcp", "127.0.0.1", 8000, 8010)]
    assert parse_port_key("443") == (443, "tcp")
    with pytest.raises(InvalidParameter, match='invalid port specification: "99999"'):
        parse_port_key("99999/tcp")


def test_port_views_of_inspect_and_list():
    view = ports_view({"80/tcp": {}, "81/tcp": {}}, [(80, "tcp", "0.0.0.0", 8080)])
    assert view == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "81/tcp": None}
    assert summary_ports(view) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 81, "Type": "tcp"}]


# -- the embedded DNS's table -----------------------------------------------------------------


def _info(container: str, network: str, address: str, **fields: Any) -> EndpointInfo:
    return EndpointInfo(container_id=container * 64, container_name=container,
                        hostname=container * 12, network_id=network, network_name=network,
                        endpoint_id="e", ipv4=f"{address}/24", **fields)


def test_names_resolve_only_between_containers_sharing_a_user_network():
    table = EndpointTable()
    table.add(_info("a", "n1", "10.0.0.2", aliases=("alpha",)))
    table.add(_info("b", "n1", "10.0.0.3", links=(("a", "ln"),)))
    table.add(_info("c", "n2", "10.0.1.2"))
    table.add(_info("d", "bridge", "10.9.0.2", user_defined=False))
    assert table.addresses("b" * 64, "alpha") == ["10.0.0.2"]
    assert table.addresses("b" * 64, "A.N1") == ["10.0.0.2"]
    assert table.addresses("b" * 64, "a" * 12) == ["10.0.0.2"]
    assert table.addresses("b" * 64, "ln") == ["10.0.0.2"]
    assert table.addresses("a" * 64, "ln") is None  # b's link, not a's
    assert table.addresses("c" * 64, "a") is None
    assert table.addresses("d" * 64, "a") is None
    assert table.names_of("b" * 64, "10.0.0.2") == ["a.n1"]
    table.remove("a" * 64, "n1")
    assert table.addresses("b" * 64, "alpha") is None


# -- version gates ---------------------------------------------------------------------------


def _inspected(aliases: list[str] | None) -> dict[str, Any]:
    settings = networking.with_runtime(
        networking.endpoint_settings({"Aliases": aliases}), network_id="n",
        endpoint_id="e", ipv4="10.0.0.2/24", gateway="10.0.0.1", ipv6="",
        ipv6_gateway="", mac="02:00:00:00:00:01",
        dns_names=["web", *(aliases or []), "0123456789ab"])
    stored = {"Networks": {"user": settings}, "Ports": {}, "SandboxID": "",
              "SandboxKey": ""}
    return {"NetworkSettings": networking.network_settings_view(stored, True)}


def test_container_network_shapes_follow_the_api_version():
    old = inspect_view(_inspected(["db"]), "1.41")
    endpoint = old["NetworkSettings"]["Networks"]["user"]
    assert endpoint["Aliases"] == ["db", "0123456789ab"]
    assert "DNSNames" not in endpoint and "GwPriority" not in endpoint
    assert "IPAddress" in old["NetworkSettings"]
    new = inspect_view(_inspected(["db"]), "1.52")
    endpoint = new["NetworkSettings"]["Networks"]["user"]
    assert endpoint["Aliases"] == ["db"] and endpoint["DNSNames"][0] == "web"
    assert "GwPriority" in endpoint and "IPAddress" not in new["NetworkSettings"]
    between = inspect_view(_inspected(None), "1.44")
    assert between["NetworkSettings"]["Networks"]["user"]["Aliases"] == ["0123456789ab"]


def test_create_gates_for_endpoints_and_the_container_wide_mac_address():
    two = {"NetworkingConfig": {"EndpointsConfig": {"a": {}, "b": {}}}}
    with pytest.raises(InvalidParameter, match="multiple network endpoints: a, b"):
        create_body(two, "1.43")
    assert create_body(two, "1.44")[1] == []
    mac = "02:42:ac:11:00:0a"
    old, warnings = create_body({"MacAddress": mac, "HostConfig": {"NetworkMode": "default"},
                                 "NetworkingConfig": {"EndpointsConfig": {
                                     "bridge": {"MacAddress": "02:00:00:00:00:01"}}}},
                                "1.41")
    assert warnings == []
    assert old["NetworkingConfig"]["EndpointsConfig"]["bridge"]["MacAddress"] == mac
    endpoint_only = {"NetworkingConfig": {"EndpointsConfig": {"n1": {"MacAddress": mac}}}}
    assert "MacAddress" not in create_body(endpoint_only, "1.43")[0][
        "NetworkingConfig"]["EndpointsConfig"]["n1"]
    assert create_body(endpoint_only, "1.44")[0]["NetworkingConfig"]["EndpointsConfig"][
        "n1"]["MacAddress"] == mac
    newer, warnings = create_body({"MacAddress": mac, "HostConfig": {"NetworkMode": "n1"}},
                                  "1.44")
    assert "deprecated" in warnings[0]
    assert newer["NetworkingConfig"]["EndpointsConfig"]["n1"]["MacAddress"] == mac
    with pytest.raises(InvalidParameter, match="container-wide MAC address no longer"):
        create_body({"MacAddress": mac}, "1.52")
    with pytest.raises(InvalidParameter, match="mac-address and the network mode"):
        create_body({"MacAddress": mac, "HostConfig": {"NetworkMode": "host"}}, "1.41")


def test_network_shapes_follow_the_api_version():
    def network() -> dict[str, Any]:
        return {"Name": "n", "EnableIPv4": True, "Containers": {"c": {}},
                "Status": {"IPAM": {}}}
    assert network_view(network(), "1.27", listed=True) == {"Name": "n",
                                                            "Containers": {"c": {}}}
    assert network_view(network(), "1.41", listed=True)["Containers"] == {}
    assert "Status" not in network_view(network(), "1.51", listed=False)
    assert "EnableIPv4" not in network_view(network(), "1.47", listed=False)
    assert network_view(network(), "1.52", listed=False) == network()
    assert network_view(network(), "1.52", listed=True) == {"Name": "n", "EnableIPv4": True}


# -- daemon options ---------------------------------------------------------------------------


def test_networking_options_reach_the_engine_config():
    options = Options()
    options.parseOptions(["--bridge", "br-x", "--bip", "10.7.0.1/24", "--icc=false",
                          "--dns", "127.0.0.1", "--dns-search", "a.test",
                          "--default-address-pool", "base=10.8.0.0/16,size=24",
                          "--userland-proxy=true"])
    config = options["network"]
    assert (config.bridge, config.bip, config.icc, config.ip_masq) == (
        "br-x", "10.7.0.1/24", False, True)
    assert config.dns == ("127.0.0.1",) and config.dns_search == ("a.test",)
    assert [str(pool.base) for pool in config.pools] == ["10.8.0.0/16"]


@pytest.mark.parametrize("args, message", [
    (["--bridge", "a-name-much-too-long"], "--bridge: invalid device name"),
    (["--bip", "10.7.0.300/24"], "--bip: invalid address"),
    (["--icc=maybe"], "--icc: expected true or false"),
    (["--default-address-pool", "base=10.8.0.0/16"], "invalid default address pool"),
    (["--dns", "example.com"], "--dns: invalid address"),
])
def test_bad_networking_options_are_usage_errors(args: list[str], message: str):
    with pytest.raises(usage.UsageError, match=message):
        Options().parseOptions(args)

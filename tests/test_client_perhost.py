"""PerHost bypass policy: every P vector of the client-connection spec, section 1.7."""

from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest

from dockertw.client.perhost import AddrError, PerHost

# (AddFromString argument, dial address, "bypass" | "proxy" | "error")
P_VECTORS = [
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "example.com:123", "proxy",
                 id="P1"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "1.2.3.4:123", "proxy",
                 id="P2"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "[1001::]:123", "proxy",
                 id="P3"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "localhost:123", "bypass",
                 id="P4"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "zone:123", "bypass", id="P5"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "foo.zone:123", "bypass",
                 id="P6"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "127.0.0.1:123", "bypass",
                 id="P7"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "10.1.2.3:123", "bypass",
                 id="P8"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "[1000::]:123", "bypass",
                 id="P9"),
    pytest.param("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16", "[1000::%25.example.com]:123",
                 "bypass", id="P10"),
    pytest.param("localhost", "127.0.0.1:80", "proxy", id="P11"),
    pytest.param("localhost", "localhost:80", "bypass", id="P12"),
    pytest.param("*.zone", "foo.com:80", "proxy", id="P13"),
    pytest.param("*.zone", "foo.zone:80", "bypass", id="P14"),
    pytest.param("*.zone", "foo.bar.zone:80", "bypass", id="P15"),
    pytest.param("1.2.3.4", "127.0.0.1:80", "proxy", id="P16"),
    pytest.param("1.2.3.4", "11.2.3.4:80", "proxy", id="P17"),
    pytest.param("1.2.3.4", "1.2.3.4:80", "bypass", id="P18"),
    pytest.param("10.0.0.0/24", "10.0.1.1:80", "proxy", id="P19"),
    pytest.param("10.0.0.0/24", "10.0.0.1:80", "bypass", id="P20"),
    pytest.param("10.0.0.0/24", "10.0.0.255:80", "bypass", id="P21"),
    pytest.param("fe80::/10", "[fec0::1]:80", "proxy", id="P22"),
    pytest.param("fe80::/10", "[fec0::1%en0]:80", "proxy", id="P23"),
    pytest.param("fe80::/10", "[fe80::1]:80", "bypass", id="P24"),
    pytest.param("fe80::/10", "[fe80::1%en0]:80", "bypass", id="P25"),
    pytest.param("fe80::%en0/10", "[fec0::1]:80", "proxy", id="P26"),
    pytest.param("fe80::%en0/10", "[fe80::1]:80", "proxy", id="P27"),
    pytest.param("fe80::%en0/10", "[fe80::1%en0]:80", "proxy", id="P28"),
    pytest.param("", "example.com:80", "proxy", id="P29"),
    pytest.param("*", "example.com:80", "proxy", id="P30"),
    pytest.param("*", "127.0.0.1:80", "proxy", id="P31"),
    pytest.param("*", "*:80", "bypass", id="P32"),
    pytest.param(".zone", "foo.zone:80", "proxy", id="P33"),
    pytest.param(".zone", "zone:80", "proxy", id="P34"),
    pytest.param(".zone", ".zone:80", "bypass", id="P35"),
    pytest.param("zone", "foo.zone:80", "proxy", id="P36"),
    pytest.param("zone", "zone:80", "bypass", id="P37"),
    pytest.param("zone.", "zone:80", "bypass", id="P38"),
    pytest.param("zone", "zone.:80", "proxy", id="P39"),
    pytest.param("*.zone.", "foo.zone:80", "bypass", id="P40"),
    pytest.param("*.zone.", "zone:80", "bypass", id="P41"),
    pytest.param("*.zone", "foo.zone.:80", "proxy", id="P42"),
    pytest.param("*.zone", "zone.:80", "proxy", id="P43"),
    pytest.param("*.zone", "foozone:80", "proxy", id="P44"),
    pytest.param("*.zone", "a.b.c.zone:443", "bypass", id="P45"),
    pytest.param("*zone", "foo.zone:80", "proxy", id="P46"),
    pytest.param("*.", "example.com:80", "proxy", id="P47"),
    pytest.param("*.", "example.com.:80", "bypass", id="P48"),
    pytest.param("LOCALHOST", "localhost:80", "proxy", id="P49"),
    pytest.param("localhost", "LOCALHOST:80", "proxy", id="P50"),
    pytest.param("*.ZONE", "foo.zone:80", "proxy", id="P51"),
    pytest.param("*.zone", "FOO.ZONE:80", "proxy", id="P52"),
    pytest.param(" localhost , *.zone ", "localhost:80", "bypass", id="P53"),
    pytest.param(" localhost , *.zone ", "x.zone:80", "bypass", id="P54"),
    pytest.param(",,localhost,,", "localhost:80", "bypass", id="P55"),
    pytest.param("localhost:80", "localhost:80", "proxy", id="P56"),
    pytest.param("[::1]", "[::1]:80", "proxy", id="P57"),
    pytest.param("::1", "[::1]:80", "bypass", id="P58"),
    pytest.param("::1", "[0:0:0:0:0:0:0:1]:80", "bypass", id="P59"),
    pytest.param("1.2.3.4", "[::ffff:1.2.3.4]:80", "bypass", id="P60"),
    pytest.param("::ffff:1.2.3.4", "1.2.3.4:80", "bypass", id="P61"),
    pytest.param("1.2.3.0/24", "[::ffff:1.2.3.9]:80", "bypass", id="P62"),
    pytest.param("010.0.0.1", "10.0.0.1:80", "proxy", id="P63"),
    pytest.param("010.0.0.1", "010.0.0.1:80", "bypass", id="P64"),
    pytest.param("10.0.0.1/8", "10.255.255.255:80", "bypass", id="P65"),
    pytest.param("10.0.0.0/33", "10.0.0.1:80", "proxy", id="P66"),
    pytest.param("1.2.3.4:80", "1.2.3.4:80", "proxy", id="P67"),
    pytest.param("fe80::1%en0", "[fe80::1%en1]:80", "bypass", id="P68"),
    pytest.param("fe80::1%en0", "[fe80::1]:80", "bypass", id="P69"),
    pytest.param("*.zone", "[fe80::1%25.zone]:80", "proxy", id="P70"),
    pytest.param("*.zone", "[fe80::1%zone]:80", "proxy", id="P71"),
    pytest.param("*.示例.com", "www.示例.com:80", "bypass", id="P72"),
    pytest.param("*.示例.com", "www.xn--fsq092h.com:80", "proxy", id="P73"),
    pytest.param("2001:db8::/32", "[2001:db8::1]:443", "bypass", id="P74"),
    pytest.param("2001:db8::/32", "[2001:db9::1]:443", "proxy", id="P75"),
    pytest.param("0.0.0.0/0", "8.8.8.8:53", "bypass", id="P76"),
    pytest.param("0.0.0.0/0", "[2001:db8::1]:53", "proxy", id="P77"),
    pytest.param("0.0.0.0/0", "example.com:53", "proxy", id="P78"),
    pytest.param("::/0", "[2001:db8::1]:53", "bypass", id="P79"),
    pytest.param("::/0", "1.2.3.4:53", "proxy", id="P80"),
    pytest.param("::/0", "[::ffff:1.2.3.4]:53", "proxy", id="P81"),
    pytest.param("127.0.0.1", "localhost:80", "proxy", id="P82"),
    pytest.param("example.com", "example.com:2376", "bypass", id="P83"),
    pytest.param("example.com", "www.example.com:2376", "proxy", id="P84"),
    pytest.param("*.example.com", "example.com:2376", "bypass", id="P85"),
    pytest.param("*.example.com", "www.example.com:2376", "bypass", id="P86"),
    pytest.param("docker", "docker:2375", "bypass", id="P87"),
    pytest.param("example.com", "example.com", "error", id="P88"),
]


@pytest.mark.parametrize(("rules", "address", "expected"), P_VECTORS)
def test_p_vectors(rules: str, address: str, expected: str) -> None:
    policy = PerHost.from_string(rules)
    if expected == "error":
        with pytest.raises(AddrError, match="missing port in address"):
            policy.bypasses(address)
    else:
        assert policy.bypasses(address) is (expected == "bypass")


@pytest.mark.parametrize(("rules", "attribute", "expected"), [
    pytest.param("*.zone.", "zones", (".zone",), id="star-zone-dot"),
    pytest.param(".zone", "hosts", (".zone",), id="dot-zone-is-host"),
    pytest.param("*.", "zones", (".",), id="star-dot"),
    pytest.param("*", "hosts", ("*",), id="star"),
    pytest.param("zone.", "hosts", ("zone",), id="host-trailing-dot"),
    pytest.param("[::1]", "hosts", ("[::1]",), id="bracketed-v6"),
    pytest.param("localhost:80", "hosts", ("localhost:80",), id="host-port"),
    pytest.param("010.0.0.1", "hosts", ("010.0.0.1",), id="leading-zero"),
    pytest.param("fe80::1%en0", "ips", (IPv6Address("fe80::1"),), id="zone-dropped"),
    pytest.param("10.0.0.1/8", "networks", (ip_network("10.0.0.0/8"),), id="cidr-masked"),
    pytest.param("10.0.0.0/33", "networks", (), id="bad-cidr-dropped"),
    pytest.param("10.0.0.0/33", "hosts", (), id="bad-cidr-not-host"),
    pytest.param("10.0.0.0/255.0.0.0", "networks", (), id="netmask-form-refused"),
    pytest.param("*.示例.com", "zones", (".示例.com",), id="idn-kept-raw"),
    pytest.param("Host.Example.", "hosts", ("Host.Example",), id="case-kept"),
])
def test_state(rules: str, attribute: str, expected: tuple[object, ...]) -> None:
    assert getattr(PerHost.from_string(rules), attribute) == expected


def test_state_every_list() -> None:
    policy = PerHost.from_string("localhost,*.zone,127.0.0.1,10.0.0.1/8,1000::/16")
    assert policy.hosts == ("localhost",)
    assert policy.zones == (".zone",)
    assert policy.ips == (IPv4Address("127.0.0.1"),)
    assert policy.networks == (ip_network("10.0.0.0/8"), ip_network("1000::/16"))


@pytest.mark.parametrize(("zone", "stored"), [
    ("example.com.", ".example.com"),
    (".Example.org", ".Example.org"),
    ("example.com..", ".example.com."),
    ("", "."),
])
def test_add_zone(zone: str, stored: str) -> None:
    policy = PerHost()
    policy.add_zone(zone)
    assert policy.zones == (stored,)


def test_add_host_removes_one_trailing_dot() -> None:
    policy = PerHost()
    policy.add_host("Host.Example.")
    policy.add_host("twice..")
    assert policy.hosts == ("Host.Example", "twice.")
    assert policy.bypasses("Host.Example:1")
    assert not policy.bypasses("host.example:1")


def test_add_ip_and_network_directly() -> None:
    policy = PerHost()
    policy.add_ip(IPv6Address("::ffff:192.0.2.7"))
    policy.add_network(ip_network("198.51.100.0/24"))
    assert policy.bypasses("192.0.2.7:22")
    assert policy.bypasses("[::ffff:198.51.100.200]:22")
    assert not policy.bypasses("192.0.2.8:22")
    assert not policy.bypasses("[2001:db8::1]:22")


def test_v4_mapped_network_contains_plain_ipv4() -> None:
    policy = PerHost.from_string("::ffff:10.0.0.0/104")
    assert policy.bypasses("10.1.2.3:80")
    assert policy.bypasses("[::ffff:10.9.9.9]:80")
    assert not policy.bypasses("11.0.0.1:80")


def test_rules_accumulate() -> None:
    policy = PerHost.from_string("a.example")
    policy.add_from_string("b.example")
    assert policy.bypasses("a.example:1") and policy.bypasses("b.example:1")


def test_go_whitespace_only() -> None:
    # U+00A0 and U+3000 are Go spaces; U+001F is not (Python's strip() would take it).
    assert PerHost.from_string("\u00a0docker\u3000").hosts == ("docker",)
    assert PerHost.from_string("\x1fdocker").hosts == ("\x1fdocker",)


@pytest.mark.parametrize(("address", "message"), [
    ("example.com", "address example.com: missing port in address"),
    ("::1", "address ::1: too many colons in address"),
    ("[::1", "address [::1: missing ']' in address"),
    ("[::1]", "address [::1]: missing port in address"),
    ("[::1]x:80", "address [::1]x:80: missing port in address"),
    ("[::1]::80", "address [::1]::80: too many colons in address"),
    ("a[b:80", "address a[b:80: unexpected '[' in address"),
    ("a]b:80", "address a]b:80: unexpected ']' in address"),
])
def test_dial_address_must_split(address: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        PerHost.from_string("example.com").bypasses(address)
    assert str(caught.value) == message


@pytest.mark.parametrize(("address", "expected"), [
    ("example.com:", True),
    ("example.com:notaport", True),
    ("[fe80::1%25en0]:x", False),
])
def test_port_not_validated(address: str, expected: bool) -> None:
    assert PerHost.from_string("example.com").bypasses(address) is expected


def test_repr_names_rules() -> None:
    text = repr(PerHost.from_string("h,*.z,1.2.3.4,10.0.0.0/8"))
    assert "10.0.0.0/8" in text and "1.2.3.4" in text and "'.z'" in text and "'h'" in text

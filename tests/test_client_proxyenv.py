"""Proxy selection: every H vector of the client-connection spec, section 2.6, the
upstream ``TestUseProxy`` table, ALL_PROXY (section 1.6) and :class:`ProxyURL`."""

import attrs
import pytest

from dockertw.client.proxyenv import (
    CGI_REFUSAL,
    NoProxyMatcher,
    ProxyEnvironment,
    ProxyError,
    ProxyURL,
)

CGI = "CGI refusal"

# (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, CGI, request URL, proxy URL or None or CGI);
# None in an environment column means "unset".
H_VECTORS = [
    pytest.param("127.0.0.1:8080", None, None, False, "http://example.com", "http://127.0.0.1:8080",
                 id="H1"),
    pytest.param("cache.corp.example.com:1234", None, None, False, "http://example.com",
                 "http://cache.corp.example.com:1234", id="H2"),
    pytest.param("localhost", None, None, False, "http://example.com", "http://localhost", id="H3"),
    pytest.param("localhost:3128", None, None, False, "http://example.com", "http://localhost:3128",
                 id="H4"),
    pytest.param("proxy.example:3128", None, None, False, "http://example.com",
                 "http://proxy.example:3128", id="H5"),
    pytest.param("socks5://127.0.0.1", None, None, False, "http://example.com",
                 "socks5://127.0.0.1", id="H6"),
    pytest.param("socks5h://user:pw@127.0.0.1:1080", None, None, False, "http://example.com",
                 "socks5h://user:pw@127.0.0.1:1080", id="H7"),
    pytest.param("foo://host", None, None, False, "http://example.com", "foo://host", id="H8"),
    pytest.param("http://a b", None, None, False, "http://example.com", "http://http://a%20b",
                 id="H9"),
    pytest.param("http://[::1", None, None, False, "http://example.com", "http://http://[::1",
                 id="H10"),
    pytest.param("http.proxy.tld", "secure.proxy.tld", None, False, "http://insecure.tld/",
                 "http://http.proxy.tld", id="H11"),
    pytest.param("http.proxy.tld", "secure.proxy.tld", None, False, "https://secure.tld/",
                 "http://secure.proxy.tld", id="H12"),
    pytest.param("http.proxy.tld", None, None, False, "https://secure.tld/", None, id="H13"),
    pytest.param(None, "secure.proxy.tld", None, False, "http://insecure.tld/", None, id="H14"),
    pytest.param("http.proxy.tld", None, None, False, "ftp://insecure.tld/", None, id="H15"),
    pytest.param("http.proxy.tld", None, None, False, "ws://insecure.tld/", None, id="H16"),
    pytest.param("http://10.1.2.3:8080", None, None, True, "http://example.com", CGI, id="H17"),
    pytest.param(None, "https://secure.proxy.tld", None, True, "https://secure.tld/",
                 "https://secure.proxy.tld", id="H18"),
    pytest.param(None, None, None, False, "http://example.com", None, id="H19"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://localhost:2375/", None,
                 id="H20"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "https://localhost:2376/", None,
                 id="H21"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://LOCALHOST/",
                 "http://proxy:3128", id="H22"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://localhost./",
                 "http://proxy:3128", id="H23"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://foo.localhost/",
                 "http://proxy:3128", id="H24"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://127.0.0.1:2375/", None,
                 id="H25"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://127.9.9.9/", None,
                 id="H26"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://[::1]:2375/", None,
                 id="H27"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://[::ffff:127.0.0.1]/",
                 None, id="H28"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://0.0.0.0:2375/",
                 "http://proxy:3128", id="H29"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://[::]:2375/",
                 "http://proxy:3128", id="H30"),
    pytest.param("proxy:3128", "https://sproxy:443", "*", False, "http://example.com/", None,
                 id="H31"),
    pytest.param("proxy:3128", "https://sproxy:443", "*", False, "https://example.com/", None,
                 id="H32"),
    pytest.param("proxy:3128", "https://sproxy:443", "foo.com,*", False, "http://example.com/",
                 None, id="H33"),
    pytest.param("proxy:3128", "https://sproxy:443", " * ", False, "http://example.com/", None,
                 id="H34"),
    pytest.param("proxy:3128", "https://sproxy:443", "*.", False, "http://example.com/",
                 "http://proxy:3128", id="H35"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com", False, "http://example.com/",
                 None, id="H36"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com", False,
                 "http://foo.example.com/", None, id="H37"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com", False, "http://fooexample.com/",
                 "http://proxy:3128", id="H38"),
    pytest.param("proxy:3128", "https://sproxy:443", "ample.com", False, "http://example.com/",
                 "http://proxy:3128", id="H39"),
    pytest.param("proxy:3128", "https://sproxy:443", ".example.com", False, "http://example.com/",
                 "http://proxy:3128", id="H40"),
    pytest.param("proxy:3128", "https://sproxy:443", ".example.com", False,
                 "http://www.example.com/", None, id="H41"),
    pytest.param("proxy:3128", "https://sproxy:443", "*.example.com", False, "http://example.com/",
                 "http://proxy:3128", id="H42"),
    pytest.param("proxy:3128", "https://sproxy:443", "*.example.com", False,
                 "http://www.example.com/", None, id="H43"),
    pytest.param("proxy:3128", "https://sproxy:443", "EXAMPLE.COM", False,
                 "http://www.Example.com/", None, id="H44"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com", False, "http://EXAMPLE.COM/",
                 None, id="H45"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com.", False, "http://example.com/",
                 "http://proxy:3128", id="H46"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com", False, "http://example.com./",
                 "http://proxy:3128", id="H47"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com:8080", False,
                 "http://example.com:8080/", None, id="H48"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com:8080", False,
                 "http://example.com/", "http://proxy:3128", id="H49"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com:80", False, "http://example.com/",
                 None, id="H50"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com:443", False,
                 "https://example.com/", None, id="H51"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com:443", False,
                 "http://example.com/", "http://proxy:3128", id="H52"),
    pytest.param("proxy:3128", "https://sproxy:443", ".example.com:2376", False,
                 "https://d.example.com:2376/", None, id="H53"),
    pytest.param("proxy:3128", "https://sproxy:443", "http://example.com", False,
                 "http://example.com/", "http://proxy:3128", id="H54"),
    pytest.param("proxy:3128", "https://sproxy:443", "10.0.0.0/8", False, "http://10.1.2.3:2375/",
                 None, id="H55"),
    pytest.param("proxy:3128", "https://sproxy:443", "10.0.0.0/8", False, "http://11.1.2.3:2375/",
                 "http://proxy:3128", id="H56"),
    pytest.param("proxy:3128", "https://sproxy:443", "10.0.0.0/8", False, "http://ten.example/",
                 "http://proxy:3128", id="H57"),
    pytest.param("proxy:3128", "https://sproxy:443", "10.1.2.3", False, "http://10.1.2.3:2375/",
                 None, id="H58"),
    pytest.param("proxy:3128", "https://sproxy:443", "10.1.2.3:2375", False,
                 "http://10.1.2.3:2375/", None, id="H59"),
    pytest.param("proxy:3128", "https://sproxy:443", "10.1.2.3:2376", False,
                 "http://10.1.2.3:2375/", "http://proxy:3128", id="H60"),
    pytest.param("proxy:3128", "https://sproxy:443", "010.1.2.3", False, "http://10.1.2.3/",
                 "http://proxy:3128", id="H61"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com", False, "http://93.184.216.34/",
                 "http://proxy:3128", id="H62"),
    pytest.param("proxy:3128", "https://sproxy:443", "2001:db8::1", False, "http://[2001:db8::1]/",
                 None, id="H63"),
    pytest.param("proxy:3128", "https://sproxy:443", "[2001:db8::1]", False,
                 "http://[2001:db8::1]/", "http://proxy:3128", id="H64"),
    pytest.param("proxy:3128", "https://sproxy:443", "[2001:db8::1]:80", False,
                 "http://[2001:db8::1]/", None, id="H65"),
    pytest.param("proxy:3128", "https://sproxy:443", "[2001:db8::1]:443", False,
                 "http://[2001:db8::1]/", "http://proxy:3128", id="H66"),
    pytest.param("proxy:3128", "https://sproxy:443", "2001:db8::/32", False,
                 "https://[2001:db8::5]:2376/", None, id="H67"),
    pytest.param("proxy:3128", "https://sproxy:443", "fe80::/10", False, "http://[fe80::1%25en0]/",
                 None, id="H68"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com", False,
                 "http://[1000::%25.example.com]:123", "http://proxy:3128", id="H69"),
    pytest.param("proxy:3128", "https://sproxy:443", ".示例.com", False, "http://www.示例.com",
                 None, id="H70"),
    pytest.param("proxy:3128", "https://sproxy:443", "xn--fsq092h.com", False,
                 "http://www.示例.com", None, id="H71"),
    pytest.param("proxy:3128", "https://sproxy:443", "示例.com", False,
                 "http://www.xn--fsq092h.com", None, id="H72"),
    pytest.param("proxy:3128", "https://sproxy:443", ":1", False, "http://example.com/",
                 "http://proxy:3128", id="H73"),
    pytest.param("proxy:3128", "https://sproxy:443", " , ,", False, "http://example.com/",
                 "http://proxy:3128", id="H74"),
    pytest.param("proxy:3128", "https://sproxy:443", "1.2.3.4,example.com", False,
                 "http://[::ffff:1.2.3.4]/", None, id="H75"),
    pytest.param("proxy:3128", "https://sproxy:443", "docker", False, "http://docker/", None,
                 id="H76"),
    pytest.param("proxy:3128", "https://sproxy:443", "docker", False, "http://api.moby.localhost/",
                 "http://proxy:3128", id="H77"),
    pytest.param("proxy:3128", "https://sproxy:443", "fe80::1%en0", False,
                 "http://[fe80::1%25en0]/", "http://proxy:3128", id="H78"),
    pytest.param("proxy:3128", "https://sproxy:443", "example.com:080", False,
                 "http://example.com:80/", "http://proxy:3128", id="H79"),
    pytest.param("proxy:3128", "socks5://127.0.0.1:1080", None, False, "https://example.com/",
                 "socks5://127.0.0.1:1080", id="H80"),
    pytest.param("proxy:3128", "https://sproxy:443", "localhost", False, "http://LOCALHOST/", None,
                 id="H81"),
    pytest.param("proxy:3128", "https://sproxy:443", None, False, "http://[::ffff:7f00:1]/", None,
                 id="H82"),
]


def _environment(http: str | None, https: str | None, no_proxy: str | None,
                 cgi: bool) -> dict[str, str]:
    env = {"HTTP_PROXY": http, "HTTPS_PROXY": https, "NO_PROXY": no_proxy,
           "REQUEST_METHOD": "GET" if cgi else None}
    return {name: value for name, value in env.items() if value is not None}


@pytest.mark.parametrize(("http", "https", "no_proxy", "cgi", "url", "expected"), H_VECTORS)
def test_h_vectors(http: str | None, https: str | None, no_proxy: str | None, cgi: bool,
                   url: str, expected: str | None) -> None:
    proxies = ProxyEnvironment.from_env(_environment(http, https, no_proxy, cgi))
    if expected == CGI:
        with pytest.raises(ProxyError) as caught:
            proxies.proxy_for(url)
        assert str(caught.value) == CGI_REFUSAL
    else:
        assert proxies.proxy_for(url) == expected


def test_cgi_refusal_text() -> None:
    assert CGI_REFUSAL == ("refusing to use HTTP_PROXY value in CGI environment; "
                           "see golang.org/s/cgihttpproxy")


UPSTREAM_NO_PROXY = (
    "foobar.com, .barbaz.net, *.wildcard.io, 192.168.1.1, 192.168.1.2:81, 192.168.1.3:80, "
    "10.0.0.0/30, 2001:db8::52:0:1, [2001:db8::52:0:2]:443, [2001:db8::52:0:3]:80, "
    "2002:db8:a::45/64"
)
UPSTREAM_DIRECT = [
    "localhost", "127.0.0.1", "127.0.0.2", "[::1]", "192.168.1.1", "192.168.1.3",
    "10.0.0.2", "[2001:db8::52:0:1]", "[2001:db8::52:0:3]", "[2002:db8:a::123]",
    "www.barbaz.net", "foobar.com", "www.foobar.com", "nested.wildcard.io",
]
UPSTREAM_PROXIED = [
    "[::2]", "192.168.1.2", "192.168.1.4", "[2001:db8::52:0:2]",
    "[fe80::424b:c8be:1643:a1b6]", "barbaz.net", "foofoobar.com", "baz.com",
    "localhost.net", "local.localhost", "barbarbaz.net", "wildcard.io", "awildcard.io",
]


@pytest.mark.parametrize("host", UPSTREAM_DIRECT + UPSTREAM_PROXIED)
def test_upstream_use_proxy(host: str) -> None:
    proxies = ProxyEnvironment.from_env({"HTTP_PROXY": "proxy", "NO_PROXY": UPSTREAM_NO_PROXY})
    expected = None if host in UPSTREAM_DIRECT else "http://proxy"
    assert proxies.proxy_for(f"http://{host}:80/") == expected


@pytest.mark.parametrize("host", UPSTREAM_DIRECT + UPSTREAM_PROXIED)
def test_upstream_all_no_proxy(host: str) -> None:
    proxies = ProxyEnvironment.from_env({"HTTP_PROXY": "proxy", "NO_PROXY": "*"})
    assert proxies.proxy_for(f"http://{host}:80/") is None


@pytest.mark.parametrize(("env", "expected"), [
    ({"HTTP_PROXY": "a", "http_proxy": "b"}, "http://a"),
    ({"HTTP_PROXY": "", "http_proxy": "b"}, "http://b"),
    ({"http_proxy": "b"}, "http://b"),
    ({"HTTP_PROXY": "a", "NO_PROXY": "", "no_proxy": "example.com"}, None),
    ({"HTTP_PROXY": "a", "NO_PROXY": "other.com", "no_proxy": "example.com"}, "http://a"),
    ({"HTTP_PROXY": "a", "REQUEST_METHOD": ""}, "http://a"),
    ({"HTTP_PROXY": "a", "ALL_PROXY": "socks5://s:1080"}, "http://a"),
])
def test_environment_precedence(env: dict[str, str], expected: str | None) -> None:
    assert ProxyEnvironment.from_env(env).proxy_for("http://example.com/") == expected


def test_https_lowercase_variable() -> None:
    proxies = ProxyEnvironment.from_env({"https_proxy": "s:1", "HTTPS_PROXY": ""})
    assert proxies.proxy_for("https://example.com/") == "http://s:1"


def test_cgi_without_http_proxy_is_no_error() -> None:
    proxies = ProxyEnvironment.from_env({"REQUEST_METHOD": "GET", "HTTPS_PROXY": "s"})
    assert proxies.proxy_for("http://example.com/") is None
    assert proxies.proxy_for("ftp://example.com/") is None


def test_cgi_refusal_before_no_proxy() -> None:
    proxies = ProxyEnvironment.from_env(
        {"REQUEST_METHOD": "POST", "HTTP_PROXY": "p", "NO_PROXY": "*"})
    with pytest.raises(ProxyError, match="CGI environment"):
        proxies.proxy_for("http://localhost/")


def test_snapshot_ignores_later_changes() -> None:
    env = {"HTTP_PROXY": "p:1"}
    proxies = ProxyEnvironment.from_env(env)
    env["HTTP_PROXY"] = "q:2"
    env["NO_PROXY"] = "*"
    assert proxies.proxy_for("http://example.com/") == "http://p:1"


def test_snapshot_is_frozen_and_compares_by_values() -> None:
    proxies = ProxyEnvironment.from_env({"HTTP_PROXY": "p", "no_proxy": "x"})
    assert proxies == ProxyEnvironment(http_proxy="p", no_proxy="x")
    assert proxies != ProxyEnvironment(http_proxy="p")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        proxies.http_proxy = "q"  # type: ignore[misc]


def test_empty_environment_is_direct() -> None:
    proxies = ProxyEnvironment.from_env({})
    assert proxies.proxy_for("https://example.com/") is None
    assert proxies.all_proxy_for("example.com:443") is None


@pytest.mark.parametrize(("url", "message"), [
    ("http://[::1", "parse \"http://[::1\": missing ']' in host"),
    ("http://%6Cocalhost/", 'parse "http://%6Cocalhost/": invalid URL escape "%6C"'),
])
def test_unparsable_request_url(url: str, message: str) -> None:
    with pytest.raises(ProxyError) as caught:
        ProxyEnvironment.from_env({"HTTP_PROXY": "p"}).proxy_for(url)
    assert str(caught.value) == message


@pytest.mark.parametrize(("value", "expected"), [
    ("user:p%40ss@proxy:3128", "http://user:p%40ss@proxy:3128"),
    ("HTTPS://Proxy:443", "https://Proxy:443"),
    ("http://proxy:3128/path?q#f", "http://proxy:3128/path?q#f"),
    ("[::1]:3128", "http://[::1]:3128"),
    ("http://[fe80::1%25en0]:3128", "http://[fe80::1%25en0]:3128"),
    ("http://a%zz", None),
    ("%zz", None),
])
def test_proxy_value_parsing(value: str, expected: str | None) -> None:
    proxies = ProxyEnvironment.from_env({"HTTP_PROXY": value})
    assert proxies.proxy_for("http://example.com/") == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTP://example.com/", "http://p"),
    ("http://LOCALHOST:80/", "http://p"),
    ("http://localhost:/", None),
    ("http://localhost:2375/", None),
    ("http://127.0.0.1.nip.io/", "http://p"),
    ("http://[::ffff:7f00:1]/", None),
    ("http://[::1%25lo]/", None),
])
def test_loopback_rules(url: str, expected: str | None) -> None:
    assert ProxyEnvironment.from_env({"HTTP_PROXY": "p"}).proxy_for(url) == expected


def test_invalid_idn_target_compared_raw() -> None:
    # "a\u200db" (zero-width joiner) has no punycode form; Go keeps the raw name.
    proxies = ProxyEnvironment.from_env({"HTTP_PROXY": "p", "NO_PROXY": "a\u200db.test"})
    assert proxies.proxy_for("http://a\u200db.test/") is None
    assert proxies.proxy_for("http://ab.test/") == "http://p"


def test_fullwidth_dot_idn() -> None:
    proxies = ProxyEnvironment.from_env({"HTTP_PROXY": "p", "NO_PROXY": "xn--fsq092h.com"})
    assert proxies.proxy_for("http://www.\u793a\u4f8b\u3002com/") is None


@pytest.mark.parametrize(("text", "everything", "ip_rules", "domain_rules"), [
    ("*", True, 0, 0),
    ("foo.com,*,10.0.0.0/8", True, 0, 0),
    ("*.", False, 0, 1),
    ("10.0.0.0/8, 1.2.3.4:80, [::1]:443, ::2", False, 4, 0),
    (" , ,:1", False, 0, 0),
    ("Example.COM, .a.b, *.c.d, [::1], 010.0.0.1", False, 0, 5),
    ("10.0.0.0/33", False, 0, 1),
])
def test_no_proxy_parsing(text: str, everything: bool, ip_rules: int,
                          domain_rules: int) -> None:
    matcher = NoProxyMatcher.from_string(text)
    assert matcher.everything is everything
    assert (len(matcher.ip_rules), len(matcher.domain_rules)) == (ip_rules, domain_rules)


def test_no_proxy_domain_rules_are_lowercased_and_punycoded() -> None:
    matcher = NoProxyMatcher.from_string("EXAMPLE.com:8080, *.示例.com, .Sub.Org")
    stored = [(rule.suffix, rule.port, rule.match_bare) for rule in matcher.domain_rules]
    assert stored == [(".example.com", "8080", True), (".xn--fsq092h.com", "", False),
                      (".sub.org", "", False)]


@pytest.mark.parametrize(("address", "expected"), [
    ("", False),
    ("a]b:80", True),
    ("localhost:1", True),
    ("example.com:80", True),
    ("www.example.com:80", True),
    ("fooexample.com:80", False),
])
def test_no_proxy_matcher_addresses(address: str, expected: bool) -> None:
    assert NoProxyMatcher.from_string("example.com").bypasses(address) is expected


# ---- ALL_PROXY (x/net/proxy FromEnvironment) ----

@pytest.mark.parametrize(("env", "expected"), [
    ({"ALL_PROXY": "socks5://127.0.0.1:1080"}, "socks5://127.0.0.1:1080"),
    ({"all_proxy": "socks5h://u:p@s"}, "socks5h://u:p@s"),
    ({"ALL_PROXY": "", "all_proxy": "socks5://low"}, "socks5://low"),
    ({"ALL_PROXY": "socks5://up", "all_proxy": "socks5://low"}, "socks5://up"),
    ({"ALL_PROXY": "SOCKS5://Up:1"}, "socks5://Up:1"),
    ({"ALL_PROXY": "127.0.0.1:8080"}, None),
    ({"ALL_PROXY": "ftp://proxy"}, None),
    ({"ALL_PROXY": "http://proxy:3128"}, None),
    ({"ALL_PROXY": "socks4://proxy"}, None),
    ({"ALL_PROXY": "socks5://[::1"}, None),
    ({}, None),
])
def test_all_proxy_selection(env: dict[str, str], expected: str | None) -> None:
    assert ProxyEnvironment.from_env(env).all_proxy_for("example.com:2375") == expected


@pytest.mark.parametrize(("no_proxy", "address", "direct"), [
    ("", "localhost:2375", False),
    ("", "127.0.0.1:2375", False),
    ("docker", "localhost:2375", False),
    ("docker", "docker:2375", True),
    ("*", "example.com:2375", False),
    ("*", "*:2375", True),
    ("*.zone", "zone:2375", True),
    ("*.zone", "a.zone:2375", True),
    (".zone", "a.zone:2375", False),
    ("10.0.0.0/8", "[::ffff:10.1.1.1]:2375", True),
    ("example.com:2375", "example.com:2375", False),
    ("LOCALHOST", "localhost:2375", False),
])
def test_all_proxy_uses_per_host(no_proxy: str, address: str, direct: bool) -> None:
    env = {"ALL_PROXY": "socks5://s:1080", "no_proxy": no_proxy}
    result = ProxyEnvironment.from_env(env).all_proxy_for(address)
    assert result == (None if direct else "socks5://s:1080")


def test_all_proxy_reads_uppercase_no_proxy_first() -> None:
    env = {"ALL_PROXY": "socks5://s", "NO_PROXY": "a", "no_proxy": "b"}
    proxies = ProxyEnvironment.from_env(env)
    assert proxies.all_proxy_for("a:1") is None
    assert proxies.all_proxy_for("b:1") == "socks5://s"


@pytest.mark.parametrize("env", [{}, {"ALL_PROXY": "socks5://s"},
                                 {"ALL_PROXY": "socks5://s", "NO_PROXY": "x"}])
def test_all_proxy_address_must_split(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="missing port in address"):
        ProxyEnvironment.from_env(env).all_proxy_for("example.com")


def test_all_proxy_independent_of_http_rules() -> None:
    proxies = ProxyEnvironment.from_env({"ALL_PROXY": "socks5://s", "NO_PROXY": "example.com"})
    assert proxies.proxy_for("http://www.example.com/") is None
    assert proxies.all_proxy_for("www.example.com:80") == "socks5://s"


# ---- ProxyURL ----

@pytest.mark.parametrize(("text", "expected"), [
    ("http://proxy", ProxyURL("http", "proxy", 80)),
    ("https://sproxy", ProxyURL("https", "sproxy", 443)),
    ("socks5://127.0.0.1", ProxyURL("socks5", "127.0.0.1", 1080)),
    ("socks5h://s", ProxyURL("socks5h", "s", 1080)),
    ("http://proxy:3128", ProxyURL("http", "proxy", 3128)),
    ("HTTP://Proxy:3128/", ProxyURL("http", "Proxy", 3128)),
    ("http://[::1]:3128", ProxyURL("http", "::1", 3128)),
    ("http://[fe80::1%25en0]", ProxyURL("http", "fe80::1%en0", 80)),
    ("socks5h://user:pw@127.0.0.1:1080", ProxyURL("socks5h", "127.0.0.1", 1080, "user", "pw")),
    ("http://us%40er:p%3Aw%20d@p:1", ProxyURL("http", "p", 1, "us@er", "p:w d")),
    ("http://user@p", ProxyURL("http", "p", 80, "user", None)),
    ("http://:pw@p", ProxyURL("http", "p", 80, "", "pw")),
    ("http://user:@p", ProxyURL("http", "p", 80, "user", "")),
    ("http://http://a%20b", ProxyURL("http", "http", 80)),  # H9's result, dialled as Go would
])
def test_proxy_url_parse(text: str, expected: ProxyURL) -> None:
    assert ProxyURL.parse(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("foo://host", "unsupported proxy scheme 'foo'"),
    ("http://", "names no host"),
    ("http://p:99999", "invalid port"),
    ("http://p:0", "invalid port"),
    ("http://[::1", "missing ']' in host"),
    ("proxy:3128", "unsupported proxy scheme 'proxy'"),
])
def test_proxy_url_parse_refused(text: str, message: str) -> None:
    with pytest.raises(ProxyError, match=message.replace("[", r"\[")):
        ProxyURL.parse(text)


def test_proxy_url_address() -> None:
    assert ProxyURL.parse("http://[::1]:3128").address == "[::1]:3128"
    assert ProxyURL.parse("socks5://s").address == "s:1080"


@pytest.mark.parametrize(("vector", "expected"), [
    ("http://127.0.0.1:8080", ProxyURL("http", "127.0.0.1", 8080)),
    ("socks5h://user:pw@127.0.0.1:1080",
     ProxyURL("socks5h", "127.0.0.1", 1080, "user", "pw")),
    ("https://secure.proxy.tld", ProxyURL("https", "secure.proxy.tld", 443)),
    ("http://localhost", ProxyURL("http", "localhost", 80)),
])
def test_proxy_for_output_parses(vector: str, expected: ProxyURL) -> None:
    assert ProxyURL.parse(vector) == expected

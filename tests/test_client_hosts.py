"""Docker host URLs: every ParseHostURL row of the client-connection spec, section 3.2."""

import attrs
import pytest

from dockertw.client.hosts import (
    DEFAULT_DOCKER_HOST,
    MAX_UNIX_SOCKET_PATH,
    DockerHost,
    HostError,
    check_supported,
    host_from_environment,
    parse_host_url,
    unix_socket_path_check,
)

# (input, scheme, address, base path)
PARSED = [
    pytest.param("foo://bar", "foo", "bar", "", id="foo-scheme"),
    pytest.param("tcp://localhost:2476", "tcp", "localhost:2476", "", id="tcp"),
    pytest.param("tcp://localhost:2476/path", "tcp", "localhost:2476", "/path", id="tcp-path"),
    pytest.param("unix:///var/run/docker.sock", "unix", "/var/run/docker.sock", "",
                 id="unix"),
    pytest.param("npipe:////./pipe/docker_engine", "npipe", "//./pipe/docker_engine", "",
                 id="npipe"),
    pytest.param("tcp://foo.example.com:2376/test/", "tcp", "foo.example.com:2376", "/test/",
                 id="tcp-base-slash"),
    pytest.param("tcp://host", "tcp", "host", "", id="tcp-no-port"),
    pytest.param("tcp://[::1]:2375", "tcp", "[::1]:2375", "", id="tcp-v6"),
    pytest.param("tcp://user:pw@host:2375", "tcp", "host:2375", "", id="tcp-userinfo-dropped"),
    pytest.param("tcp://host:2375?x=1#f", "tcp", "host:2375", "", id="tcp-query-fragment"),
    pytest.param("tcp://:2375", "tcp", ":2375", "", id="tcp-empty-host"),
    pytest.param("tcp://host:99999", "tcp", "host:99999", "", id="tcp-port-range"),
    pytest.param("tcp://[fe80::1%25eth0]:2375", "tcp", "[fe80::1%eth0]:2375", "",
                 id="tcp-zone-decoded"),
    pytest.param(" tcp://host:2375", " tcp", "host:2375", "", id="leading-space"),
    pytest.param("TCP://host:2375", "TCP", "host:2375", "", id="upper-scheme"),
    pytest.param("unix://relative.sock", "unix", "relative.sock", "", id="unix-relative"),
    pytest.param("ssh://user@host:2222/run/docker.sock", "ssh",
                 "user@host:2222/run/docker.sock", "", id="ssh"),
    pytest.param("https://notaunixsocket", "https", "notaunixsocket", "", id="https"),
    pytest.param("invalid://url", "invalid", "url", "", id="invalid-scheme"),
]

# (input, exact error text)
REFUSED = [
    pytest.param("", "unable to parse docker host ``", id="empty"),
    pytest.param("foobar", "unable to parse docker host `foobar`", id="foobar"),
    pytest.param("://", "unable to parse docker host `://`", id="bare-separator"),
    pytest.param("tcp://", "unable to parse docker host `tcp://`", id="tcp-empty"),
    pytest.param("unix://", "unable to parse docker host `unix://`", id="unix-empty"),
    pytest.param("fd://", "unable to parse docker host `fd://`", id="fd-empty"),
    pytest.param("tcp://host:port", 'parse "tcp://host:port": invalid port ":port" after host',
                 id="tcp-bad-port"),
    pytest.param("tcp://host:2375 ", 'parse "tcp://host:2375 ": invalid port ":2375 " after host',
                 id="trailing-space"),
    pytest.param("host", "unable to parse docker host `host`", id="docker-host-bare"),
]


@pytest.mark.parametrize(("text", "scheme", "address", "base_path"), PARSED)
def test_parse_host_url(text: str, scheme: str, address: str, base_path: str) -> None:
    assert parse_host_url(text) == DockerHost(text, scheme, address, base_path)


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_parse_host_url_refused(text: str, message: str) -> None:
    with pytest.raises(HostError) as caught:
        parse_host_url(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("text", "message"), [
    ('tcp://a"b:1x', 'parse "tcp://a\\"b:1x": invalid port ":1x" after host'),
    ("tcp://a b:2375", 'parse "tcp://a b:2375": invalid character " " in host name'),
    ("tcp://[::1", "parse \"tcp://[::1\": missing ']' in host"),
    ("tcp://[::1]x", 'parse "tcp://[::1]x": invalid port "x" after host'),
    ("tcp://h:1/%zz", 'parse "tcp://h:1/%zz": invalid URL escape "%zz"'),
    ("tcp://h:1/%4", 'parse "tcp://h:1/%4": invalid URL escape "%4"'),
    ("tcp://h%41:1", 'parse "tcp://h%41:1": invalid URL escape "%41"'),
    ("tcp://h:1\n", 'parse "tcp://h:1\\n": net/url: invalid control character in URL'),
    ("tcp://us er@h:1", 'parse "tcp://us er@h:1": net/url: invalid userinfo'),
    ("tcp://h:1#%zz", 'parse "tcp://h:1#%zz": invalid URL escape "%zz"'),
])
def test_tcp_url_errors_as_go(text: str, message: str) -> None:
    with pytest.raises(HostError) as caught:
        parse_host_url(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("text", "address", "base_path"), [
    ("tcp://h:1/a%20b", "h:1", "/a b"),
    ("tcp://h%C3%A9:1", "hé:1", ""),
    ("tcp://h:1/x?", "h:1", "/x"),
    ("tcp://h:1//x", "h:1", "//x"),
    ("tcp://hé:1", "hé:1", ""),
])
def test_tcp_address_decoding(text: str, address: str, base_path: str) -> None:
    host = parse_host_url(text)
    assert (host.address, host.base_path) == (address, base_path)


def test_non_tcp_keeps_remainder_verbatim() -> None:
    host = parse_host_url("unix:///tmp/a%20b.sock?x#y")
    assert (host.address, host.base_path) == ("/tmp/a%20b.sock?x#y", "")
    assert parse_host_url("unix://a://b").address == "a://b"


@pytest.mark.parametrize(("text", "is_socket"), [
    ("unix:///var/run/docker.sock", True),
    ("npipe:////./pipe/docker_engine", True),
    ("fd://3", True),
    ("tcp://localhost:2375", False),
    ("https://daemon", False),
    ("ssh://host", False),
    ("UNIX:///x", False),
])
def test_is_socket(text: str, is_socket: bool) -> None:
    assert parse_host_url(text).is_socket is is_socket


def test_docker_host_is_frozen() -> None:
    host = parse_host_url(DEFAULT_DOCKER_HOST)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        host.address = "/tmp/x"  # type: ignore[misc]


@pytest.mark.parametrize(("env", "expected"), [
    ({}, DockerHost(DEFAULT_DOCKER_HOST, "unix", "/var/run/docker.sock")),
    ({"DOCKER_HOST": ""}, DockerHost(DEFAULT_DOCKER_HOST, "unix", "/var/run/docker.sock")),
    ({"DOCKER_HOST": "tcp://10.0.0.5:2376/base"},
     DockerHost("tcp://10.0.0.5:2376/base", "tcp", "10.0.0.5:2376", "/base")),
    ({"docker_host": "tcp://ignored:1"},
     DockerHost(DEFAULT_DOCKER_HOST, "unix", "/var/run/docker.sock")),
])
def test_host_from_environment(env: dict[str, str], expected: DockerHost) -> None:
    assert host_from_environment(env) == expected


def test_host_from_environment_error_propagates() -> None:
    with pytest.raises(HostError, match="^unable to parse docker host `host`$"):
        host_from_environment({"DOCKER_HOST": "host"})


def test_unix_socket_path_limit() -> None:
    assert MAX_UNIX_SOCKET_PATH == 108
    unix_socket_path_check("/" + "a" * 107)
    long_path = "/" + "a" * 108
    with pytest.raises(HostError) as caught:
        unix_socket_path_check(long_path)
    assert str(caught.value) == f'unix socket path "{long_path}" is too long'


def test_unix_socket_path_counts_bytes() -> None:
    unix_socket_path_check("/" + "é" * 53)  # 107 bytes
    with pytest.raises(HostError, match="is too long"):
        unix_socket_path_check("/" + "é" * 54)  # 109 bytes, 55 characters


@pytest.mark.parametrize(("text", "message"), [
    ("npipe:////./pipe/docker_engine", "protocol not available"),
    ("ssh://user@host:2222/run/docker.sock", "ssh:// hosts are not supported yet"),
    ("fd://3", "fd:// hosts are for a daemon's socket activation, not a client"),
])
def test_check_supported_refuses(text: str, message: str) -> None:
    with pytest.raises(HostError) as caught:
        check_supported(parse_host_url(text))
    assert str(caught.value) == message


@pytest.mark.parametrize("text", [
    DEFAULT_DOCKER_HOST, "tcp://localhost:2375", "https://notaunixsocket", "invalid://url",
    " tcp://host:2375", "TCP://host:2375",
])
def test_check_supported_accepts(text: str) -> None:
    check_supported(parse_host_url(text))

"""The sans-IO HTTP CONNECT client: request bytes, response heads, splits, errors."""

from __future__ import annotations

import pytest

from dockertw.streams.connect import (
    MAX_HEAD_SIZE,
    ConnectClient,
    ConnectProtocolError,
    ConnectResponseError,
    ConnectState,
    TunnelEstablished,
    encode_connect_request,
    format_authority,
)

TINYPROXY_OK = b"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n"
SQUID_OK = b"HTTP/1.1 200 Connection established\r\n\r\n"


def _started(host: str = "daemon.test", port: int = 2376,
             authorization: bytes | None = None) -> ConnectClient:
    client = ConnectClient(host, port, authorization)
    client.start()
    return client


def test_request_without_credentials():
    client = ConnectClient("daemon.test", 2376)
    assert client.start() == (
        b"CONNECT daemon.test:2376 HTTP/1.1\r\nHost: daemon.test:2376\r\n\r\n")
    assert client.state is ConnectState.AWAIT_RESPONSE


def test_request_with_proxy_authorization():
    client = ConnectClient("127.0.0.1", 443, b"Basic YWxpY2U6czNjcmV0")
    assert client.start() == (
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n"
        b"Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n\r\n")


@pytest.mark.parametrize(("host", "authority"), [
    ("::1", "[::1]:2376"),
    ("[::1]", "[::1]:2376"),
    ("2001:db8::1", "[2001:db8::1]:2376"),
    ("localhost", "localhost:2376"),
    ("bücher.test", "xn--bcher-kva.test:2376"),
])
def test_authority(host, authority):
    assert format_authority(host, 2376) == authority


def test_ipv6_target_request():
    assert ConnectClient("::1", 2376).start() == (
        b"CONNECT [::1]:2376 HTTP/1.1\r\nHost: [::1]:2376\r\n\r\n")


@pytest.mark.parametrize("host", ["", "a b", "a\r\nX-Evil: 1", "a/b", "user@host", "1::2::3"])
def test_bad_hosts_are_refused(host):
    with pytest.raises(ValueError):
        ConnectClient(host, 80)


@pytest.mark.parametrize("port", [0, 65536])
def test_bad_ports_are_refused(port):
    with pytest.raises(ValueError, match="port"):
        ConnectClient("localhost", port)


def test_header_injection_in_authorization_is_refused():
    with pytest.raises(ValueError, match="CR, LF"):
        encode_connect_request("a:1", b"Basic x\r\nX-Evil: 1")


@pytest.mark.parametrize(("answer", "status", "reason"), [
    (TINYPROXY_OK, 200, "Connection established"),
    (SQUID_OK, 200, "Connection established"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "OK"),
    (b"HTTP/1.1 200\r\n\r\n", 200, ""),
])
def test_status_200_opens_the_tunnel(answer, status, reason):
    client = _started()
    event = client.receive_data(answer)
    assert isinstance(event, TunnelEstablished)
    assert (event.status, event.reason, event.trailing) == (status, reason, b"")
    assert client.state is ConnectState.ESTABLISHED


def test_headers_are_parsed():
    event = _started().receive_data(TINYPROXY_OK)
    assert event is not None
    assert event.headers == ((b"proxy-agent", b"tinyproxy/1.11.1"),)


def test_byte_by_byte():
    client = _started()
    for byte in TINYPROXY_OK[:-1]:
        assert client.receive_data(bytes([byte])) is None
    event = client.receive_data(TINYPROXY_OK[-1:] + b"\x16\x03\x01")
    assert event == TunnelEstablished(
        200, "Connection established", ((b"proxy-agent", b"tinyproxy/1.11.1"),), b"\x16\x03\x01")


def test_leftover_bytes_are_tunnel_data():
    event = _started().receive_data(SQUID_OK + b"SSH-2.0-x\r\n\r\nmore")
    assert event is not None
    assert event.trailing == b"SSH-2.0-x\r\n\r\nmore"


def test_407_carries_status_reason_and_headers():
    client = _started("127.0.0.1", 2376)
    answer = (b"HTTP/1.0 407 Proxy Authentication Required\r\n"
              b"Proxy-Authenticate: Basic realm=\"Tinyproxy\"\r\n"
              b"Content-Type: text/html\r\nContent-Length: 12\r\n\r\n<html></html>")
    with pytest.raises(ConnectResponseError) as caught:
        client.receive_data(answer)
    error = caught.value
    assert (error.status, error.reason) == (407, "Proxy Authentication Required")
    assert (b"proxy-authenticate", b'Basic realm="Tinyproxy"') in error.headers
    assert str(error) == (
        "proxy refused CONNECT to 127.0.0.1:2376: 407 Proxy Authentication Required")
    assert client.state is ConnectState.FAILED


def test_500_from_tinyproxy():
    with pytest.raises(ConnectResponseError) as caught:
        _started().receive_data(b"HTTP/1.1 500 Unable to connect\r\nServer: tinyproxy\r\n\r\n")
    assert (caught.value.status, caught.value.reason) == (500, "Unable to connect")
    assert "500 Unable to connect" in str(caught.value)


@pytest.mark.parametrize("status", [201, 204, 101, 100, 301, 403, 502])
def test_only_exactly_200_is_accepted(status):
    with pytest.raises(ConnectResponseError) as caught:
        _started().receive_data(f"HTTP/1.1 {status} Whatever\r\n\r\n".encode())
    assert caught.value.status == status


def test_error_without_reason_phrase():
    with pytest.raises(ConnectResponseError) as caught:
        _started("h", 1).receive_data(b"HTTP/1.1 503\r\n\r\n")
    assert str(caught.value) == "proxy refused CONNECT to h:1: 503"


@pytest.mark.parametrize("answer", [
    b"HTTP/2 200 OK\r\n\r\n",
    b"HTTP/1.2 200 OK\r\n\r\n",
    b"ICY 200 OK\r\n\r\n",
    b"\x05\x00\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1\r\n\r\n",
    b"\r\n\r\n",
])
def test_malformed_status_lines(answer):
    client = _started()
    with pytest.raises(ConnectProtocolError):
        client.receive_data(answer)
    assert client.state is ConnectState.FAILED


def test_head_size_is_bounded():
    client = _started()
    client.receive_data(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ConnectProtocolError, match="head over"):
        client.receive_data(b"X-Long: " + b"a" * MAX_HEAD_SIZE)


def test_eof_before_the_head_is_an_error():
    client = _started()
    client.receive_data(b"HTTP/1.0 200 Conn")
    with pytest.raises(ConnectProtocolError, match="closed the connection"):
        client.receive_eof()


def test_eof_after_establishment_is_fine():
    client = _started()
    client.receive_data(SQUID_OK)
    client.receive_eof()
    assert client.state is ConnectState.ESTABLISHED


def test_misuse_is_a_runtime_error():
    client = ConnectClient("localhost", 80)
    with pytest.raises(RuntimeError):
        client.receive_data(SQUID_OK)
    client.start()
    with pytest.raises(RuntimeError):
        client.start()
    client.receive_data(SQUID_OK)
    with pytest.raises(RuntimeError):
        client.receive_data(b"more")

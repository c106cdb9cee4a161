"""The sans-IO SOCKS5 client: transcripts from microsocks, splits, every reply code."""

from __future__ import annotations

import pytest

from dockertw.streams.socks5 import (
    Established,
    ReplyCode,
    SendData,
    Socks5AuthError,
    Socks5Client,
    Socks5ProtocolError,
    Socks5ReplyError,
    Socks5State,
    encode_address,
    encode_connect_request,
    encode_credentials,
    encode_greeting,
    reply_message,
)

OK_REPLY_V4 = bytes.fromhex("05 00 00 01 00000000 0000")


def _feed_bytewise(client: Socks5Client, data: bytes) -> list[SendData | Established]:
    events: list[SendData | Established] = []
    for index in range(len(data)):
        events += client.receive_data(data[index:index + 1])
    return events


# Appendix B transcripts (microsocks 1.0.3).

def test_no_auth_connect_by_name_transcript():
    client = Socks5Client("localhost", 18080)
    assert client.start() == bytes.fromhex("05 01 00")
    assert client.receive_data(bytes.fromhex("05 00")) == [
        SendData(bytes.fromhex("05 01 00 03 09 6c6f63616c686f7374 46a0"))]
    assert client.receive_data(OK_REPLY_V4) == [Established("0.0.0.0", 0, b"")]
    assert client.state is Socks5State.ESTABLISHED


def test_no_auth_connect_by_ipv4_transcript():
    client = Socks5Client("127.0.0.1", 18080)
    client.start()
    assert client.receive_data(bytes.fromhex("05 00")) == [
        SendData(bytes.fromhex("05 01 00 01 7f000001 46a0"))]
    assert client.receive_data(OK_REPLY_V4) == [Established("0.0.0.0", 0, b"")]


def test_closed_port_transcript_is_connection_refused():
    client = Socks5Client("127.0.0.1", 1)
    client.start()
    assert client.receive_data(bytes.fromhex("05 00")) == [
        SendData(bytes.fromhex("05 01 00 01 7f000001 0001"))]
    with pytest.raises(Socks5ReplyError) as caught:
        client.receive_data(bytes.fromhex("05 05 00 01 00000000 0000"))
    assert caught.value.rep == ReplyCode.CONNECTION_REFUSED
    assert "connection refused" in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)
    assert client.state is Socks5State.FAILED


def test_auth_server_refuses_no_auth_only_greeting():
    client = Socks5Client("localhost", 18080)
    assert client.start() == bytes.fromhex("05 01 00")
    with pytest.raises(Socks5AuthError, match="requires authentication"):
        client.receive_data(bytes.fromhex("05 ff"))


def test_username_password_good_transcript():
    client = Socks5Client("localhost", 18080, username="alice", password="s3cret")
    assert client.start() == bytes.fromhex("05 02 00 02")
    assert client.receive_data(bytes.fromhex("05 02")) == [
        SendData(bytes.fromhex("01 05 616c696365 06 733363726574"))]
    assert client.state is Socks5State.AWAIT_AUTH
    assert client.receive_data(bytes.fromhex("01 00")) == [
        SendData(bytes.fromhex("05 01 00 03 09 6c6f63616c686f7374 46a0"))]
    assert client.receive_data(OK_REPLY_V4) == [Established("0.0.0.0", 0, b"")]


def test_username_password_bad_transcript():
    client = Socks5Client("localhost", 18080, username="alice", password="nope")
    client.start()
    assert client.receive_data(bytes.fromhex("05 02")) == [
        SendData(bytes.fromhex("01 05 616c696365 04 6e6f7065"))]
    with pytest.raises(Socks5AuthError, match="rejected the username/password"):
        client.receive_data(bytes.fromhex("01 02"))
    assert client.state is Socks5State.FAILED


def test_credentials_offered_but_server_picks_no_auth():
    client = Socks5Client("localhost", 80, username="alice", password="s3cret")
    client.start()
    events = client.receive_data(bytes.fromhex("05 00"))
    assert events == [SendData(encode_connect_request("localhost", 80))]


def test_no_acceptable_method_with_credentials():
    client = Socks5Client("localhost", 80, username="alice", password="s3cret")
    client.start()
    with pytest.raises(Socks5AuthError, match="none of the offered"):
        client.receive_data(bytes.fromhex("05 ff"))


@pytest.mark.parametrize("method", [0x01, 0x03, 0x80])
def test_method_not_offered_is_a_protocol_error(method):
    client = Socks5Client("localhost", 80)
    client.start()
    with pytest.raises(Socks5ProtocolError, match="not offered"):
        client.receive_data(bytes([5, method]))


def test_username_password_chosen_without_credentials_is_a_protocol_error():
    client = Socks5Client("localhost", 80)
    client.start()
    with pytest.raises(Socks5ProtocolError, match="0x02"):
        client.receive_data(bytes.fromhex("05 02"))


# Partial reads.

def test_whole_exchange_byte_by_byte():
    client = Socks5Client("localhost", 18080, username="alice", password="s3cret")
    client.start()
    assert _feed_bytewise(client, bytes.fromhex("05 02")) == [
        SendData(encode_credentials(b"alice", b"s3cret"))]
    assert _feed_bytewise(client, bytes.fromhex("01 00")) == [
        SendData(encode_connect_request("localhost", 18080))]
    reply = bytes.fromhex("05 00 00 04") + bytes(15) + b"\x01" + b"\x04\xd2"
    assert _feed_bytewise(client, reply) == [Established("::1", 1234, b"")]


def test_partial_reads_return_nothing_until_complete():
    client = Socks5Client("127.0.0.1", 80)
    client.start()
    assert client.receive_data(b"\x05") == []
    assert client.receive_data(b"\x00") == [SendData(encode_connect_request("127.0.0.1", 80))]
    assert client.receive_data(OK_REPLY_V4[:4]) == []
    assert client.receive_data(OK_REPLY_V4[4:9]) == []
    assert client.state is Socks5State.AWAIT_REPLY
    assert client.receive_data(OK_REPLY_V4[9:]) == [Established("0.0.0.0", 0, b"")]


def test_bytes_after_the_reply_are_tunnel_data():
    client = Socks5Client("localhost", 80)
    client.start()
    client.receive_data(b"\x05\x00")
    events = client.receive_data(OK_REPLY_V4 + b"SSH-2.0-hello\r\n")
    assert events == [Established("0.0.0.0", 0, b"SSH-2.0-hello\r\n")]


def test_everything_in_one_read_is_processed_in_order():
    client = Socks5Client("localhost", 80, username="u", password="p")
    client.start()
    events = client.receive_data(b"\x05\x02" + b"\x01\x00" + OK_REPLY_V4 + b"tail")
    assert events == [
        SendData(encode_credentials(b"u", b"p")),
        SendData(encode_connect_request("localhost", 80)),
        Established("0.0.0.0", 0, b"tail"),
    ]


# Reply parsing: every ATYP, every REP.

@pytest.mark.parametrize(("bound", "expected"), [
    (bytes.fromhex("01 7f000001 1f90"), ("127.0.0.1", 8080)),
    (bytes.fromhex("04") + bytes(15) + b"\x01" + bytes.fromhex("0050"), ("::1", 80)),
    (b"\x03\x09localhost" + bytes.fromhex("ffff"), ("localhost", 65535)),
    (b"\x03\x00" + bytes.fromhex("0001"), ("", 1)),
])
def test_reply_with_every_address_type(bound, expected):
    client = Socks5Client("localhost", 80)
    client.start()
    client.receive_data(b"\x05\x00")
    reply = b"\x05\x00\x00" + bound
    assert _feed_bytewise(client, reply[:-1]) == []
    assert client.receive_data(reply[-1:] + b"x") == [Established(*expected, b"x")]


def test_reply_with_unknown_address_type():
    client = Socks5Client("localhost", 80)
    client.start()
    client.receive_data(b"\x05\x00")
    with pytest.raises(Socks5ProtocolError, match="address type 0x02"):
        client.receive_data(b"\x05\x00\x00\x02\x00\x00\x00")


MESSAGES = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


@pytest.mark.parametrize("rep", sorted(MESSAGES))
def test_every_reply_code_fails_with_its_message(rep):
    client = Socks5Client("localhost", 18080)
    client.start()
    client.receive_data(b"\x05\x00")
    with pytest.raises(Socks5ReplyError) as caught:
        client.receive_data(bytes([5, rep]))  # the error is known from two bytes
    assert caught.value.rep == rep
    assert MESSAGES[rep] in str(caught.value)
    assert str(caught.value) == (
        f"SOCKS5 proxy could not connect to localhost:18080: {MESSAGES[rep]} "
        f"(reply code 0x{rep:02x})")


def test_unknown_reply_code():
    assert reply_message(0x09) == "unknown reply code 0x09"
    client = Socks5Client("localhost", 80)
    client.start()
    client.receive_data(b"\x05\x00")
    with pytest.raises(Socks5ReplyError, match="unknown reply code 0x42"):
        client.receive_data(bytes.fromhex("05 42 00 01 00000000 0000"))


@pytest.mark.parametrize("answer", [b"\x04\x00", b"HTTP/1.1 400"])
def test_wrong_version_in_method_answer(answer):
    client = Socks5Client("localhost", 80)
    client.start()
    with pytest.raises(Socks5ProtocolError, match="not a SOCKS5 proxy"):
        client.receive_data(answer)


def test_wrong_version_in_reply():
    client = Socks5Client("localhost", 80)
    client.start()
    client.receive_data(b"\x05\x00")
    with pytest.raises(Socks5ProtocolError, match="version 0x00"):
        client.receive_data(bytes.fromhex("00 5a"))


def test_wrong_version_in_auth_answer():
    client = Socks5Client("localhost", 80, username="alice", password="s3cret")
    client.start()
    client.receive_data(b"\x05\x02")
    with pytest.raises(Socks5ProtocolError, match="username/password with version 0x05"):
        client.receive_data(b"\x05\x00")


# Requests.

@pytest.mark.parametrize(("host", "encoded"), [
    ("127.0.0.1", bytes.fromhex("01 7f000001")),
    ("::1", bytes.fromhex("04") + bytes(15) + b"\x01"),
    ("[::1]", bytes.fromhex("04") + bytes(15) + b"\x01"),
    ("2001:db8::5", bytes.fromhex("04 20010db8000000000000000000000005")),
    ("::ffff:127.0.0.1", bytes.fromhex("04 00000000000000000000ffff7f000001")),
    ("daemon.test", b"\x03\x0bdaemon.test"),
    ("bücher.test", b"\x03\x12xn--bcher-kva.test"),
])
def test_address_encoding(host, encoded):
    assert encode_address(host) == encoded


def test_ipv6_target_request():
    client = Socks5Client("::1", 2376)
    client.start()
    assert client.receive_data(b"\x05\x00") == [SendData(
        bytes.fromhex("05 01 00 04 00000000000000000000000000000001 0948"))]


@pytest.mark.parametrize("host", ["", "a" * 256, "fe80::1%eth0"])
def test_bad_hosts_are_refused_up_front(host):
    with pytest.raises(ValueError):
        Socks5Client(host, 80)


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_bad_ports_are_refused_up_front(port):
    with pytest.raises(ValueError, match="port"):
        Socks5Client("localhost", port)


def test_longest_name_is_accepted():
    assert encode_address("a" * 255) == b"\x03\xff" + b"a" * 255


def test_greetings():
    assert encode_greeting(False) == b"\x05\x01\x00"
    assert encode_greeting(True) == b"\x05\x02\x00\x02"


def test_credentials_limits():
    assert encode_credentials(b"u", b"") == b"\x01\x01u\x00"
    assert encode_credentials(b"u" * 255, b"p" * 255)[:2] == b"\x01\xff"
    with pytest.raises(ValueError, match="username"):
        encode_credentials(b"", b"pw")
    with pytest.raises(ValueError, match="username"):
        encode_credentials(b"u" * 256, b"pw")
    with pytest.raises(ValueError, match="password"):
        encode_credentials(b"u", b"p" * 256)


def test_credentials_as_bytes_and_utf8():
    client = Socks5Client("localhost", 80, username=b"al", password="pässword")
    client.start()
    assert client.receive_data(b"\x05\x02") == [
        SendData(b"\x01\x02al\x09p\xc3\xa4ssword")]


def test_password_without_username_is_refused():
    with pytest.raises(ValueError, match="username"):
        Socks5Client("localhost", 80, password="pw")


def test_empty_username_means_no_credentials():
    client = Socks5Client("localhost", 80, username="", password=None)
    assert client.start() == b"\x05\x01\x00"


# Lifecycle.

def test_eof_during_handshake_is_an_error():
    client = Socks5Client("localhost", 80)
    client.start()
    client.receive_data(b"\x05")
    with pytest.raises(Socks5ProtocolError, match="closed the connection"):
        client.receive_eof()
    assert client.state is Socks5State.FAILED


def test_eof_after_establishment_is_fine():
    client = Socks5Client("localhost", 80)
    client.start()
    client.receive_data(b"\x05\x00" + OK_REPLY_V4)
    client.receive_eof()
    assert client.state is Socks5State.ESTABLISHED


def test_misuse_is_a_runtime_error():
    client = Socks5Client("localhost", 80)
    with pytest.raises(RuntimeError):
        client.receive_data(b"\x05\x00")
    client.start()
    with pytest.raises(RuntimeError):
        client.start()
    client.receive_data(b"\x05\x00" + OK_REPLY_V4)
    with pytest.raises(RuntimeError):
        client.receive_data(b"more")

"""The client side of a SOCKS5 CONNECT handshake (RFC 1928, RFC 1929), sans-IO.

Feed the proxy's bytes to :meth:`Socks5Client.receive_data`; it answers with
:class:`SendData` (bytes for the proxy) and finally :class:`Established`, whose
``trailing`` bytes already belong to the tunnel.  Failures raise :class:`Socks5Error`
subclasses.  Names are always sent as ATYP 03 (the proxy resolves them, as Go does for
both ``socks5`` and ``socks5h``); IP literals as ATYP 01 or 04.
"""

from __future__ import annotations

import ipaddress
from enum import Enum, IntEnum

import attrs

__all__ = [
    "AddressType", "ReplyCode", "Socks5State", "SendData", "Established", "Socks5Client",
    "Socks5Error", "Socks5ProtocolError", "Socks5AuthError", "Socks5ReplyError",
    "reply_message", "encode_greeting", "encode_credentials", "encode_address",
    "encode_connect_request",
]

_VERSION = 0x05
_AUTH_VERSION = 0x01
_CMD_CONNECT = 0x01
_NO_AUTH = 0x00
_USERNAME_PASSWORD = 0x02
_NO_ACCEPTABLE = 0xFF


class AddressType(IntEnum):
    IPV4 = 0x01
    DOMAIN = 0x03
    IPV6 = 0x04


class ReplyCode(IntEnum):
    SUCCEEDED = 0x00
    GENERAL_FAILURE = 0x01
    NOT_ALLOWED = 0x02
    NETWORK_UNREACHABLE = 0x03
    HOST_UNREACHABLE = 0x04
    CONNECTION_REFUSED = 0x05
    TTL_EXPIRED = 0x06
    COMMAND_NOT_SUPPORTED = 0x07
    ADDRESS_TYPE_NOT_SUPPORTED = 0x08


_REPLY_MESSAGES: dict[int, str] = {
    ReplyCode.SUCCEEDED: "succeeded",
    ReplyCode.GENERAL_FAILURE: "general SOCKS server failure",
    ReplyCode.NOT_ALLOWED: "connection not allowed by ruleset",
    ReplyCode.NETWORK_UNREACHABLE: "network unreachable",
    ReplyCode.HOST_UNREACHABLE: "host unreachable",
    ReplyCode.CONNECTION_REFUSED: "connection refused",
    ReplyCode.TTL_EXPIRED: "TTL expired",
    ReplyCode.COMMAND_NOT_SUPPORTED: "command not supported",
    ReplyCode.ADDRESS_TYPE_NOT_SUPPORTED: "address type not supported",
}


def reply_message(rep: int) -> str:
    """The RFC 1928 meaning of reply code ``rep``."""
    return _REPLY_MESSAGES.get(rep, f"unknown reply code 0x{rep:02x}")


class Socks5Error(Exception):
    """The SOCKS5 handshake failed."""


class Socks5ProtocolError(Socks5Error):
    """The proxy's answer is not SOCKS5 as the client expects it."""


class Socks5AuthError(Socks5Error):
    """No acceptable authentication method, or the username/password was rejected."""


class Socks5ReplyError(Socks5Error):
    """The proxy answered the CONNECT request with a non-zero reply code."""

    def __init__(self, rep: int, target: str) -> None:
        super().__init__(
            f"SOCKS5 proxy could not connect to {target}: {reply_message(rep)} "
            f"(reply code 0x{rep:02x})")
        self.rep = rep
        self.target = target


class Socks5State(Enum):
    IDLE = "idle"
    AWAIT_METHOD = "await-method"
    AWAIT_AUTH = "await-auth"
    AWAIT_REPLY = "await-reply"
    ESTABLISHED = "established"
    FAILED = "failed"


@attrs.frozen
class SendData:
    """Bytes the caller must write to the proxy."""

    data: bytes


@attrs.frozen
class Established:
    """The tunnel is open; ``trailing`` bytes arrived after the reply and are tunnel data."""

    bound_host: str
    bound_port: int
    trailing: bytes


def encode_greeting(with_credentials: bool) -> bytes:
    """``05 01 00``, or ``05 02 00 02`` when username/password can be offered."""
    methods = bytes([_NO_AUTH, _USERNAME_PASSWORD] if with_credentials else [_NO_AUTH])
    return bytes([_VERSION, len(methods)]) + methods


def encode_credentials(username: bytes, password: bytes) -> bytes:
    """The RFC 1929 request ``01 ULEN USER PLEN PASS``."""
    if not 1 <= len(username) <= 255:
        raise ValueError("SOCKS5 username must be 1 to 255 bytes")
    if len(password) > 255:
        raise ValueError("SOCKS5 password must be at most 255 bytes")
    return bytes([_AUTH_VERSION, len(username)]) + username + bytes([len(password)]) + password


def encode_address(host: str) -> bytes:
    """ATYP and address: ``01`` + 4 bytes, ``04`` + 16 bytes, or ``03`` + length + name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return _encode_name(bare)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            raise ValueError(f"SOCKS5 cannot carry an IPv6 zone: {host!r}")
        return bytes([AddressType.IPV6]) + address.packed
    return bytes([AddressType.IPV4]) + address.packed


def _encode_name(name: str) -> bytes:
    try:
        encoded = name.encode("ascii") if name.isascii() else name.encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"invalid host name for SOCKS5: {name!r}") from exc
    if not 1 <= len(encoded) <= 255:
        raise ValueError(f"SOCKS5 host names must be 1 to 255 bytes: {name!r}")
    return bytes([AddressType.DOMAIN, len(encoded)]) + encoded


def encode_connect_request(host: str, port: int) -> bytes:
    """``05 01 00 ATYP ADDR PORT`` for a CONNECT to ``host:port``."""
    if not 1 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    return bytes([_VERSION, _CMD_CONNECT, 0]) + encode_address(host) + port.to_bytes(2, "big")


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reply_length(atyp: int, first_address_byte: int) -> int:
    """Total length of a reply whose ATYP is ``atyp``."""
    if atyp == AddressType.IPV4:
        return 4 + 4 + 2
    if atyp == AddressType.IPV6:
        return 4 + 16 + 2
    if atyp == AddressType.DOMAIN:
        return 4 + 1 + first_address_byte + 2
    raise Socks5ProtocolError(f"SOCKS5 reply has an unknown address type 0x{atyp:02x}")


def _decode_address(atyp: int, raw: bytes) -> str:
    if atyp == AddressType.DOMAIN:
        return raw[1:].decode("ascii", "replace")
    return str(ipaddress.ip_address(raw))


class Socks5Client:
    """One SOCKS5 CONNECT handshake to ``host:port``, optionally with username/password.

    Methods ``00 02`` are offered when a username is given (str is sent as UTF-8), else
    ``00`` only.  Bad arguments raise ``ValueError`` here, not during the handshake.
    """

    def __init__(self, host: str, port: int, username: str | bytes | None = None,
                 password: str | bytes | None = None) -> None:
        self.target = _target(host, port)
        self._request = encode_connect_request(host, port)
        self._credentials: bytes | None = None
        if username or password:
            self._credentials = encode_credentials(
                _as_bytes(username or b""), _as_bytes(password or b""))
        self._buffer = bytearray()
        self.state = Socks5State.IDLE

    def start(self) -> bytes:
        """The greeting: write it as soon as the connection to the proxy is made."""
        if self.state is not Socks5State.IDLE:
            raise RuntimeError("the SOCKS5 handshake has already started")
        self.state = Socks5State.AWAIT_METHOD
        return encode_greeting(self._credentials is not None)

    def receive_data(self, data: bytes) -> list[SendData | Established]:
        """Feed bytes from the proxy; any split is fine.  Raises :class:`Socks5Error`."""
        if self.state in (Socks5State.IDLE, Socks5State.ESTABLISHED, Socks5State.FAILED):
            raise RuntimeError(f"cannot receive handshake data in state {self.state.value}")
        self._buffer += data
        events: list[SendData | Established] = []
        try:
            while (event := self._step()) is not None:
                events.append(event)
                if isinstance(event, Established):
                    break
        except Socks5Error:
            self.state = Socks5State.FAILED
            raise
        return events

    def receive_eof(self) -> None:
        """The proxy closed the connection: an error unless the tunnel is established."""
        if self.state is not Socks5State.ESTABLISHED:
            self.state = Socks5State.FAILED
            raise Socks5ProtocolError(
                f"SOCKS5 proxy closed the connection during the handshake for {self.target}")

    def _step(self) -> SendData | Established | None:
        if self.state is Socks5State.AWAIT_METHOD:
            return self._read_method()
        if self.state is Socks5State.AWAIT_AUTH:
            return self._read_auth()
        if self.state is Socks5State.AWAIT_REPLY:
            return self._read_reply()
        return None

    def _take(self, count: int) -> bytes | None:
        if len(self._buffer) < count:
            return None
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    def _read_method(self) -> SendData | None:
        answer = self._take(2)
        if answer is None:
            return None
        _check_version(answer[0])
        method = answer[1]
        if method == _NO_AUTH:
            return self._send_request()
        if method == _USERNAME_PASSWORD and self._credentials is not None:
            self.state = Socks5State.AWAIT_AUTH
            return SendData(self._credentials)
        raise _method_error(method, self._credentials is not None)

    def _read_auth(self) -> SendData | None:
        answer = self._take(2)
        if answer is None:
            return None
        if answer[0] != _AUTH_VERSION:
            raise Socks5ProtocolError(
                f"SOCKS5 proxy answered username/password with version 0x{answer[0]:02x}")
        if answer[1] != 0:
            raise Socks5AuthError(
                f"SOCKS5 proxy rejected the username/password (status 0x{answer[1]:02x})")
        return self._send_request()

    def _send_request(self) -> SendData:
        self.state = Socks5State.AWAIT_REPLY
        return SendData(self._request)

    def _read_reply(self) -> Established | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        _check_version(buffer[0])
        if buffer[1] != ReplyCode.SUCCEEDED:
            raise Socks5ReplyError(buffer[1], self.target)
        if len(buffer) < 5:
            return None
        atyp = buffer[3]
        size = _reply_length(atyp, buffer[4])
        reply = self._take(size)
        if reply is None:
            return None
        trailing = bytes(buffer)
        buffer.clear()
        self.state = Socks5State.ESTABLISHED
        host = _decode_address(atyp, reply[4:-2])
        return Established(host, int.from_bytes(reply[-2:], "big"), trailing)


def _check_version(version: int) -> None:
    if version != _VERSION:
        raise Socks5ProtocolError(
            f"not a SOCKS5 proxy: answer has version 0x{version:02x}, expected 0x05")


def _method_error(method: int, offered_credentials: bool) -> Socks5Error:
    if method != _NO_ACCEPTABLE:
        return Socks5ProtocolError(
            f"SOCKS5 proxy chose authentication method 0x{method:02x}, which was not offered")
    if offered_credentials:
        return Socks5AuthError(
            "SOCKS5 proxy accepts none of the offered authentication methods "
            "(none, username/password)")
    return Socks5AuthError(
        "SOCKS5 proxy requires authentication, but no username/password was given")

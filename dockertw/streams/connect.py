"""The client side of an HTTP ``CONNECT`` tunnel, sans-IO.

:meth:`ConnectClient.start` gives the request; feed the proxy's bytes to
:meth:`ConnectClient.receive_data` until it returns :class:`TunnelEstablished`.  Only
status 200 opens the tunnel (Go's rule; HTTP/1.0 and HTTP/1.1 are both accepted, and
a length header on the answer is ignored, as tinyproxy sends none); any other status
raises :class:`ConnectResponseError`.  Bytes after the blank line are tunnel data.
"""

from __future__ import annotations

import ipaddress
from enum import Enum

import attrs

__all__ = [
    "ConnectState", "TunnelEstablished", "ConnectClient", "ConnectTunnelError",
    "ConnectProtocolError", "ConnectResponseError", "format_authority",
    "encode_connect_request", "MAX_HEAD_SIZE",
]

MAX_HEAD_SIZE = 65536
_VERSIONS = (b"HTTP/1.0", b"HTTP/1.1")
_END_OF_HEAD = b"\r\n\r\n"

Header = tuple[bytes, bytes]


class ConnectTunnelError(Exception):
    """The CONNECT exchange failed."""


class ConnectProtocolError(ConnectTunnelError):
    """The proxy's answer is not an HTTP/1.x response head."""


class ConnectResponseError(ConnectTunnelError):
    """The proxy answered with a status other than 200."""

    def __init__(self, status: int, reason: str, headers: tuple[Header, ...],
                 authority: str) -> None:
        super().__init__(f"proxy refused CONNECT to {authority}: {status} {reason}".rstrip())
        self.status = status
        self.reason = reason
        self.headers = headers
        self.authority = authority


class ConnectState(Enum):
    IDLE = "idle"
    AWAIT_RESPONSE = "await-response"
    ESTABLISHED = "established"
    FAILED = "failed"


@attrs.frozen
class TunnelEstablished:
    """The proxy answered 200; ``trailing`` bytes came after the head and are tunnel data."""

    status: int
    reason: str
    headers: tuple[Header, ...]
    trailing: bytes


def format_authority(host: str, port: int) -> str:
    """``host:port`` for the request target and Host header; IPv6 literals in brackets."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not bare or any(ch.isspace() or ord(ch) < 0x21 or ch in "/?#@" for ch in bare):
        raise ValueError(f"invalid CONNECT host: {host!r}")
    if not 1 <= port <= 0xFFFF:
        raise ValueError(f"port out of range: {port}")
    if ":" in bare:
        ipaddress.IPv6Address(bare)
        return f"[{bare}]:{port}"
    try:
        name = bare if bare.isascii() else bare.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"invalid CONNECT host: {host!r}") from exc
    return f"{name}:{port}"


def encode_connect_request(authority: str, proxy_authorization: bytes | None = None) -> bytes:
    """``CONNECT authority HTTP/1.1``, ``Host: authority``, optional Proxy-Authorization."""
    lines = [b"CONNECT " + authority.encode("ascii") + b" HTTP/1.1",
             b"Host: " + authority.encode("ascii")]
    if proxy_authorization is not None:
        if any(byte in proxy_authorization for byte in b"\r\n\0"):
            raise ValueError("Proxy-Authorization must not contain CR, LF or NUL")
        lines.append(b"Proxy-Authorization: " + proxy_authorization)
    return b"\r\n".join(lines) + _END_OF_HEAD


def _parse_status_line(line: bytes) -> tuple[int, str]:
    parts = line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in _VERSIONS:
        raise ConnectProtocolError(f"proxy answered CONNECT with {line[:80]!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise ConnectProtocolError(f"proxy answered CONNECT with a bad status {code[:20]!r}")
    reason = parts[2] if len(parts) == 3 else b""
    return int(code), reason.decode("latin-1").strip()


def _parse_headers(lines: list[bytes]) -> tuple[Header, ...]:
    """Header fields as (lower-cased name, value); lines without a colon are skipped."""
    fields: list[Header] = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if colon and name and name == name.strip():
            fields.append((name.lower(), value.strip()))
    return tuple(fields)


class ConnectClient:
    """One CONNECT exchange for ``host:port`` with an optional Proxy-Authorization value."""

    def __init__(self, host: str, port: int, proxy_authorization: bytes | None = None) -> None:
        self.authority = format_authority(host, port)
        self._request = encode_connect_request(self.authority, proxy_authorization)
        self._buffer = bytearray()
        self.state = ConnectState.IDLE

    def start(self) -> bytes:
        """The request: write it as soon as the connection to the proxy is made."""
        if self.state is not ConnectState.IDLE:
            raise RuntimeError("the CONNECT request has already been sent")
        self.state = ConnectState.AWAIT_RESPONSE
        return self._request

    def receive_data(self, data: bytes) -> TunnelEstablished | None:
        """Feed bytes from the proxy; ``None`` until the whole head has arrived."""
        if self.state is not ConnectState.AWAIT_RESPONSE:
            raise RuntimeError(f"cannot receive a CONNECT response in state {self.state.value}")
        self._buffer += data
        end = self._buffer.find(_END_OF_HEAD)
        try:
            if end < 0:
                self._check_size(len(self._buffer))
                return None
            self._check_size(end)
            return self._finish(end)
        except ConnectTunnelError:
            self.state = ConnectState.FAILED
            raise

    def receive_eof(self) -> None:
        """The proxy closed the connection: an error unless the tunnel is established."""
        if self.state is not ConnectState.ESTABLISHED:
            self.state = ConnectState.FAILED
            raise ConnectProtocolError(
                f"proxy closed the connection before answering CONNECT to {self.authority}")

    def _check_size(self, size: int) -> None:
        if size > MAX_HEAD_SIZE:
            raise ConnectProtocolError(
                f"proxy's answer to CONNECT has a head over {MAX_HEAD_SIZE} bytes")

    def _finish(self, end: int) -> TunnelEstablished:
        head = bytes(self._buffer[:end])
        trailing = bytes(self._buffer[end + len(_END_OF_HEAD):])
        self._buffer.clear()
        status_line, *header_lines = head.split(b"\r\n")
        status, reason = _parse_status_line(status_line)
        headers = _parse_headers(header_lines)
        if status != 200:
            raise ConnectResponseError(status, reason, headers, self.authority)
        self.state = ConnectState.ESTABLISHED
        return TunnelEstablished(status, reason, headers, trailing)

"""Go ``net/url`` ``Parse`` and ``URL.String``, as Go 1.19 behaves.

Docker's ``ParseHostURL`` and Go's proxy-variable parsing return URL parse errors
and re-serialised URLs verbatim (``parse "tcp://h:p": invalid port ":p" after host``,
``http://http://a%20b``), so the client needs the same parser rather than
:mod:`urllib.parse`. Go works on bytes; here percent-decoding yields UTF-8 text, with
undecodable bytes kept as surrogate escapes so that they re-encode unchanged.
"""

from __future__ import annotations

import enum

import attrs

from dockertw.client._gonet import go_quote

__all__ = ["GoURL", "URLError", "parse_url"]

_UNRESERVED_MARKS = frozenset(b"-_.~")
_RESERVED = frozenset(b"$&+,/:;=?@")
_HOST_EXTRA = frozenset(b"!$&'()*+,;=:[]<>\"")
_SUB_DELIMS_OK = frozenset(b"!$&'()*+,;=:@[]%")
_USERINFO_OK = frozenset("-._:~!$&'()*+,;=%@")
_HEX = "0123456789ABCDEF"


class _Mode(enum.Enum):
    PATH = "path"
    HOST = "host"
    ZONE = "zone"
    USER_PASSWORD = "userinfo"
    FRAGMENT = "fragment"


class URLError(ValueError):
    """Go's ``*url.Error``: ``<op> "<url>": <reason>``."""

    def __init__(self, op: str, url: str, reason: str) -> None:
        self.op, self.url, self.reason = op, url, reason
        super().__init__(f"{op} {go_quote(url)}: {reason}")


class _Invalid(ValueError):
    """A parse failure before it is wrapped in :class:`URLError`."""


def _is_alnum(byte: int) -> bool:
    return 0x30 <= byte <= 0x39 or 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


def _reserved_escapes(byte: int, mode: _Mode) -> bool:
    if mode is _Mode.PATH:
        return byte == ord("?")
    if mode is _Mode.USER_PASSWORD:
        return byte in b"@/?:"
    return mode is not _Mode.FRAGMENT  # hosts and zones escape the rest


def _should_escape(byte: int, mode: _Mode) -> bool:
    """``url.shouldEscape``."""
    if _is_alnum(byte):
        return False
    if mode in (_Mode.HOST, _Mode.ZONE) and byte in _HOST_EXTRA:
        return False
    if byte in _UNRESERVED_MARKS:
        return False
    if byte in _RESERVED:
        return _reserved_escapes(byte, mode)
    return not (mode is _Mode.FRAGMENT and byte in b"!()*")


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _escape(text: str, mode: _Mode) -> str:
    """``url.escape``: percent-encode every byte that ``mode`` does not allow."""
    out = []
    for byte in _to_bytes(text):
        if _should_escape(byte, mode):
            out.append(f"%{_HEX[byte >> 4]}{_HEX[byte & 15]}")
        else:
            out.append(chr(byte))
    return "".join(out)


def _check_percent(data: bytes, index: int, mode: _Mode) -> None:
    triple = data[index:index + 3]
    if len(triple) < 3 or not all(chr(b) in "0123456789abcdefABCDEF" for b in triple[1:]):
        raise _Invalid("invalid URL escape " + go_quote(_from_bytes(data[index:index + 3])))
    value = int(triple[1:], 16)
    if mode is _Mode.HOST and value < 0x80 and triple != b"%25":
        raise _Invalid("invalid URL escape " + go_quote(_from_bytes(triple)))
    if (mode is _Mode.ZONE and triple != b"%25" and value != 0x20
            and _should_escape(value, _Mode.HOST)):
        raise _Invalid("invalid URL escape " + go_quote(_from_bytes(triple)))


def _unescape(text: str, mode: _Mode) -> str:
    """``url.unescape``: validate and decode ``%XX``; hosts refuse ASCII escapes."""
    data, out, index = _to_bytes(text), bytearray(), 0
    while index < len(data):
        byte = data[index]
        if byte == ord("%"):
            _check_percent(data, index, mode)
            out.append(int(data[index + 1:index + 3], 16))
            index += 3
            continue
        if mode in (_Mode.HOST, _Mode.ZONE) and byte < 0x80 and _should_escape(byte, mode):
            raise _Invalid(f"invalid character {go_quote(chr(byte))} in host name")
        out.append(byte)
        index += 1
    return _from_bytes(bytes(out))


def _valid_encoded(text: str, mode: _Mode) -> bool:
    return all(byte in _SUB_DELIMS_OK or not _should_escape(byte, mode)
               for byte in _to_bytes(text))


def _valid_optional_port(port: str) -> bool:
    if port == "":
        return True
    return port[0] == ":" and all("0" <= char <= "9" for char in port[1:])


@attrs.frozen
class _UserInfo:
    username: str
    password: str | None

    def __str__(self) -> str:
        text = _escape(self.username, _Mode.USER_PASSWORD)
        if self.password is not None:
            text += ":" + _escape(self.password, _Mode.USER_PASSWORD)
        return text


@attrs.frozen
class GoURL:
    """The fields of Go's ``url.URL`` that parsing fills in."""

    scheme: str = ""
    opaque: str = ""
    user: _UserInfo | None = None
    host: str = ""
    path: str = ""
    raw_path: str = ""
    force_query: bool = False
    raw_query: str = ""
    fragment: str = ""
    raw_fragment: str = ""

    @property
    def username(self) -> str | None:
        """The decoded user name, ``None`` without userinfo."""
        return None if self.user is None else self.user.username

    @property
    def password(self) -> str | None:
        """The decoded password, ``None`` when none was given."""
        return None if self.user is None else self.user.password

    def hostname(self) -> str:
        """``URL.Hostname``: the host without port and brackets."""
        return _split_host_port(self.host)[0]

    def port(self) -> str:
        """``URL.Port``: the port digits, or ``""``."""
        return _split_host_port(self.host)[1]

    def escaped_path(self) -> str:
        """``URL.EscapedPath``."""
        if self.raw_path and _valid_encoded(self.raw_path, _Mode.PATH):
            try:
                if _unescape(self.raw_path, _Mode.PATH) == self.path:
                    return self.raw_path
            except _Invalid:
                pass
        return "*" if self.path == "*" else _escape(self.path, _Mode.PATH)

    def escaped_fragment(self) -> str:
        """``URL.EscapedFragment``."""
        if self.raw_fragment and _valid_encoded(self.raw_fragment, _Mode.FRAGMENT):
            try:
                if _unescape(self.raw_fragment, _Mode.FRAGMENT) == self.fragment:
                    return self.raw_fragment
            except _Invalid:
                pass
        return _escape(self.fragment, _Mode.FRAGMENT)

    def __str__(self) -> str:
        """``URL.String``."""
        text = f"{self.scheme}:" if self.scheme else ""
        text += self.opaque if self.opaque else self._hierarchical(bool(text))
        if self.force_query or self.raw_query:
            text += "?" + self.raw_query
        if self.fragment:
            text += "#" + self.escaped_fragment()
        return text

    def _hierarchical(self, has_scheme: bool) -> str:
        text = ""
        if self.scheme or self.host or self.user is not None:
            if self.host or self.path or self.user is not None:
                text += "//"
            if self.user is not None:
                text += f"{self.user}@"
            text += _escape(self.host, _Mode.HOST)
        path = self.escaped_path()
        if path and path[0] != "/" and self.host:
            text += "/"
        if not text and not has_scheme and ":" in path.partition("/")[0]:
            text += "./"
        return text + path


def _split_host_port(host: str) -> tuple[str, str]:
    """``url.splitHostPort`` (lenient, unlike ``net.SplitHostPort``)."""
    port = ""
    colon = host.rfind(":")
    if colon >= 0 and _valid_optional_port(host[colon:]):
        host, port = host[:colon], host[colon + 1:]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _get_scheme(raw: str) -> tuple[str, str]:
    """``url.getScheme``: letters first, then letters, digits, ``+-.``, then ``:``."""
    for index, char in enumerate(raw):
        if "a" <= char <= "z" or "A" <= char <= "Z":
            continue
        if "0" <= char <= "9" or char in "+-.":
            if index == 0:
                return "", raw
            continue
        if char == ":":
            if index == 0:
                raise _Invalid("missing protocol scheme")
            return raw[:index], raw[index + 1:]
        return "", raw
    return "", raw


def _parse_host(host: str) -> str:
    """``url.parseHost`` (Go 1.19: bracket contents and ports are not checked further)."""
    if host.startswith("["):
        closing = host.rfind("]")
        if closing < 0:
            raise _Invalid("missing ']' in host")
        colon_port = host[closing + 1:]
        if not _valid_optional_port(colon_port):
            raise _Invalid(f"invalid port {go_quote(colon_port)} after host")
        zone = host.find("%25", 0, closing)
        if zone >= 0:
            return (_unescape(host[:zone], _Mode.HOST) + _unescape(host[zone:closing], _Mode.ZONE)
                    + _unescape(host[closing:], _Mode.HOST))
    else:
        colon = host.rfind(":")
        if colon >= 0 and not _valid_optional_port(host[colon:]):
            raise _Invalid(f"invalid port {go_quote(host[colon:])} after host")
    return _unescape(host, _Mode.HOST)


def _parse_userinfo(userinfo: str) -> _UserInfo:
    if not all(char.isascii() and (char.isalnum() or char in _USERINFO_OK)
               for char in userinfo):
        raise _Invalid("net/url: invalid userinfo")
    name, colon, password = userinfo.partition(":")
    return _UserInfo(_unescape(name, _Mode.USER_PASSWORD),
                     _unescape(password, _Mode.USER_PASSWORD) if colon else None)


def _parse_authority(authority: str) -> tuple[_UserInfo | None, str]:
    at = authority.rfind("@")
    host = _parse_host(authority[at + 1:])
    return (None if at < 0 else _parse_userinfo(authority[:at])), host


def _path_fields(rest: str) -> dict[str, str]:
    path = _unescape(rest, _Mode.PATH)
    return {"path": path, "raw_path": "" if _escape(path, _Mode.PATH) == rest else rest}


def _split_query(rest: str) -> tuple[str, bool, str]:
    if rest.endswith("?") and rest.count("?") == 1:
        return rest[:-1], True, ""
    rest, _, query = rest.partition("?")
    return rest, False, query


def _parse(raw: str) -> GoURL:
    """``url.parse`` without the fragment (``viaRequest`` false)."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in raw):
        raise _Invalid("net/url: invalid control character in URL")
    if raw == "*":
        return GoURL(path="*")
    scheme, rest = _get_scheme(raw)
    scheme = scheme.lower()
    rest, force_query, query = _split_query(rest)
    if not rest.startswith("/"):
        if scheme:
            return GoURL(scheme=scheme, opaque=rest, force_query=force_query, raw_query=query)
        if ":" in rest.partition("/")[0]:
            raise _Invalid("first path segment in URL cannot contain colon")
    user, host = None, ""
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        user, host = _parse_authority(authority)
        rest = slash + tail
    return GoURL(scheme=scheme, user=user, host=host, force_query=force_query,
                 raw_query=query, **_path_fields(rest))


def parse_url(raw: str) -> GoURL:
    """``url.Parse``; raises :class:`URLError` with Go's message."""
    without_fragment, _, fragment = raw.partition("#")
    try:
        url = _parse(without_fragment)
    except _Invalid as error:
        raise URLError("parse", without_fragment, str(error)) from None
    if not fragment:
        return url
    try:
        decoded = _unescape(fragment, _Mode.FRAGMENT)
    except _Invalid as error:
        raise URLError("parse", raw, str(error)) from None
    raw_fragment = "" if _escape(decoded, _Mode.FRAGMENT) == fragment else fragment
    return attrs.evolve(url, fragment=decoded, raw_fragment=raw_fragment)

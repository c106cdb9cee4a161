"""Go ``net``/``netip``/``strings`` parsing rules, for the client's host and proxy logic.

Each helper reproduces one Go function's accept/reject behaviour (Go 1.19+); nothing
here does I/O. The proxy and PerHost modules depend on the exact quirks: no
leading-zero IPv4, zones only where ``netip`` takes them, and IPv4-mapped IPv6
addresses equal to (and contained like) their IPv4 form.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from dockertw.goquote import quote

__all__ = [
    "AddrError",
    "IPAddress",
    "IPNetwork",
    "go_quote",
    "ip_equal",
    "is_loopback",
    "join_host_port",
    "network_contains",
    "parse_addr",
    "parse_cidr",
    "parse_ip",
    "split_host_port",
    "trim_space",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# unicode.IsSpace: Latin-1 spaces plus the White_Space property (unlike str.strip,
# which also strips U+001C..U+001F).
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class AddrError(ValueError):
    """Go's ``*net.AddrError``: a dial address that does not split."""

    def __init__(self, why: str, address: str) -> None:
        self.why = why
        self.address = address
        super().__init__(f"address {address}: {why}" if address else why)


def trim_space(text: str) -> str:
    """``strings.TrimSpace``."""
    return text.strip(_GO_SPACE)


def go_quote(text: str) -> str:
    """``strconv.Quote`` (``%q``) for the strings that appear in Go error texts."""
    return quote(text)


def split_host_port(hostport: str) -> tuple[str, str]:
    """``net.SplitHostPort``: last-colon split, bracketed IPv6, port not validated."""
    colon = hostport.rfind(":")
    if colon < 0:
        raise AddrError("missing port in address", hostport)
    start, after = 0, 0
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise AddrError("missing ']' in address", hostport)
        if end + 1 == len(hostport):
            raise AddrError("missing port in address", hostport)
        if end + 1 != colon:
            why = "too many colons in address" if hostport[end + 1] == ":" else (
                "missing port in address")
            raise AddrError(why, hostport)
        host, start, after = hostport[1:end], 1, end + 1
    else:
        host = hostport[:colon]
        if ":" in host:
            raise AddrError("too many colons in address", hostport)
    if "[" in hostport[start:]:
        raise AddrError("unexpected '[' in address", hostport)
    if "]" in hostport[after:]:
        raise AddrError("unexpected ']' in address", hostport)
    return host, hostport[colon + 1:]


def join_host_port(host: str, port: str) -> str:
    """``net.JoinHostPort``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_v4(text: str) -> IPv4Address | None:
    try:
        return IPv4Address(text)  # rejects leading zeros, as Go does
    except ValueError:
        return None


def _parse_v6(text: str) -> IPv6Address | None:
    if "%" in text:
        return None
    try:
        return IPv6Address(text)
    except ValueError:
        return None


def _first_separator(text: str) -> str:
    for char in text:
        if char in ".:%":
            return char
    return ""


def parse_ip(text: str) -> IPAddress | None:
    """``net.ParseIP``: IPv4 or IPv6 literal, no zone, no brackets; ``None`` if not."""
    separator = _first_separator(text)
    if separator == ".":
        return _parse_v4(text)
    if separator == ":":
        return _parse_v6(text)
    return None


def parse_addr(text: str) -> IPAddress | None:
    """``netip.ParseAddr``, like :func:`parse_ip` but an IPv6 ``%zone`` is accepted
    (it must be non-empty) and dropped."""
    separator = _first_separator(text)
    if separator != ":":
        return parse_ip(text)
    address, percent, zone = text.partition("%")
    if percent and not zone:
        return None
    return _parse_v6(address)


def parse_cidr(text: str) -> IPNetwork | None:
    """``net.ParseCIDR``: host bits are masked off; ``None`` when invalid."""
    address, slash, prefix = text.partition("/")
    if not slash:
        return None
    ip: IPAddress | None = _parse_v4(address)
    if ip is None:
        ip = _parse_v6(address)
    if ip is None or not (prefix.isascii() and prefix.isdigit()):
        return None
    length = int(prefix)
    if length > ip.max_prefixlen:
        return None
    if isinstance(ip, IPv4Address):
        return IPv4Network((ip, length), strict=False)
    return IPv6Network((ip, length), strict=False)


def _unmap(ip: IPAddress) -> IPAddress:
    """Drop any zone and turn an IPv4-mapped IPv6 address into IPv4 (Go's ``To4``)."""
    if isinstance(ip, IPv4Address):
        return ip
    plain = IPv6Address(int(ip))
    return plain.ipv4_mapped or plain


def _unmap_network(network: IPNetwork) -> IPNetwork:
    if isinstance(network, IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return IPv4Network((mapped, max(network.prefixlen - 96, 0)), strict=False)
    return network


def ip_equal(left: IPAddress, right: IPAddress) -> bool:
    """``net.IP.Equal``: an IPv4 address equals its IPv4-mapped IPv6 form."""
    return _unmap(left) == _unmap(right)


def network_contains(network: IPNetwork, ip: IPAddress) -> bool:
    """``net.IPNet.Contains``: IPv4-mapped targets count as IPv4; families never mix."""
    family, target = _unmap_network(network), _unmap(ip)
    if isinstance(family, IPv4Network):
        return isinstance(target, IPv4Address) and target in family
    return isinstance(target, IPv6Address) and target in family


def is_loopback(ip: IPAddress) -> bool:
    """``net.IP.IsLoopback``: 127/8 (also IPv4-mapped) or ``::1``."""
    return _unmap(ip).is_loopback

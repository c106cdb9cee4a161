"""Proxy selection from the environment, as Go's ``net/http`` and ``x/net/proxy`` do.

:class:`ProxyEnvironment` is a snapshot of ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``
(Go ``httpproxy`` semantics, spec section 2), ``ALL_PROXY`` (``proxy.FromEnvironment``,
section 1.6) and the CGI guard, taken once from a mapping. :class:`NoProxyMatcher` is
``httpproxy``'s reading of ``NO_PROXY``; ``ALL_PROXY`` uses a
:class:`~dockertw.client.perhost.PerHost` reading of the same text instead.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import idna

from dockertw.client._gonet import (
    AddrError,
    IPAddress,
    IPNetwork,
    ip_equal,
    is_loopback,
    join_host_port,
    network_contains,
    parse_addr,
    parse_cidr,
    parse_ip,
    split_host_port,
    trim_space,
)
from dockertw.client._gourl import GoURL, URLError, parse_url
from dockertw.client.perhost import PerHost

__all__ = ["CGI_REFUSAL", "NoProxyMatcher", "ProxyEnvironment", "ProxyError", "ProxyURL"]

CGI_REFUSAL = (
    "refusing to use HTTP_PROXY value in CGI environment; see golang.org/s/cgihttpproxy")
_TARGET_PORTS = {"http": "80", "https": "443", "socks5": "1080"}
_PROXY_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080}
_SOCKS_SCHEMES = frozenset({"socks5", "socks5h"})


class ProxyError(ValueError):
    """A proxy that must not or cannot be used (CGI refusal, bad URL, unknown scheme)."""


def _idna_ascii(host: str) -> str:
    """Go's ``idnaASCII``: punycode non-ASCII names (UTS 46 lookup); on failure keep
    the input."""
    if host.isascii():
        return host
    try:
        mapped = idna.uts46_remap(host, std3_rules=True, transitional=False)
        labels = [idna.alabel(label).decode("ascii") if label else ""
                  for label in mapped.split(".")]
    except (idna.IDNAError, UnicodeError, ValueError):
        return host
    return ".".join(labels)


@attrs.frozen
class _CIDRRule:
    network: IPNetwork

    def matches(self, ip: IPAddress, port: str) -> bool:
        return network_contains(self.network, ip)


@attrs.frozen
class _IPRule:
    ip: IPAddress
    port: str

    def matches(self, ip: IPAddress, port: str) -> bool:
        return ip_equal(self.ip, ip) and self.port in ("", port)


@attrs.frozen
class _DomainRule:
    suffix: str  # always with a leading "."
    port: str
    match_bare: bool  # "example.com" also matches itself; ".example.com" does not

    def matches(self, host: str, port: str) -> bool:
        named = host.endswith(self.suffix) or (self.match_bare and host == self.suffix[1:])
        return named and self.port in ("", port)


def _split_entry(entry: str) -> tuple[str, str] | None:
    """Host and port of a NO_PROXY entry; ``None`` for an entry with an empty host."""
    try:
        host, port = split_host_port(entry)
    except AddrError:
        return entry, ""
    if not host:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def _domain_rule(host: str, port: str) -> _DomainRule:
    host = host.removeprefix("*") if host.startswith("*.") else host
    bare = not host.startswith(".")
    return _DomainRule(_idna_ascii("." + host if bare else host), port, bare)


@attrs.frozen
class NoProxyMatcher:
    """``NO_PROXY`` as Go's ``httpproxy`` reads it (spec sections 2.4 and 2.5)."""

    everything: bool = False
    ip_rules: tuple[_CIDRRule | _IPRule, ...] = ()
    domain_rules: tuple[_DomainRule, ...] = ()

    @classmethod
    def from_string(cls, text: str) -> NoProxyMatcher:
        """Parse comma-separated entries; a ``*`` entry ends parsing and matches all."""
        ip_rules: list[_CIDRRule | _IPRule] = []
        domain_rules: list[_DomainRule] = []
        for piece in text.split(","):
            entry = trim_space(piece).lower()
            if entry == "*":
                return cls(everything=True)
            if entry:
                _add_entry(entry, ip_rules, domain_rules)
        return cls(False, tuple(ip_rules), tuple(domain_rules))

    def bypasses(self, address: str) -> bool:
        """Whether the canonical target ``host:port`` goes direct (Go's ``!useProxy``).

        ``localhost`` (exact spelling) and loopback IPs always go direct; an address
        that does not split goes direct too, as in Go.
        """
        if not address:
            return False
        try:
            host, port = split_host_port(address)
        except AddrError:
            return True
        ip = parse_addr(host)
        if host == "localhost" or (ip is not None and is_loopback(ip)):
            return True
        if self.everything:
            return True
        if ip is not None:
            return any(rule.matches(ip, port) for rule in self.ip_rules)
        name = trim_space(host).lower()
        return any(rule.matches(name, port) for rule in self.domain_rules)


def _add_entry(entry: str, ip_rules: list[_CIDRRule | _IPRule],
               domain_rules: list[_DomainRule]) -> None:
    network = parse_cidr(entry)
    if network is not None:
        ip_rules.append(_CIDRRule(network))
        return
    split = _split_entry(entry)
    if split is None:
        return
    host, port = split
    ip = parse_ip(host)
    if ip is not None:
        ip_rules.append(_IPRule(ip, port))
    elif host:
        domain_rules.append(_domain_rule(host, port))


def _parse_proxy_value(value: str) -> GoURL | None:
    """Go's ``parseProxy``: retry with ``http://`` when the value is no absolute URL."""
    if not value:
        return None
    try:
        url: GoURL | None = parse_url(value)
    except URLError:
        url = None
    if url is None or not url.scheme or not url.host:
        try:
            return parse_url("http://" + value)
        except URLError:
            pass
    return url


def _canonical_address(url: GoURL) -> str:
    """Go's ``canonicalAddr``: punycoded host and explicit or scheme-default port."""
    port = url.port() or _TARGET_PORTS.get(url.scheme, "")
    return join_host_port(_idna_ascii(url.hostname()), port)


def _first_set(env: Mapping[str, str], *names: str) -> str:
    """The first non-empty value among ``names`` (an empty variable counts as unset)."""
    return next((env[name] for name in names if env.get(name)), "")


def _parse_all_proxy(value: str) -> GoURL | None:
    """``ALL_PROXY``: a ``socks5``/``socks5h`` URL, anything else means direct."""
    try:
        url = parse_url(value) if value else None
    except URLError:
        return None
    return url if url is not None and url.scheme in _SOCKS_SCHEMES else None


@attrs.frozen
class ProxyURL:
    """A proxy to connect to: scheme, host (no brackets), port and credentials.

    The port defaults by scheme (http 80, https 443, socks5/socks5h 1080); user name
    and password are percent-decoded, ``None`` when absent.
    """

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, text: str) -> ProxyURL:
        """Parse a proxy URL such as :meth:`ProxyEnvironment.proxy_for` returns;
        raise :class:`ProxyError` for a bad URL or an unsupported scheme."""
        try:
            url = parse_url(text)
        except URLError as error:
            raise ProxyError(str(error)) from None
        if url.scheme not in _PROXY_PORTS:
            raise ProxyError(f"unsupported proxy scheme {url.scheme!r} in {text!r}")
        host, port = url.hostname(), url.port()
        if not host:
            raise ProxyError(f"proxy URL {text!r} names no host")
        number = int(port) if port else _PROXY_PORTS[url.scheme]
        if not 0 < number < 65536:
            raise ProxyError(f"proxy URL {text!r} has an invalid port")
        return cls(url.scheme, host, number, url.username, url.password)

    @property
    def address(self) -> str:
        """``host:port``, IPv6 hosts bracketed."""
        return join_host_port(self.host, str(self.port))


@attrs.frozen
class ProxyEnvironment:
    """An immutable snapshot of the proxy variables, with Go's selection rules."""

    http_proxy: str = ""
    https_proxy: str = ""
    no_proxy: str = ""
    all_proxy: str = ""
    cgi: bool = False
    _http: GoURL | None = attrs.field(init=False, repr=False, eq=False)
    _https: GoURL | None = attrs.field(init=False, repr=False, eq=False)
    _matcher: NoProxyMatcher = attrs.field(init=False, repr=False, eq=False)
    _all: GoURL | None = attrs.field(init=False, repr=False, eq=False)
    _all_bypass: PerHost | None = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        derived = {
            "_http": _parse_proxy_value(self.http_proxy),
            "_https": _parse_proxy_value(self.https_proxy),
            "_matcher": NoProxyMatcher.from_string(self.no_proxy),
            "_all": _parse_all_proxy(self.all_proxy),
            "_all_bypass": PerHost.from_string(self.no_proxy) if self.no_proxy else None,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProxyEnvironment:
        """Read the variables (uppercase first; an empty one counts as unset)."""
        return cls(
            http_proxy=_first_set(env, "HTTP_PROXY", "http_proxy"),
            https_proxy=_first_set(env, "HTTPS_PROXY", "https_proxy"),
            no_proxy=_first_set(env, "NO_PROXY", "no_proxy"),
            all_proxy=_first_set(env, "ALL_PROXY", "all_proxy"),
            cgi=bool(env.get("REQUEST_METHOD")),
        )

    def proxy_for(self, url: str) -> str | None:
        """The HTTP(S)_PROXY URL for a request to ``url``, or ``None`` for direct.

        ``https`` targets use HTTPS_PROXY only, ``http`` targets HTTP_PROXY (refused
        with :class:`ProxyError` in a CGI environment), other schemes never a proxy.
        Raises :class:`ProxyError` if ``url`` does not parse.
        """
        try:
            target = parse_url(url)
        except URLError as error:
            raise ProxyError(str(error)) from None
        proxy = self._select(target.scheme)
        if proxy is None or self._matcher.bypasses(_canonical_address(target)):
            return None
        return str(proxy)

    def _select(self, scheme: str) -> GoURL | None:
        if scheme == "https":
            return self._https
        if scheme != "http" or self._http is None:
            return None
        if self.cgi:
            raise ProxyError(CGI_REFUSAL)
        return self._http

    def all_proxy_for(self, address: str) -> str | None:
        """The ALL_PROXY SOCKS5 URL for dialling ``host:port``, or ``None`` for direct.

        Only ``socks5``/``socks5h`` values count; NO_PROXY is read as a
        :class:`PerHost` (no localhost special case). :class:`ValueError` when
        ``address`` does not split as ``host:port``, since every Go dialer refuses it.
        """
        split_host_port(address)
        if self._all is None:
            return None
        if self._all_bypass is not None and self._all_bypass.bypasses(address):
            return None
        return str(self._all)

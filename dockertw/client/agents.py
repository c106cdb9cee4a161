"""The agent that reaches one daemon: UNIX socket, TCP, TLS, or through a proxy.

The route is decided once per client, from the daemon's host and a snapshot of the
proxy environment:

* a UNIX-socket daemon is never proxied;
* otherwise ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` decide, as Go's ``httpproxy``;
* when they name no proxy, ``ALL_PROXY`` (SOCKS5) with a ``NO_PROXY`` PerHost bypass;
* plain-HTTP targets go through ``ProxyAgent``; TLS targets through a CONNECT tunnel;
  ``socks5://`` and ``socks5h://`` proxies through a SOCKS5 endpoint.

Hijacked streams (attach, exec) are never proxied, as with Docker: they use
:meth:`DaemonTransport.stream_endpoint`.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.web.client import Agent, HTTPConnectionPool, ProxyAgent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from dockertw.client.endpoints import ConnectTunnelEndpoint, Socks5ClientEndpoint
from dockertw.client.hosts import DockerHost, check_supported, unix_socket_path_check
from dockertw.client.proxyenv import ProxyEnvironment, ProxyURL
from dockertw.client.tls import TLSSettings
from dockertw.tlshalfclose import wrap_client_tls

__all__ = ["DaemonTransport", "build_transport", "UNIX_BASE_URL"]

UNIX_BASE_URL = "http://api.moby.localhost"
_CONNECT_TIMEOUT = 10


@attrs.frozen
class _Target:
    host: str
    port: int


def _split_address(address: str, default_port: int) -> _Target:
    host, port = address, default_port
    if address.startswith("["):
        closing = address.index("]")
        host, rest = address[1:closing], address[closing + 1:]
        port = int(rest[1:]) if rest.startswith(":") and rest[1:] else default_port
    elif address.count(":") == 1:
        name, _, digits = address.partition(":")
        host, port = name or "localhost", int(digits) if digits else default_port
    return _Target(unquote(host), port)


@implementer(IAgentEndpointFactory)
@attrs.define
class _EndpointFactory:
    """The same endpoint for every request: this agent only ever talks to one daemon."""

    endpoint: IStreamClientEndpoint

    def endpointForURI(self, uri: object) -> IStreamClientEndpoint:
        return self.endpoint


@implementer(IAgent)
@attrs.define
class _ProxyAuthorizingAgent:
    """Adds ``Proxy-Authorization`` to every request sent through an HTTP proxy."""

    agent: IAgent
    credentials: bytes

    def request(self, method: bytes, uri: bytes, headers: Headers | None = None,
                bodyProducer: IBodyProducer | None = None) -> Deferred[IResponse]:
        headers = headers.copy() if headers is not None else Headers()
        headers.setRawHeaders(b"proxy-authorization", [self.credentials])
        return self.agent.request(method, uri, headers, bodyProducer)


@attrs.frozen
class DaemonTransport:
    """How to reach the daemon: its base URL, an agent for requests, a raw endpoint."""

    base_url: str
    agent: IAgent
    direct_endpoint: IStreamClientEndpoint
    pool: HTTPConnectionPool
    route: str

    def stream_endpoint(self) -> IStreamClientEndpoint:
        """A fresh raw connection for a hijacked stream; never through a proxy."""
        return self.direct_endpoint


def _basic(proxy: ProxyURL) -> bytes | None:
    if proxy.username is None and proxy.password is None:
        return None
    pair = f"{proxy.username}:{proxy.password or ''}".encode()
    return b"Basic " + base64.b64encode(pair)


def _proxy_endpoint(reactor: object, proxy: ProxyURL) -> IStreamClientEndpoint:
    endpoint = HostnameEndpoint(reactor, proxy.host, proxy.port, timeout=_CONNECT_TIMEOUT)
    if proxy.scheme == "https":
        return wrapClientTLS(TLSSettings().creator_for(proxy.host), endpoint)
    return endpoint


def _tunnel(reactor: object, proxy: ProxyURL, target: _Target) -> IStreamClientEndpoint:
    inner = _proxy_endpoint(reactor, proxy)
    if proxy.scheme in ("socks5", "socks5h"):
        return Socks5ClientEndpoint(inner, target.host, target.port,
                                    username=proxy.username, password=proxy.password)
    return ConnectTunnelEndpoint(inner, target.host, target.port,
                                 proxy_authorization=_basic(proxy))


def _with_tls(endpoint: IStreamClientEndpoint, tls: TLSSettings | None,
              target: _Target) -> IStreamClientEndpoint:
    """TLS to the daemon; it half-closes, as a hijacked stream needs."""
    if tls is None:
        return endpoint
    return wrap_client_tls(tls.creator_for(target.host), endpoint)


def _choose_proxy(proxies: ProxyEnvironment, url: str, target: _Target) -> ProxyURL | None:
    chosen = proxies.proxy_for(url)
    if chosen is None:
        address = f"[{target.host}]:{target.port}" if ":" in target.host else (
            f"{target.host}:{target.port}")
        chosen = proxies.all_proxy_for(address)
    return None if chosen is None else ProxyURL.parse(chosen)


def _pool(reactor: object) -> HTTPConnectionPool:
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 6
    pool.cachedConnectionTimeout = 30
    return pool


def build_transport(reactor: object, host: DockerHost, tls: TLSSettings | None,
                    proxies: ProxyEnvironment) -> DaemonTransport:
    """Decide once how this client reaches ``host``."""
    check_supported(host)
    pool = _pool(reactor)
    if host.scheme == "unix":
        unix_socket_path_check(host.address)
        endpoint = UNIXClientEndpoint(reactor, host.address, timeout=_CONNECT_TIMEOUT)
        agent = Agent.usingEndpointFactory(reactor, _EndpointFactory(endpoint), pool=pool)
        return DaemonTransport(UNIX_BASE_URL + host.base_path, agent, endpoint, pool, "unix")
    scheme = "https" if tls is not None else "http"
    target = _split_address(host.address, 443 if tls is not None else 80)
    netloc = host.address.replace("%", "%25")  # an IPv6 zone, escaped for the URL
    base_url = f"{scheme}://{netloc}{host.base_path.rstrip('/')}"
    direct = _with_tls(
        HostnameEndpoint(reactor, target.host, target.port, timeout=_CONNECT_TIMEOUT),
        tls, target)
    proxy = _choose_proxy(proxies, base_url, target)
    if proxy is None:
        agent = Agent.usingEndpointFactory(reactor, _EndpointFactory(direct), pool=pool)
        return DaemonTransport(base_url, agent, direct, pool, "direct")
    if scheme == "http" and proxy.scheme in ("http", "https"):
        proxied: IAgent = ProxyAgent(_proxy_endpoint(reactor, proxy), reactor, pool=pool)
        credentials = _basic(proxy)
        if credentials is not None:
            proxied = _ProxyAuthorizingAgent(proxied, credentials)
        return DaemonTransport(base_url, proxied, direct, pool, f"proxy {proxy.scheme}")
    tunnel = _with_tls(_tunnel(reactor, proxy, target), tls, target)
    agent = Agent.usingEndpointFactory(reactor, _EndpointFactory(tunnel), pool=pool)
    route = "socks5" if proxy.scheme.startswith("socks5") else "connect"
    return DaemonTransport(base_url, agent, direct, pool, f"{route} {proxy.scheme}")

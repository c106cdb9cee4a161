"""``DockerClient``: typed calls to any Docker Engine API daemon, over treq."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from dockertw import __version__, versions
from dockertw.client._base import Requests
from dockertw.client._calls import (
    ContainerCalls,
    ExecCalls,
    ImageCalls,
    NetworkCalls,
    VolumeCalls,
)
from dockertw.client._streaming import iter_json
from dockertw.client.agents import DaemonTransport, build_transport
from dockertw.client.hosts import DockerHost, host_from_environment, parse_host_url
from dockertw.client.negotiation import PingResult, parse_version_setting
from dockertw.client.proxyenv import ProxyEnvironment
from dockertw.client.tls import TLSSettings

__all__ = ["DockerClient", "MAX_API_VERSION", "DEFAULT_TIMEOUT"]

MAX_API_VERSION = versions.MAX_API_VERSION
DEFAULT_TIMEOUT = 60.0


class DockerClient(ContainerCalls, ExecCalls, ImageCalls, VolumeCalls, NetworkCalls):
    """A client of one daemon.  Every call is a coroutine (``ensureDeferred`` it).

    The API version is negotiated on first use unless ``version`` pins it.
    """

    def __init__(self, host: str | DockerHost = "unix:///var/run/docker.sock", *,
                 reactor: Any = None, version: str | None = None,
                 max_version: str = MAX_API_VERSION, tls: TLSSettings | None = None,
                 proxies: ProxyEnvironment | None = None,
                 headers: Mapping[str, str] | None = None,
                 user_agent: str | None = f"dockertw/{__version__}",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.host = host if isinstance(host, DockerHost) else parse_host_url(host)
        tls = None if self.host.is_socket else tls
        self.transport: DaemonTransport = build_transport(
            reactor, self.host, tls, proxies or ProxyEnvironment.from_env({}))
        sent = dict(headers or {})
        if user_agent:
            sent["User-Agent"] = user_agent
        self._reactor = reactor
        self._requests = Requests(self.transport, sent, timeout, self.host.raw,
                                  max_version, version)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> DockerClient:
        """Configured like the Go client's ``FromEnv``: ``DOCKER_HOST``,
        ``DOCKER_API_VERSION``, ``DOCKER_CERT_PATH``, ``DOCKER_TLS_VERIFY`` and the
        proxy variables."""
        env = os.environ if env is None else env
        version = env.get("DOCKER_API_VERSION", "")
        options.setdefault("version", parse_version_setting(version) if version else None)
        options.setdefault("tls", TLSSettings.from_env(env))
        options.setdefault("proxies", ProxyEnvironment.from_env(env))
        return cls(host_from_environment(env), **options)

    @property
    def api_version(self) -> str | None:
        """The version in use once negotiated (or pinned); ``None`` before."""
        return self._requests.negotiator.settled

    async def negotiate(self) -> str:
        return await self._requests.negotiator.version()

    async def close(self) -> None:
        await self.transport.pool.closeCachedConnections()

    async def ping(self) -> PingResult:
        return await self._requests.ping()

    async def version(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json("GET", "/version")
        return result

    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json("GET", "/info")
        return result

    async def disk_usage(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json("GET", "/system/df")
        return result

    async def events(self, since: str | None = None, until: str | None = None,
                     filters: Mapping[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Decoded events as they happen; ends with ``until`` or when the loop is left."""
        response = await self._requests.call(
            "GET", "/events", params={"since": since, "until": until, "filters": filters},
            stream=True)
        async for event in iter_json(response):
            yield event

"""The client: hosts, proxy policy, agents, version negotiation, typed calls.

Everything a caller needs is importable from here::

    from dockertw.client import DockerClient, DockerHost, NotFoundError
"""

from dockertw.client._calls import ProgressError
from dockertw.client.docker import DEFAULT_TIMEOUT, MAX_API_VERSION, DockerClient
from dockertw.client.errors import (
    APIError,
    ConflictError,
    ConnectionFailed,
    ForbiddenError,
    InvalidParameterError,
    NotFoundError,
    NotImplementedError_,
    NotModifiedError,
    SystemError_,
    UnauthorizedError,
    UnavailableError,
)
from dockertw.client.hijack import HijackedStream, UpgradeFailed
from dockertw.client.hosts import DEFAULT_DOCKER_HOST, DockerHost, HostError
from dockertw.client.proxyenv import ProxyEnvironment
from dockertw.client.tls import TLSSettings
from dockertw.streams.stdcopy import Stream

__all__ = [
    "DockerClient",
    "DockerHost",
    "HostError",
    "ProxyEnvironment",
    "TLSSettings",
    "HijackedStream",
    "UpgradeFailed",
    "Stream",
    "ProgressError",
    "APIError",
    "NotFoundError",
    "InvalidParameterError",
    "ConflictError",
    "UnauthorizedError",
    "UnavailableError",
    "ForbiddenError",
    "NotModifiedError",
    "NotImplementedError_",
    "SystemError_",
    "ConnectionFailed",
    "DEFAULT_DOCKER_HOST",
    "DEFAULT_TIMEOUT",
    "MAX_API_VERSION",
]

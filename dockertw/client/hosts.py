"""Docker host URLs: ``DOCKER_HOST`` parsing as moby's ``client.ParseHostURL`` does.

Rules and error texts follow the client-connection spec, section 3.2: the scheme is
whatever precedes the first ``://`` (verbatim), only ``tcp`` is re-parsed as a URL
(Go's parser and its error texts), every other scheme keeps the remainder as its
address.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dockertw.client._gonet import go_quote
from dockertw.client._gourl import URLError, parse_url

__all__ = [
    "DEFAULT_DOCKER_HOST",
    "MAX_UNIX_SOCKET_PATH",
    "DockerHost",
    "HostError",
    "check_supported",
    "host_from_environment",
    "parse_host_url",
    "unix_socket_path_check",
]

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
MAX_UNIX_SOCKET_PATH = 108  # len(sockaddr_un.sun_path) on Linux
_SOCKET_SCHEMES = frozenset({"unix", "npipe", "fd"})


class HostError(ValueError):
    """A Docker host that cannot be parsed or reached from this platform."""


@attrs.frozen
class DockerHost:
    """A parsed Docker host: ``raw`` as given, then scheme, address and base path."""

    raw: str
    scheme: str
    address: str
    base_path: str = ""

    @property
    def is_socket(self) -> bool:
        """True for ``unix``, ``npipe`` and ``fd`` hosts (never proxied, never TLS)."""
        return self.scheme in _SOCKET_SCHEMES


def parse_host_url(text: str) -> DockerHost:
    """Parse a Docker host URL (``DOCKER_HOST`` syntax); raise :class:`HostError`."""
    scheme, separator, address = text.partition("://")
    if not separator or not address:
        raise HostError(f"unable to parse docker host `{text}`")
    if scheme != "tcp":
        return DockerHost(text, scheme, address)
    try:
        url = parse_url("tcp://" + address)
    except URLError as error:
        raise HostError(str(error)) from None
    return DockerHost(text, scheme, url.host, url.path)


def host_from_environment(env: Mapping[str, str]) -> DockerHost:
    """The host named by ``DOCKER_HOST`` when non-empty, else the default socket."""
    return parse_host_url(env.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)


def unix_socket_path_check(path: str) -> None:
    """Refuse a socket path longer than Linux's 108-byte ``sun_path``, as Go does."""
    if len(path.encode("utf-8", "surrogateescape")) > MAX_UNIX_SOCKET_PATH:
        raise HostError(f"unix socket path {go_quote(path)} is too long")


def check_supported(host: DockerHost) -> None:
    """Raise :class:`HostError` for hosts this client cannot reach on Linux.

    ``npipe`` is Windows-only (Go: "protocol not available"); ``ssh`` needs the CLI's
    connection helper, which dockertw lacks; ``fd`` only means something to a daemon.
    Every other scheme, even an unknown one, is dialled as TCP, as Docker does.
    """
    if host.scheme == "npipe":
        raise HostError("protocol not available")
    if host.scheme == "ssh":
        raise HostError("ssh:// hosts are not supported yet")
    if host.scheme == "fd":
        raise HostError("fd:// hosts are for a daemon's socket activation, not a client")

"""Listener descriptions and the service that keeps every listener up, or none.

A listener is given as a Twisted strports description (``unix:/run/d.sock:mode=660``,
``tcp:2375:interface=127.0.0.1``, ``systemd:domain=UNIX:index=0``) or as a Docker
``-H`` address (``unix:///path``, ``tcp://host:port``, ``fd://``), which is turned
into a description here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import (
    _SystemdParser,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
)
from twisted.python.failure import Failure
from twisted.python.systemd import ListenFDs

from dockertw.loglevel import Logger
from dockertw.tlslisten import RefusalLoggingTLSFactory

__all__ = [
    "DEFAULT_SOCKET",
    "ListenerSpec",
    "parse_listener",
    "ListenerGroup",
    "ListenerService",
    "wrap_tls",
    "with_backlog",
]

DEFAULT_SOCKET = "/run/dockertw.sock"
_log = Logger()


@attrs.frozen
class ListenerSpec:
    """A listener as the user named it, and the strports description that opens it."""

    name: str
    description: str
    is_tcp: bool


def _unix(name: str, path: str) -> ListenerSpec:
    path = path or DEFAULT_SOCKET
    return ListenerSpec(name, f"unix:{quoteStringArgument(path)}:mode=660", False)


def _tcp(name: str, address: str, tls: bool) -> ListenerSpec:
    parts = urlsplit(address)
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"invalid listener {name!r}: only tcp://HOST:PORT is accepted")
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or (2376 if tls else 2375)
    except ValueError:
        raise ValueError(f"invalid listener {name!r}: bad port") from None
    kind = "tcp6" if ":" in host else "tcp"
    return ListenerSpec(name, f"{kind}:{port}:interface={quoteStringArgument(host)}", True)


def _socket_domain(descriptor: int) -> str:
    probe = socket.socket(fileno=descriptor)
    try:
        return {socket.AF_UNIX: "UNIX", socket.AF_INET6: "INET6"}.get(probe.family, "INET")
    finally:
        probe.detach()


def _systemd(name: str, which: str, fds: ListenFDs) -> list[ListenerSpec]:
    inherited = fds.inheritedDescriptors()
    if not inherited:
        raise ValueError(f"invalid listener {name!r}: no sockets were passed by systemd")
    if not which:
        indexes = list(range(len(inherited)))
    elif which.isdigit() and int(which) in inherited:
        indexes = [inherited.index(int(which))]
    else:
        named = fds.inheritedNamedDescriptors()
        if which not in named:
            raise ValueError(f"invalid listener {name!r}: no systemd socket {which!r}")
        indexes = [inherited.index(named[which])]
    specs = []
    for index in indexes:
        domain = _socket_domain(inherited[index])
        label = name if len(indexes) == 1 else f"{name}#{index}"
        specs.append(ListenerSpec(label, f"systemd:domain={domain}:index={index}",
                                  domain != "UNIX"))
    return specs


def _strports(text: str) -> ListenerSpec:
    kind = text.split(":", 1)[0]
    is_tcp = kind in ("tcp", "tcp6") or (kind == "systemd" and "domain=INET" in text)
    return ListenerSpec(text, text, is_tcp)


def _passed_sockets() -> ListenFDs:
    """The sockets systemd passed, as the ``systemd:`` endpoints index them.

    Reading the environment again finds nothing: importing Twisted's endpoints module
    reads LISTEN_FDS and LISTEN_PID into its parser and removes them (so a second
    reader cannot take the same sockets); the index given to ``systemd:`` is into that
    parser's list, so it is the one to ask.
    """
    parsed = getattr(_SystemdParser, "_sddaemon", None)
    return parsed if isinstance(parsed, ListenFDs) else ListenFDs.fromEnvironment()


def parse_listener(text: str, tls: bool = False,
                   fds: ListenFDs | None = None) -> list[ListenerSpec]:
    """The listeners ``text`` names: one, or several for ``fd://`` with many sockets."""
    if "://" not in text:
        if ":" not in text:
            raise ValueError(f"invalid listener {text!r}: expected a strports description")
        return [_strports(text)]
    scheme, _, address = text.partition("://")
    if scheme == "unix":
        return [_unix(text, address)]
    if scheme == "tcp":
        return [_tcp(text, text, tls)]
    if scheme == "fd":
        return _systemd(text, address, fds or _passed_sockets())
    raise ValueError(f"invalid listener {text!r}: unsupported scheme {scheme!r}")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def with_backlog(description: str) -> str:
    """A TCP or UNIX ``description`` with the kernel's ``somaxconn`` as its listen
    backlog unless it names one, as Go's listeners have: with Twisted's default of
    50, connections that come in a burst (thousands of clients) wait for SYN retries."""
    kind = description.split(":", 1)[0]
    if kind not in ("tcp", "tcp6", "unix") or "backlog=" in description:
        return description
    try:
        backlog = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        backlog = 4096
    return f"{description}:backlog={min(backlog, 65535)}"


def _client_hint(address: object, tls: bool) -> str:
    """The docker command that reaches this listener (none for unnamed sockets)."""
    if isinstance(address, UNIXAddress) and address.name:
        return f"docker -H unix://{os.fsdecode(address.name)} version"
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not isinstance(host, str) or port is None:
        return ""
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    host = f"[{host}]" if ":" in host else host
    return f"docker {'--tlsverify ' if tls else ''}-H tcp://{host}:{port} version"


class ListenerService(Service):
    """One listener: opens its endpoint and reports to its group when it fails."""

    def __init__(self, spec: ListenerSpec, factory: IProtocolFactory, tls: bool,
                 socket_gid: int | None = None) -> None:
        self.spec = spec
        self._socket_gid = socket_gid
        self.name = spec.name
        self.tls = tls
        self._factory = factory
        self._port: IListeningPort | None = None
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        from twisted.internet import reactor

        opening = maybeDeferred(
            lambda: serverFromString(reactor, with_backlog(self.spec.description))
            .listen(self._factory)
        )
        opening.addCallbacks(self._listening, self._failed)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        self._stopping = True
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None

    def factory_stopped(self) -> None:
        """The factory's last port closed: fatal unless this service closed it."""
        if not self._stopping:
            self._report(Failure(RuntimeError("the listening socket was closed")))

    def _listening(self, port: IListeningPort) -> None:
        if self._stopping:
            port.stopListening()
            return
        self._port = port
        address = port.getHost()
        _log.info("Listening on {name} ({address})", name=self.name, address=address)
        if isinstance(address, UNIXAddress) and self.spec.description.startswith("unix:"):
            self._give_to_group(address)
        hint = _client_hint(address, self.tls)
        if hint:
            _log.info("API listen on {name}; try: {hint}", name=self.name, hint=hint)
        host = getattr(address, "host", None)
        if isinstance(host, str) and not self.tls and not _is_loopback(host):
            _log.warn(
                "Binding to {name} without TLS is insecure: anyone who can reach this "
                "address gets root access on this machine. Use --tlsverify.",
                name=self.name,
            )

    def _give_to_group(self, address: UNIXAddress) -> None:
        """The socket file goes to the daemon's group (``-G``), as dockerd's does."""
        if self._socket_gid is None or address.name is None:
            return
        path = os.fsdecode(address.name)
        try:
            os.chown(path, -1, self._socket_gid)
        except OSError as error:
            self._report(Failure(error))

    def _failed(self, failure: Failure) -> None:
        if not self._stopping:
            self._report(failure)

    def _report(self, failure: Failure) -> None:
        parent = self.parent
        if isinstance(parent, ListenerGroup):
            parent.listener_failed(self, failure)


class ListenerGroup(MultiService):
    """All listeners of the daemon; the first failure stops every one of them."""

    def __init__(self, on_fatal: Callable[[str], None]) -> None:
        super().__init__()
        self._on_fatal = on_fatal
        self.failed: str | None = None

    def listener_failed(self, listener: ListenerService, failure: Failure) -> None:
        if self.failed is not None:
            return
        reason = failure.getErrorMessage()
        self.failed = f"listener {listener.name!r} failed: {reason}"
        _log.critical("{message}; stopping every listener", message=self.failed)
        self._on_fatal(self.failed)


def wrap_tls(factory: IProtocolFactory,
             options: IOpenSSLServerConnectionCreator) -> IProtocolFactory:
    """Serve ``factory`` over TLS with the given ``IOpenSSLServerConnectionCreator``
    (connections half-close, for hijacked streams: see :mod:`dockertw.tlshalfclose`;
    refused handshakes are logged: see :mod:`dockertw.tlslisten`)."""
    return RefusalLoggingTLSFactory(options, factory)


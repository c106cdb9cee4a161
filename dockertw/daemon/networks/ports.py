"""Published ports: ``-p [ip:]host:container[/proto]``, ``-P``, ``docker port``.

A published host port is held by the daemon with a bound socket (no proxy process):
while the container runs, no host process can take it, and a port some process
already holds fails the start with Docker's message.  Traffic reaches the container
by the DNAT rules of :mod:`~dockertw.daemon.networks.firewall`.  A port of ``0`` or an
empty one is chosen by the kernel from its ephemeral range.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from dockertw.errdefs import InvalidParameter, System

__all__ = ["PortRequest", "Reservation", "parse_port_key", "port_requests",
           "check_port_bindings", "reserve", "ports_view", "summary_ports",
           "PortAllocated"]

_PROTOCOLS = ("tcp", "udp", "sctp")
_KINDS = {"tcp": (socket.SOCK_STREAM, 0), "udp": (socket.SOCK_DGRAM, 0),
          "sctp": (socket.SOCK_STREAM, 132)}


class PortAllocated(System):
    """The host port is taken."""


def parse_port_key(key: str) -> tuple[int, str]:
    """``80/tcp`` (or ``80``) -> ``(80, "tcp")``."""
    number, _, proto = str(key).partition("/")
    proto = (proto or "tcp").lower()
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in _PROTOCOLS:
        raise InvalidParameter(f'invalid port specification: "{number}"')
    return int(number), proto


def _host_ports(text: str) -> tuple[int, int]:
    """``""``/``0`` (any), ``8080`` or ``8000-8010``."""
    text = (text or "").partition("/")[0]
    if not text:
        return 0, 0
    low, _, high = text.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise InvalidParameter(f'invalid port specification: "{text}"')
    start, end = int(low), int(high or low)
    if not 0 <= start <= end < 65536:
        raise InvalidParameter(f'invalid port specification: "{text}"')
    return start, end


@attrs.frozen
class PortRequest:
    """One binding to make at start: container port and what the host side asks."""

    port: int
    proto: str
    host_ip: str = ""  # "": the network's host_binding_ipv4
    host_start: int = 0  # 0: any (ephemeral)
    host_end: int = 0


def check_port_bindings(bindings: Any) -> None:
    """Docker's create-time checks of ``HostConfig.PortBindings``."""
    if bindings is None:
        return
    if not isinstance(bindings, dict):
        raise InvalidParameter("invalid JSON: PortBindings must be an object")
    for key, values in bindings.items():
        parse_port_key(key)
        for binding in values or ():
            if not isinstance(binding, dict):
                raise InvalidParameter("invalid JSON: a port binding must be an object")
            _host_ports(str(binding.get("HostPort") or ""))
            _host_ip(str(binding.get("HostIp") or ""))


def _host_ip(text: str) -> str:
    if not text:
        return ""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise InvalidParameter(f"invalid host IP address: {text}") from None
    return str(address)


def port_requests(exposed: Mapping[str, Any] | None,
                  bindings: Mapping[str, Any] | None,
                  publish_all: bool) -> list[PortRequest]:
    """The bindings to make: each of ``bindings``, and with ``publish_all`` every
    exposed port without one (host port chosen by the kernel)."""
    keys = {parse_port_key(k) for k in (exposed or {})} | \
        {parse_port_key(k) for k in (bindings or {})}
    by_key = {parse_port_key(k): v for k, v in (bindings or {}).items()}
    requests = []
    for port, proto in sorted(keys):
        given = by_key.get((port, proto)) or []
        for binding in given:
            start, end = _host_ports(str(binding.get("HostPort") or ""))
            requests.append(PortRequest(port, proto, _host_ip(str(binding.get("HostIp")
                                                                   or "")), start, end))
        if publish_all and not given:
            requests.append(PortRequest(port, proto))
    return requests


@attrs.frozen
class Reservation:
    """A host port held for a container: what was asked and what was bound."""

    request: PortRequest
    host_ip: str
    host_port: int
    sock: socket.socket | None = attrs.field(eq=False, repr=False)

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()


def _bind(proto: str, host_ip: str, port: int) -> socket.socket | None:
    """A socket bound to ``host_ip:port`` (None when the protocol is not available
    here, as SCTP without its module); OSError when the port is taken."""
    kind, number = _KINDS[proto]
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    try:
        sock = socket.socket(family, kind, number)
    except OSError:
        return None
    try:
        sock.set_inheritable(False)
        sock.bind((host_ip, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _taken(host_ip: str, start: int, end: int) -> PortAllocated:
    ports = f"{start}-{end}" if end > start else str(start)
    return PortAllocated(f"Bind for {host_ip}:{ports} failed: port is already allocated")


def reserve(request: PortRequest, default_ip: str) -> Reservation:
    """Hold the request's host port (the first free one of its range)."""
    host_ip = request.host_ip or default_ip
    start, end = request.host_start, request.host_end
    for port in range(start, end + 1):
        try:
            sock = _bind(request.proto, host_ip, port)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                continue
            reason = (error.strerror or str(error)).lower()
            raise System(f"Error starting userland proxy: listen {request.proto} "
                         f"{host_ip}:{port}: bind: {reason}") from None
        bound = sock.getsockname()[1] if sock is not None else port
        return Reservation(request, host_ip, bound or port, sock)
    raise _taken(host_ip, start, end)


def ports_view(exposed: Mapping[str, Any] | None,
               reservations: Iterable[tuple[int, str, str, int]]) -> dict[str, Any]:
    """``NetworkSettings.Ports`` of a running container: every exposed or published
    port, with its bindings (``(port, proto, host_ip, host_port)``) or null."""
    shown: dict[str, Any] = {f"{p}/{proto}": None for p, proto in
                             (parse_port_key(k) for k in (exposed or {}))}
    for port, proto, host_ip, host_port in reservations:
        bindings = shown.get(f"{port}/{proto}") or []
        bindings.append({"HostIp": host_ip, "HostPort": str(host_port)})
        shown[f"{port}/{proto}"] = bindings
    return shown


def summary_ports(ports: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The list's ``Ports`` from ``NetworkSettings.Ports``."""
    items: list[dict[str, Any]] = []
    for key, bindings in sorted((ports or {}).items()):
        port, proto = parse_port_key(key)
        if not bindings:
            items.append({"PrivatePort": port, "Type": proto})
            continue
        items.extend({"IP": b["HostIp"], "PrivatePort": port,
                      "PublicPort": int(b["HostPort"]), "Type": proto} for b in bindings)
    return items

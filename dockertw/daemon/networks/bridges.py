"""The Linux bridges of bridge networks, and the CNI configuration that attaches
containers to them.

A network's bridge is made when the network is (as Docker makes it), with its gateway
addresses, so that its subnet shows in the host's routes at once; it goes with the
network, and at daemon shut-down.  The CNI ``bridge`` plugin adds each container's
veth pair to it and ``host-local`` hands out the addresses.  Two per-interface sysctls
are set on the bridge (they go away with it): ``forwarding`` (packets from containers
are routed) and ``route_localnet`` (ports published on 127.0.0.1 reach containers by
NAT).  ``ip`` (iproute2) makes and removes the device: two processes per network.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed

from dockertw.daemon.networks.ipam import cni_ranges
from dockertw.daemon.networks.records import Network
from dockertw.daemon.storage import atomic_write
from dockertw.runtime.cni import NetworkConfigList
from dockertw.runtime.processes import Finished, Runner

__all__ = ["BridgeDevices", "OwnedBridges", "cni_config", "link_exists", "read_ip_forward",
           "write_ip_forward"]

_SYS_NET = Path("/sys/class/net")
_PROC_CONF = Path("/proc/sys/net/ipv4/conf")


def link_exists(name: str) -> bool:
    return (_SYS_NET / name).exists()


def _set_sysctl(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):  # an interface gone, a read-only /proc
        path.write_text(value)


def _batch(network: Network) -> str:
    bridge = network.bridge
    lines = [f"link add name {bridge} type bridge"]
    if network.mtu:
        lines.append(f"link set dev {bridge} mtu {network.mtu}")
    for pool in network.pools:
        extra = " nodad" if pool.version == 6 else ""
        lines.append(f"addr add {pool.gateway_address()}/{pool.network.prefixlen} "
                     f"dev {bridge}{extra}")
    lines.append(f"link set dev {bridge} up")
    return "".join(line + "\n" for line in lines)


class OwnedBridges:
    """The bridges the daemon made (``ROOT/network/bridges.json``): only those are
    deleted; a bridge that was there before (``--bridge br0``) stays."""

    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._names = set(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            self._names = set()

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def _save(self) -> None:
        atomic_write(self._path, json.dumps(sorted(self._names)).encode())

    def add(self, name: str) -> None:
        if name not in self._names:
            self._names.add(name)
            self._save()

    def discard(self, name: str) -> None:
        if name in self._names:
            self._names.discard(name)
            self._save()


class BridgeDevices:
    """Makes and removes bridges with ``ip``, through ``run`` (reactor or blocking)."""

    def __init__(self, run: Runner, owned: OwnedBridges) -> None:
        self._run = run
        self._owned = owned

    def ensure(self, network: Network) -> Deferred[None]:
        """The network's bridge, up, with its gateway addresses (kept if present)."""
        script = _batch(network).encode()
        if not link_exists(network.bridge):
            self._owned.add(network.bridge)

        def tune(finished: Finished) -> None:
            if not link_exists(network.bridge):
                raise OSError(f"cannot create bridge {network.bridge}: "
                              f"{finished.error_text()}")
            _set_sysctl(_PROC_CONF / network.bridge / "forwarding", "1")
            _set_sysctl(_PROC_CONF / network.bridge / "route_localnet", "1")

        return self._run(["ip", "-force", "-batch", "-"], script, None).addCallback(tune)

    def remove(self, name: str) -> Deferred[None]:
        """Delete the bridge ``name`` if the daemon made it (gone: nothing to do)."""
        if name not in self._owned or not link_exists(name):
            self._owned.discard(name)
            return succeed(None)
        self._owned.discard(name)
        return self._run(["ip", "link", "del", name], b"", None).addCallback(lambda _: None)


def cni_config(network: Network, data_dir: Path, *, default_gateway: bool,
               mac: str = "", static: bool = False) -> NetworkConfigList:
    """The CNI list attaching a container to ``network``: ``bridge`` with
    ``host-local`` addresses (``static``: an address is asked for), then ``tuning``
    when a MAC address is."""
    ipam: dict[str, Any] = {"type": "host-local", "dataDir": str(data_dir),
                            "ranges": cni_ranges(network, static)}
    bridge: dict[str, Any] = {
        "type": "bridge", "bridge": network.bridge, "isGateway": True,
        "isDefaultGateway": default_gateway and not network.internal,
        "ipMasq": False, "hairpinMode": True, "ipam": ipam,
        "capabilities": {"ips": True}}
    if network.mtu:
        bridge["mtu"] = network.mtu
    plugins: list[Mapping[str, Any]] = [bridge]
    if mac:
        plugins.append({"type": "tuning", "mac": mac})
    return NetworkConfigList(name=network.id, plugins=tuple(plugins))


def ip_forward_path() -> Path:
    return Path("/proc/sys/net/ipv4/ip_forward")


def read_ip_forward() -> bool:
    try:
        return ip_forward_path().read_text().strip() == "1"
    except OSError:
        return True


def write_ip_forward(enabled: bool) -> None:
    _set_sysctl(ip_forward_path(), "1" if enabled else "0")


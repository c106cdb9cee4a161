"""The network service: the network routes, and the networks containers join.

Networks live in the reactor thread (records in memory, written by a worker thread);
making and removing bridges, firewall rules and CNI attachments are child processes
of the reactor.  At start-up, after the containers have torn down what a previous life
left (:meth:`NetworkService.recover`), :meth:`NetworkService.start` sweeps the rest
(namespaces, leases, chains) and makes every bridge and chain again; at shut-down,
once containers are stopped, :meth:`NetworkService.shutdown` removes bridges and
chains, so a stopped daemon leaves no link or rule behind.

``net.ipv4.ip_forward`` is turned on at start with ``--ip-forward`` (as dockerd does)
only if it was off, and then turned off again at shut-down.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from dockertw.daemon.events import Event, EventBus
from dockertw.daemon.jsonfields import json_object, json_string_map
from dockertw.daemon.networks import ipam
from dockertw.daemon.networks.bridges import (
    BridgeDevices,
    OwnedBridges,
    link_exists,
    read_ip_forward,
    write_ip_forward,
)
from dockertw.daemon.networks.dns import EmbeddedDns
from dockertw.daemon.networks.etcfiles import ResolvConf, parse_resolv_conf
from dockertw.daemon.networks.firewall import BridgeRules, Firewall, chain_prefix
from dockertw.daemon.networks.records import BRIDGE_OPTIONS, PREDEFINED, IpamPool, Network
from dockertw.daemon.networks.sandbox import Sandboxes
from dockertw.daemon.networks.store import NetworkStore, new_network_id
from dockertw.daemon.networks.table import EndpointTable
from dockertw.daemon.storage import ensure_directory
from dockertw.daemon.timestamps import parse_filter_time
from dockertw.daemon.workers import OneAtATime, PoolRunner, Runner, WorkerReactor
from dockertw.errdefs import Conflict, Forbidden, InvalidParameter, NotFound
from dockertw.filters import Filters
from dockertw.runtime import iptables, netns
from dockertw.runtime.cni import Cni
from dockertw.runtime.iptables import Iptables
from dockertw.runtime.processes import Runner as CommandRunner
from dockertw.runtime.processes import blocking_runner, reactor_runner

__all__ = ["NetworkService", "NetworkConfig", "ContainerAttachments", "LIST_FILTERS",
           "PRUNE_FILTERS"]

_log = Logger()
LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
PRUNE_FILTERS = ("label", "label!", "until")
_DRIVERS = ("bridge", "host", "null")


@attrs.frozen
class NetworkConfig:
    """The daemon's networking options."""

    bridge: str = "dockertw0"  # "none": no default bridge
    bip: str = ""
    fixed_cidr: str = ""
    pools: tuple[ipam.AddressPool, ...] = ipam.DEFAULT_POOLS
    mtu: int = 0
    ip_masq: bool = True
    icc: bool = True
    iptables: bool = True
    ip_forward: bool = True
    host_ip: str = "0.0.0.0"
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    resolv_conf: Path = Path("/etc/resolv.conf")


class ContainerAttachments(Protocol):
    """The container service's side of ``connect`` and ``disconnect``."""

    def connect(self, container: str, network: Network,
                endpoint: Mapping[str, Any]) -> Deferred[None]: ...

    def disconnect(self, container: str, network: Network | None, name: str,
                   force: bool) -> Deferred[None]: ...






def _bool_filter(filters: Filters, key: str) -> bool | None:
    values = filters.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter(f'got more than one value for filter key "{key}"')
    value = next(iter(values))
    if value not in ("0", "1", "true", "false"):
        raise InvalidParameter(f"invalid value for filter '{key}', must be \"true\" "
                               "(or \"1\"), or \"false\" (or \"0\")")
    return value in ("1", "true")




class NetworkService:
    """Networks for the API and for containers."""

    def __init__(self, root: Path, config: NetworkConfig, events: EventBus,
                 reactor: Any, threads: Runner, runner: CommandRunner) -> None:
        self.root = ensure_directory(root / "network", 0o700)
        self.config = config
        self.store = NetworkStore(self.root / "networks")
        self.ipam_dir = ensure_directory(self.root / "ipam", 0o700)
        self.netns_dir = ensure_directory(root / "netns", 0o700)
        self.table = EndpointTable()
        self._events = events
        self._threads = threads
        self._runner = runner
        self._owned = OwnedBridges(self.root / "bridges.json")
        self._bridges = BridgeDevices(runner, self._owned)
        self.firewall = Firewall(chain_prefix(root), Iptables(runner),
                                 enabled=config.iptables and iptables.available())
        self._blocking_firewall = Firewall(self.firewall.prefix, Iptables(blocking_runner),
                                           enabled=self.firewall.enabled)
        self.dns = EmbeddedDns(reactor, self.table)
        self.sandboxes = Sandboxes(cni=Cni(runner), blocking_cni=Cni(blocking_runner),
                                   firewall=self.firewall, dns=self.dns, table=self.table,
                                   threads=threads, ipam_dir=self.ipam_dir)
        self.attachments: ContainerAttachments | None = None
        self._lock = DeferredLock()
        self._prune_guard = OneAtATime("a prune operation is already running")
        self._forwarding_was_off = False

    @classmethod
    def open(cls, root: Path, config: NetworkConfig, events: EventBus,
             reactor: WorkerReactor) -> NetworkService:
        """Load the records (blocking).  Call :meth:`start` once the containers have
        recovered."""
        service = cls(root, config, events, reactor,
                      PoolRunner(reactor, 2, "dockertw-network"),
                      reactor_runner(reactor))  # type: ignore[arg-type]
        reactor.addSystemEventTrigger("during", "shutdown", service.shutdown)
        return service

    # -- start-up and shut-down (blocking) -------------------------------------------------

    def recover(self, state: Path) -> None:
        """Tear down a container's stack recorded by a previous daemon (blocking)."""
        self.sandboxes.recover(state)

    def _sweep(self) -> None:
        """What no recorded stack explains: namespaces, leases (but those of the
        containers taken back by a live restore)."""
        kept = self.sandboxes.kept()
        for path in netns.pinned_under(self.netns_dir):
            if path.name in kept:
                continue
            try:
                netns.remove(path)
            except OSError as error:
                _log.warn("leftover namespace {path}: {error}", path=str(path),
                          error=str(error))
        for entry in self.ipam_dir.iterdir():
            if kept and entry.is_dir():
                ipam.release_leases_but(entry, set(kept))
            else:
                shutil.rmtree(entry, ignore_errors=True)

    def start(self) -> None:
        """Sweep, set up the predefined networks, every bridge and chain (blocking)."""
        self._sweep()
        self._predefined()
        if self.config.ip_forward and not read_ip_forward():
            write_ip_forward(True)
            self._forwarding_was_off = True
        blocking = BridgeDevices(blocking_runner, self._owned)
        for network in self.store.all():
            if network.is_bridge:  # the default bridge must come up, the others may fail
                _done(blocking.ensure(network), quiet=network.name != "bridge")
        _done(self._blocking_firewall.start(self._bridge_rules()))
        restored = [rule for kept in self.sandboxes.kept().values() for rule in kept.ports]
        _done(self._blocking_firewall.publish(restored))

    def shutdown(self) -> None:
        """Remove every bridge and chain (containers are stopped by now; blocking);
        with containers left running (``--live-restore``), keep them all, and the
        forwarding, for their traffic and the next daemon."""
        if self.sandboxes.kept():
            _log.info("networks are kept for the containers left running")
            return
        blocking = BridgeDevices(blocking_runner, self._owned)
        for network in self.store.all():
            if network.is_bridge:
                _done(blocking.remove(network.bridge), quiet=True)
        _done(self._blocking_firewall.stop(), quiet=True)
        if self._forwarding_was_off:
            write_ip_forward(False)

    # -- the predefined networks ---------------------------------------------------------

    def _predefined(self) -> None:
        for name, driver in (("host", "host"), ("none", "null")):
            if self.store.by_name(name) is None:
                self.store.save(Network(id=new_network_id(), name=name, driver=driver,
                                        created_ns=time.time_ns()))
        existing = self.store.by_name("bridge")
        if self.config.bridge == "none":
            if existing is not None:
                self.store.remove(existing.id)
            return
        self.store.save(self._default_bridge(existing))

    def _default_bridge(self, existing: Network | None) -> Network:
        config = self.config
        options = {BRIDGE_OPTIONS["default"]: "true",
                   BRIDGE_OPTIONS["icc"]: str(config.icc).lower(),
                   BRIDGE_OPTIONS["masquerade"]: str(config.ip_masq).lower(),
                   BRIDGE_OPTIONS["host_ip"]: config.host_ip,
                   BRIDGE_OPTIONS["name"]: config.bridge,
                   BRIDGE_OPTIONS["mtu"]: str(config.mtu or 1500)}
        pool = self._default_pool(existing)
        return Network(id=existing.id if existing else new_network_id(), name="bridge",
                       driver="bridge", created_ns=time.time_ns(), pools=(pool,),
                       options=options)

    def _default_pool(self, existing: Network | None) -> IpamPool:
        config = self.config
        if config.bip:
            interface = ipaddress.ip_interface(config.bip)
            return IpamPool(str(interface.network), config.fixed_cidr, str(interface.ip))
        others = [s for n in self.store.all() if n.name != "bridge" for s in n.subnets()]
        routes = ipam.host_routes(except_devices=[config.bridge])
        previous = existing.pool_of(4) if existing else None
        if previous is not None and not any(previous.network.overlaps(r)
                                            for r in [*routes, *others]
                                            if r.version == 4):
            return IpamPool(previous.subnet, config.fixed_cidr, previous.gateway_address())
        subnet = ipam.choose_subnet(config.pools, [*routes, *others])
        return IpamPool(str(subnet), config.fixed_cidr, str(next(subnet.hosts())))

    def default_bridge(self) -> Network | None:
        return self.store.by_name("bridge")

    def host_gateway(self) -> str:
        """The address ``host-gateway`` stands for: the default bridge's gateway."""
        bridge = self.default_bridge()
        pool = bridge.pool_of(4) if bridge else None
        return pool.gateway_address() if pool else ""

    def host_resolvers(self) -> ResolvConf:
        try:
            return parse_resolv_conf(self.config.resolv_conf.read_text())
        except OSError:
            return ResolvConf()

    def _bridge_rules(self) -> list[BridgeRules]:
        return [BridgeRules(n.bridge, tuple(str(s) for s in n.subnets(4)), n.internal,
                            n.icc, n.masquerade)
                for n in self.store.all() if n.is_bridge]

    # -- views -----------------------------------------------------------------------------

    def _containers(self, network: Network) -> dict[str, Any]:
        return {info.container_id: info.resource()
                for info in self.table.of_network(network.id)}

    def _status(self, network: Network) -> dict[str, Any]:
        leased = len(ipam.leases(self.ipam_dir, network.id))
        subnets = {pool.subnet: ipam.subnet_status(pool, leased) for pool in network.pools}
        return {"IPAM": {"Subnets": subnets}}

    def find(self, term: str) -> Network:
        """A network by ID, name or ID prefix (404 ``network x not found``)."""
        return self.store.get(term)

    def list_networks(self, filters: Filters) -> Deferred[list[dict[str, Any]]]:
        """``GET /networks`` (every field; ``Containers`` filled)."""
        dangling = _bool_filter(filters, "dangling")
        for kind in filters.get("type"):
            if kind not in ("custom", "builtin"):
                raise InvalidParameter(f"invalid filter: 'type'='{kind}'")
        chosen = [n for n in self.store.all() if self._matches(n, filters, dangling)]
        return succeed([n.view(self._containers(n), self._status(n)) for n in chosen])

    def _matches(self, network: Network, filters: Filters, dangling: bool | None) -> bool:
        if "driver" in filters and not filters.exact_match("driver", network.driver):
            return False
        if not (filters.regex_match("name", network.name)
                and filters.regex_match("id", network.id)
                and filters.match_labels("label", network.labels)):
            return False
        if "scope" in filters and not filters.exact_match("scope", "local"):
            return False
        types = filters.get("type")
        if types and ("builtin" if network.predefined else "custom") not in types:
            return False
        if dangling is not None:
            used = network.predefined or self.table.in_use(network.id)
            return used != dangling
        return True

    def inspect(self, term: str, scope: str = "") -> Deferred[dict[str, Any]]:
        """``GET /networks/{id}``."""
        network = self.store.get(term)
        if scope and scope != "local":
            raise NotFound(f"network {term} not found")
        return succeed(network.view(self._containers(network), self._status(network)))

    # -- create, remove, prune -------------------------------------------------------------

    def emit(self, network: Network, action: str, **attributes: str) -> None:
        """A network event (``name``, ``type`` and ``attributes``), as Docker's."""
        self._events.publish(Event(type="network", action=action, actor_id=network.id,
                                   attributes={**attributes, "name": network.name,
                                               "type": network.driver}))

    def create(self, body: Any) -> Deferred[dict[str, Any]]:
        """``POST /networks/create``: ``{"Id": ..., "Warning": ""}``."""
        request = json_object(body, "the body")
        name = request.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameter("network name must not be empty" if not name else
                                   "invalid JSON: Name must be a string")
        driver = request.get("Driver") or "bridge"
        if name in PREDEFINED:
            raise Forbidden(f"operation is not permitted on predefined {name} network ")
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver not in _DRIVERS:
            raise NotFound(f'plugin "{driver}" not found')
        return self._lock.run(lambda: ensureDeferred(self._create(name, request)))

    async def _create(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        if self.store.by_name(name) is not None:
            raise _name_conflict(name)
        enable_ipv6 = bool(request.get("EnableIPv6"))
        pools, ipam_options = ipam.parse_ipam(request.get("IPAM"), enable_ipv6)
        network_id = new_network_id()
        if pools:
            ipam.check_no_overlap(pools, self.store.all())
        pools = self._complete_pools(network_id, pools, enable_ipv6)
        network = Network(
            id=network_id, name=name, driver="bridge", created_ns=time.time_ns(),
            pools=tuple(pools), user_ipam=bool(request.get("IPAM") and
                                                (request["IPAM"].get("Config") or ())),
            ipam_options=ipam_options, enable_ipv6=enable_ipv6,
            internal=bool(request.get("Internal")),
            attachable=bool(request.get("Attachable")),
            options=json_string_map(request.get("Options"), "Options"),
            labels=json_string_map(request.get("Labels"), "Labels"))
        self._check_bridge_name(network)
        await self._threads(lambda: self.store.save(network))
        try:
            await self._bridges.ensure(network)
            await self.firewall.set_networks(self._bridge_rules())
        except BaseException:
            await self._threads(lambda: self.store.remove(network.id))
            await self._bridges.remove(network.bridge)
            raise
        self.emit(network, "create")
        return {"Id": network.id, "Warning": ""}

    def _complete_pools(self, network_id: str, pools: list[IpamPool],
                        enable_ipv6: bool) -> list[IpamPool]:
        """The user's pools, plus a chosen IPv4 (and IPv6) subnet when missing."""
        in_use = [*ipam.host_routes(), *(s for n in self.store.all() for s in n.subnets())]
        if not any(pool.version == 4 for pool in pools):
            subnet = ipam.choose_subnet(self.config.pools, in_use)
            pools = [IpamPool(str(subnet), "", str(next(subnet.hosts()))), *pools]
        if enable_ipv6 and not any(pool.version == 6 for pool in pools):
            subnet6 = ipam.ipv6_subnet_for(network_id, in_use)
            pools = [*pools, IpamPool(str(subnet6), "", str(subnet6.network_address + 1))]
        return pools

    def _check_bridge_name(self, network: Network) -> None:
        name = network.bridge
        if len(name) > 15 or not name or "/" in name or " " in name:
            raise InvalidParameter(f"invalid bridge name {name!r}")
        if any(n.is_bridge and n.bridge == name for n in self.store.all()):
            raise Forbidden(f"bridge name {name} is already in use by another network")
        if link_exists(name) and network.options.get(BRIDGE_OPTIONS["name"]) is None:
            raise Forbidden(f"cannot create network {network.id} ({name}): conflicts with "
                            f"an existing device")

    def remove(self, term: str) -> Deferred[None]:
        """``DELETE /networks/{id}``: 403 for the predefined ones and networks in use."""
        network = self.store.get(term)
        return self._lock.run(lambda: ensureDeferred(self._remove(network)))

    async def _remove(self, network: Network) -> None:
        if network.predefined:
            raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
        users = self.table.of_network(network.id)
        if users:
            listed = ", ".join(f'name:"{u.container_name}" id:"{u.endpoint_id[:12]}"'
                               for u in users)
            raise Forbidden(f"error while removing network: network {network.name} has "
                            f"active endpoints ({listed})")
        await self._threads(lambda: self.store.remove(network.id))
        await self._bridges.remove(network.bridge)
        await self.firewall.set_networks(self._bridge_rules())
        await self._threads(lambda: shutil.rmtree(self.ipam_dir / network.id,
                                                  ignore_errors=True))
        self.emit(network, "destroy")

    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]:
        """``POST /networks/prune``: unused user networks passing the filters."""
        filters.validate(PRUNE_FILTERS)
        until = _until_ns(filters)
        return self._prune_guard.run(lambda: ensureDeferred(self._prune(filters, until)))

    async def _prune(self, filters: Filters, until: int | None) -> dict[str, Any]:
        deleted = []
        for network in self.store.all():
            if network.predefined or self.table.in_use(network.id) or \
                    (until is not None and network.created_ns > until) or \
                    not filters.match_labels("label", network.labels) or \
                    filters.excludes_labels("label!", network.labels):
                continue
            try:
                await self._lock.run(self._remove, network)
            except (Forbidden, NotFound):
                continue
            deleted.append(network.name)
        self._events.emit("network", "prune", "", reclaimed="0")
        return {"NetworksDeleted": deleted or None}

    # -- connect, disconnect ---------------------------------------------------------------

    def _attachments(self) -> ContainerAttachments:
        if self.attachments is None:
            raise NotFound("containers are not available")
        return self.attachments

    def connect(self, term: str, body: Any) -> Deferred[None]:
        """``POST /networks/{id}/connect``."""
        request = json_object(body, "the body")
        container = request.get("Container")
        if not isinstance(container, str) or not container:
            raise InvalidParameter("no container name or ID given")
        endpoint = json_object(request.get("EndpointConfig"), "EndpointConfig")
        network = self.store.get(term)
        return self._attachments().connect(container, network, endpoint)

    def disconnect(self, term: str, body: Any) -> Deferred[None]:
        """``POST /networks/{id}/disconnect`` (``Force`` also drops a network that is
        gone from a stopped container's settings)."""
        request = json_object(body, "the body")
        container = request.get("Container")
        if not isinstance(container, str) or not container:
            raise InvalidParameter("no container name or ID given")
        force = bool(request.get("Force"))
        try:
            network: Network | None = self.store.get(term)
        except NotFound:
            if not force:
                raise
            network = None
        return self._attachments().disconnect(container, network, term, force)


def _name_conflict(name: str) -> Conflict:
    return Conflict(f"network with name {name} already exists")


def _until_ns(filters: Filters) -> int | None:
    values = filters.get("until")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter("more than one until filter specified")
    return int(parse_filter_time(next(iter(values)), time.time()) * 1_000_000_000)

def _done(deferred: Deferred[Any], quiet: bool = False) -> Any:
    """The result of a Deferred that has fired (blocking runners); its failure is
    raised, or logged when ``quiet``."""
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    result = outcome[0] if outcome else None
    if isinstance(result, Failure):
        if quiet:
            _log.warn("network clean-up: {error}", error=result.getErrorMessage())
            return None
        result.raiseException()
    return result

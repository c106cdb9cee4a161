"""Containers on networks: what create records, what a start sets up and an exit
tears down, and ``docker network connect``/``disconnect`` of stopped or running
containers.

A start first *plans* (at once, from records in memory): the namespace ``config.json``
names, link environment, and the ``/etc/hosts``, ``/etc/hostname``,
``/etc/resolv.conf`` files to bind-mount; the bundle is then written while the
sandbox (namespace, CNI endpoints, ports, DNS) is built, and the three files are
written once the addresses are known.  Modes: a sandbox of its own (``default``,
``bridge``, a user network), ``host`` (the host's stack and files), ``none`` (only
``lo``) and ``container:<name>`` (another running container's namespace and files).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred

from dockertw.daemon.containers.records import networking as settings_of
from dockertw.daemon.containers.records.config import network_name
from dockertw.daemon.containers.records.netoptions import HOST_GATEWAY, parse_extra_host
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running.bundle import NetworkSetup
from dockertw.daemon.networks import etcfiles
from dockertw.daemon.networks.ports import parse_port_key, port_requests, ports_view
from dockertw.daemon.networks.records import Network
from dockertw.daemon.networks.sandbox import EndpointRequest, SandboxRequest
from dockertw.daemon.networks.service import NetworkService
from dockertw.daemon.networks.table import EndpointInfo
from dockertw.daemon.storage import atomic_write
from dockertw.daemon.workers import Runner
from dockertw.errdefs import (
    Conflict,
    DockerError,
    Forbidden,
    InvalidParameter,
    NotFound,
    System,
)
from dockertw.loglevel import Logger
from dockertw.runtime.spec import Mount

__all__ = ["ContainerNetworking", "StartPlan"]

_log = Logger()

_SHARED = ("container sharing network namespace with another container or host cannot "
           "be connected to any other network")
_HOST_CONFLICT = "container cannot be disconnected from host network or connected to host " \
                 "network"
_NONE_CONFLICT = "container cannot be connected to multiple networks with one of the " \
                 "networks in private (none) mode"


@attrs.frozen
class StartPlan:
    """A start's networking: ``kind`` (sandbox, host, none, shared), what goes in
    ``config.json``, and the entries of ``/etc/hosts`` besides the container's own."""

    kind: str
    setup: NetworkSetup
    extra_hosts: tuple[etcfiles.HostEntry, ...] = ()
    files: tuple[str, str, str] = ("", "", "")  # hosts, hostname, resolv.conf


def _file_mounts(files: tuple[str, str, str], read_only: bool) -> tuple[Mount, ...]:
    options = ("rbind", "rprivate", "ro") if read_only else ("rbind", "rprivate")
    destinations = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")
    return tuple(Mount(dest, path, options=options)
                 for dest, path in zip(destinations, files, strict=True) if path)


def _link_env(alias: str, parent: str, child: Container, address: str) -> list[str]:
    """moby's ``links.Link.ToEnv`` for one link."""
    prefix = alias.upper().replace("-", "_")
    env = [f"{prefix}_NAME=/{parent}/{alias}"]
    ports = sorted(parse_port_key(k) for k in (child.config.get("ExposedPorts") or {}))
    if ports:
        port, proto = ports[0]
        env.append(f"{prefix}_PORT={proto}://{address}:{port}")
    for port, proto in ports:
        key = f"{prefix}_PORT_{port}_{proto.upper()}"
        env += [f"{key}={proto}://{address}:{port}", f"{key}_ADDR={address}",
                f"{key}_PORT={port}", f"{key}_PROTO={proto}"]
    for entry in child.config.get("Env") or ():
        name, _, value = str(entry).partition("=")
        if name not in ("HOME", "PATH", "HOSTNAME"):
            env.append(f"{prefix}_ENV_{name}={value}")
    return env


def _address(cidr: str) -> str:
    return cidr.split("/", 1)[0]


class ContainerNetworking:
    """Networks of containers; ``networks`` None: every container gets ``lo`` only."""

    def __init__(self, store: ContainerStore, networks: NetworkService | None, *,
                 writer: Runner, reader: Runner) -> None:
        self._store = store
        self._networks = networks
        self._writer = writer
        self._reader = reader
        if networks is not None:
            networks.attachments = self

    # -- create ------------------------------------------------------------------------

    def _check_endpoint(self, network: Network, settings: Mapping[str, Any]) -> None:
        """moby's ``validateNetworkingConfig``."""
        ipam = settings.get("IPAMConfig") or {}
        if network.predefined:
            if ipam.get("IPv4Address") or ipam.get("IPv6Address"):
                raise InvalidParameter("user specified IP address is supported on user "
                                       "defined networks only")
            if settings.get("Aliases"):
                raise InvalidParameter("network-scoped alias is supported only for "
                                       "containers in user defined networks")
        for key, version in (("IPv4Address", 4), ("IPv6Address", 6)):
            if ipam.get(key) and not network.user_subnet(version):
                raise InvalidParameter("user specified IP address is supported only when "
                                       "connecting to networks with user configured "
                                       "subnets")

    def create_settings(self, host: dict[str, Any], config: dict[str, Any],
                        networking: Mapping[str, Any]) -> dict[str, Any]:
        """The ``NetworkSettings`` a new container records (``config`` gets
        ``NetworkDisabled`` without a default bridge).  A network that does not exist
        (yet) is recorded by name and fails the start, as Docker does."""
        settings = settings_of.empty_settings()
        mode = str(host.get("NetworkMode") or "default")
        endpoints = dict(networking.get("EndpointsConfig") or {})
        if mode.startswith("container:"):
            self._store.get(mode.partition(":")[2])
            return settings
        if self._networks is None:
            settings["Networks"] = {network_name(mode): settings_of.endpoint_settings(None)}
            return settings
        if mode in ("default", "bridge") and self._networks.default_bridge() is None:
            config["NetworkDisabled"] = True
            settings["Networks"] = {"bridge": settings_of.endpoint_settings(None)}
            return settings
        main = self._known(network_name(mode))
        main_name = main.name if main else mode
        networks = {main_name: self._endpoint(main, endpoints.pop(mode, None) or
                                              endpoints.pop(main_name, None))}
        for key, given in endpoints.items():
            network = self._known(key)
            networks[network.name if network else key] = self._endpoint(network, given)
        for name in networks:
            network = self._known(name)
            if network is not None and len(networks) > 1 and not network.is_bridge:
                raise InvalidParameter(_NONE_CONFLICT if network.driver == "null"
                                       else _SHARED)
        settings["Networks"] = networks
        return settings

    def _known(self, term: str) -> Network | None:
        assert self._networks is not None
        try:
            return self._networks.find(term)
        except NotFound:
            return None

    def _endpoint(self, network: Network | None, given: Any) -> dict[str, Any]:
        entry = settings_of.endpoint_settings(given, network.id if network else "")
        if network is not None:
            self._check_endpoint(network, entry)
        return entry

    def normalize_links(self, host: dict[str, Any], name: str) -> None:
        """``target[:alias]`` as Docker keeps them: ``/target:/name/alias`` (the
        targets must exist)."""
        links = []
        for link in host.get("Links") or ():
            target, _, alias = str(link).partition(":")
            found = self._store.get(target.strip("/"))
            links.append(f"{found.name}:{name}/{(alias or target).strip('/')}")
        if links:
            host["Links"] = links

    # -- start -------------------------------------------------------------------------

    def _paths(self, container: Container) -> tuple[str, str, str]:
        directory = self._store.root / container.id
        return (str(directory / "hosts"), str(directory / "hostname"),
                str(directory / "resolv.conf"))

    def plan(self, container: Container) -> StartPlan:
        """What the start needs before the bundle is written (records only)."""
        mode = container.network_mode
        read_only = bool(container.host_config.get("ReadonlyRootfs"))
        if mode.startswith("container:"):
            return self._shared_plan(container, mode.partition(":")[2], read_only)
        files = self._paths(container)
        mounts = _file_mounts(files, read_only)
        if mode == "host":
            return StartPlan("host", NetworkSetup(mounts=mounts), files=files)
        extra = self._extra_hosts(container)
        if self._networks is None or mode == "none" or \
                container.config.get("NetworkDisabled"):
            return StartPlan("none", NetworkSetup(mounts=mounts), extra, files)
        links, env = self._links(container)
        netns = str(self._networks.netns_dir / container.id)
        return StartPlan("sandbox", NetworkSetup(netns_path=netns, env=tuple(env),
                                                 mounts=mounts), extra + links, files)

    def _shared_plan(self, container: Container, other: str, read_only: bool) -> StartPlan:
        peer = self._store.get(other)
        if peer.id == container.id:
            raise InvalidParameter("cannot join own network")
        if not peer.running or not peer.state.pid:
            raise Conflict(f"cannot join network of a non running container: {other}")
        files = (peer.hosts_path, peer.hostname_path, peer.resolv_conf_path)
        return StartPlan("shared", NetworkSetup(netns_path=f"/proc/{peer.state.pid}/ns/net",
                                                mounts=_file_mounts(files, read_only)),
                         files=files)

    def _extra_hosts(self, container: Container) -> tuple[etcfiles.HostEntry, ...]:
        entries = []
        for entry in container.host_config.get("ExtraHosts") or ():
            name, address = parse_extra_host(str(entry))
            if address == HOST_GATEWAY:
                address = self._networks.host_gateway() if self._networks else ""
                if not address:
                    raise InvalidParameter("unable to derive the IP value for host-gateway")
            entries.append(etcfiles.HostEntry(address, name))
        return tuple(entries)

    def _links(self, container: Container) -> tuple[tuple[etcfiles.HostEntry, ...],
                                                    list[str]]:
        """Legacy links on the default bridge: ``/etc/hosts`` entries and environment."""
        if "bridge" not in container.networks or not container.host_config.get("Links"):
            return (), []
        entries, env = [], []
        parent = container.name.strip("/")
        for link in container.host_config.get("Links") or ():
            target, _, path = str(link).partition(":")
            alias = path.rsplit("/", 1)[-1]
            child = self._store.get(target.strip("/"))
            address = (child.networks.get("bridge") or {}).get("IPAddress") or ""
            if not child.running or not address:
                raise InvalidParameter(f"Cannot link to a non running container: "
                                       f"{child.name} AS /{parent}/{alias}")
            names = " ".join(dict.fromkeys((alias, str(child.config.get("Hostname") or ""),
                                            child.name.strip("/"))))
            entries.append(etcfiles.HostEntry(address, names.strip()))
            env += _link_env(alias, parent, child, address)
        return tuple(entries), env

    def _endpoint_requests(self, container: Container) -> list[EndpointRequest]:
        assert self._networks is not None
        requests: list[tuple[tuple[int, bool, str], EndpointRequest]] = []
        mode = container.network_mode
        for name, settings in container.networks.items():
            try:
                network = self._networks.find(settings.get("NetworkID") or name)
            except NotFound:
                network = self._networks.find(name)
            ipam = settings.get("IPAMConfig") or {}
            links = settings_of.user_links(settings)
            if network.name == mode or network.id == mode:
                links += [(t.strip("/").split(":")[0], p.rsplit("/", 1)[-1])
                          for t, _, p in (str(k).partition(":") for k in
                                          container.host_config.get("Links") or ())]
            # the default route: highest GwPriority, then the NetworkMode's, then by name
            order = (-int(settings.get("GwPriority") or 0),
                     network.name not in (mode, network_name(mode)), network.name)
            requests.append((order, EndpointRequest(
                network, ipv4=ipam.get("IPv4Address") or "",
                ipv6=ipam.get("IPv6Address") or "",
                mac=settings.get("ConfiguredMacAddress") or "",
                aliases=tuple(settings.get("Aliases") or ()), links=tuple(links))))
        return [request for _, request in sorted(requests, key=lambda item: item[0])]

    def _upstreams(self, container: Container) -> tuple[tuple[str, int], ...]:
        assert self._networks is not None
        servers = container.host_config.get("Dns") or self._networks.config.dns or \
            self._networks.host_resolvers().nameservers
        return tuple((str(server), 53) for server in servers)

    async def setup(self, container: Container, plan: StartPlan) -> dict[str, Any]:
        """Build the stack and write the files; answers the record's new network
        fields (``network_settings``, the three paths)."""
        settings = dict(container.network_settings)
        infos: list[EndpointInfo] = []
        if plan.kind == "sandbox":
            assert self._networks is not None
            request = self._sandbox_request(container, Path(plan.setup.netns_path))
            sandbox = await self._networks.sandboxes.start(request)
            infos = list(sandbox.infos.values())
            settings = self._running_settings(container, infos, sandbox.reservations)
            settings["SandboxKey"] = plan.setup.netns_path
        try:
            if plan.kind != "shared":
                await self._writer(lambda: self._write_files(container, plan, infos))
        except BaseException:
            await self.teardown(container.id)
            raise
        hosts, hostname, resolv = plan.files
        return {"network_settings": settings, "hosts_path": hosts,
                "hostname_path": hostname, "resolv_conf_path": resolv}

    def _running_settings(self, container: Container, infos: list[EndpointInfo],
                          reservations: list[Any]) -> dict[str, Any]:
        by_name = {info.network_name: info for info in infos}
        networks = {}
        for name, entry in container.networks.items():
            info = by_name.get(name)
            networks[name] = entry if info is None else settings_of.with_runtime(
                entry, network_id=info.network_id, endpoint_id=info.endpoint_id,
                ipv4=info.ipv4, gateway=info.gateway, ipv6=info.ipv6,
                ipv6_gateway=info.ipv6_gateway, mac=info.mac,
                dns_names=info.dns_names() if info.user_defined else ())
        published = [(r.request.port, r.request.proto, r.host_ip, r.host_port)
                     for r in reservations]
        return {"Networks": networks, "SandboxID": secrets.token_hex(32),
                "SandboxKey": "",
                "Ports": ports_view(container.config.get("ExposedPorts"), published)}

    def _write_files(self, container: Container, plan: StartPlan,
                     infos: list[EndpointInfo]) -> None:
        hosts, hostname_path, resolv = (Path(p) for p in plan.files)
        hostname = str(container.config.get("Hostname") or container.id[:12])
        if plan.kind == "host":
            _copy_or_empty(Path("/etc/hosts"), hosts)
            _copy_or_empty(self._host_resolv_conf(), resolv)
        else:
            addresses = [_address(a) for info in infos for a in (info.ipv4, info.ipv6) if a]
            atomic_write(hosts, etcfiles.hosts_file(
                hostname, str(container.config.get("Domainname") or ""), addresses,
                plan.extra_hosts).encode(), 0o644, durable=False)
            atomic_write(resolv, self._resolv_conf(container, infos).encode(), 0o644,
                         durable=False)
        atomic_write(hostname_path, etcfiles.hostname_file(hostname).encode(), 0o644,
                     durable=False)

    def _host_resolv_conf(self) -> Path:
        return self._networks.config.resolv_conf if self._networks else \
            Path("/etc/resolv.conf")

    def _resolv_conf(self, container: Container, infos: list[EndpointInfo]) -> str:
        host = self._networks.host_resolvers() if self._networks else \
            etcfiles.parse_resolv_conf(_read(Path("/etc/resolv.conf")))
        config = self._networks.config if self._networks else None
        hosted = container.host_config
        embedded = any(info.user_defined for info in infos)
        return etcfiles.resolv_conf(
            host, dns=() if embedded else (hosted.get("Dns") or
                                           (config.dns if config else ())),
            search=hosted.get("DnsSearch") or (config.dns_search if config else ()),
            options=hosted.get("DnsOptions") or (config.dns_options if config else ()),
            embedded=embedded)

    def restore(self, container: Container) -> None:
        """Take back the network stack of a container that kept running while the
        daemon was away (``--live-restore``; blocking, at start, before the networks
        start): its namespace, addresses, published ports and embedded DNS."""
        key = container.network_settings.get("SandboxKey")
        if self._networks is None or not key:
            return
        try:
            request = self._sandbox_request(container, Path(key))
        except DockerError as error:  # its network is gone: nothing of it is kept
            _log.warn("cannot take back the network of {id}: {error}", id=container.id,
                      error=str(error))
            return
        self._networks.sandboxes.restore(request)

    def _sandbox_request(self, container: Container, netns: Path) -> SandboxRequest:
        return SandboxRequest(
            container.id, container.name.strip("/"),
            str(container.config.get("Hostname") or container.id[:12]),
            netns, self._store.root / container.id / "network.json",
            tuple(self._endpoint_requests(container)),
            tuple(port_requests(container.config.get("ExposedPorts"),
                                container.host_config.get("PortBindings"),
                                bool(container.host_config.get("PublishAllPorts")))),
            self._upstreams(container))

    def renamed(self, container_id: str, name: str) -> None:
        """The embedded DNS answers a renamed container's new name (reactor thread)."""
        if self._networks is not None:
            self._networks.table.rename(container_id, name.strip("/"))

    async def teardown(self, container_id: str) -> None:
        """Tear down the container's sandbox, if it has one."""
        if self._networks is not None:
            await self._networks.sandboxes.stop(container_id)

    def emit_endpoints(self, container: Container, action: str) -> None:
        """``network connect``/``disconnect`` events for a start or an exit."""
        if self._networks is None:
            return
        for entry in container.networks.values():
            network = self._networks.store.find(entry.get("NetworkID") or "")
            if network is not None:
                self._networks.emit(network, action, container=container.id)

    # -- connect, disconnect (the network routes) ----------------------------------------

    def connect(self, container: str, network: Network,
                endpoint: Mapping[str, Any]) -> Deferred[None]:
        return ensureDeferred(self._connect(container, network, endpoint))

    async def _connect(self, reference: str, network: Network,
                       endpoint: Mapping[str, Any]) -> None:
        assert self._networks is not None
        container = await self._reader(lambda: self._store.get(reference))
        mode = container.network_mode
        if mode.startswith("container:"):
            raise InvalidParameter(_SHARED)
        if mode == "host" or network.driver == "host":
            raise InvalidParameter(_HOST_CONFLICT)
        if mode == "none" or network.driver == "null":
            raise InvalidParameter(_NONE_CONFLICT)
        entry = settings_of.endpoint_settings(endpoint, network.id)
        self._check_endpoint(network, entry)
        sandbox = self._networks.sandboxes.get(container.id)
        if network.name in container.networks:
            if sandbox is not None:
                raise Forbidden(f"endpoint with name {container.name.strip('/')} already "
                                f"exists in network {network.name}")
            return
        if sandbox is not None:
            entry = await self._attach_running(container, network, entry)
        await self._save_networks(container.id, {network.name: entry})
        if sandbox is not None:
            await self._refresh_hosts(container)
            self._networks.emit(network, "connect", container=container.id)

    async def _attach_running(self, container: Container, network: Network,
                              entry: dict[str, Any]) -> dict[str, Any]:
        assert self._networks is not None
        ipam = entry.get("IPAMConfig") or {}
        info = await self._networks.sandboxes.connect(
            container.id, container.name.strip("/"),
            str(container.config.get("Hostname") or container.id[:12]),
            EndpointRequest(network, ipv4=ipam.get("IPv4Address") or "",
                            ipv6=ipam.get("IPv6Address") or "",
                            mac=entry.get("ConfiguredMacAddress") or "",
                            aliases=tuple(entry.get("Aliases") or ()),
                            links=tuple(settings_of.user_links(entry))))
        return settings_of.with_runtime(
            entry, network_id=info.network_id, endpoint_id=info.endpoint_id,
            ipv4=info.ipv4, gateway=info.gateway, ipv6=info.ipv6,
            ipv6_gateway=info.ipv6_gateway, mac=info.mac, dns_names=info.dns_names())

    async def _save_networks(self, container_id: str,
                             changes: Mapping[str, dict[str, Any] | None]) -> None:
        """Add (or, for ``None``, remove) entries of the record's ``Networks``."""
        def save() -> None:
            current = self._store.get(container_id)
            settings = dict(current.network_settings)
            networks = dict(settings.get("Networks") or {})
            for name, entry in changes.items():
                if entry is None:
                    networks.pop(name, None)
                else:
                    networks[name] = entry
            settings["Networks"] = networks
            self._store.save_network(container_id, settings)
        await self._writer(save)

    async def _refresh_hosts(self, container: Container) -> None:
        """Rewrite a running container's ``/etc/hosts`` for its endpoints now (in
        place: the container has the file bind-mounted)."""
        assert self._networks is not None
        sandbox = self._networks.sandboxes.get(container.id)
        if sandbox is None or not container.hosts_path:
            return
        addresses = [_address(a) for info in sandbox.infos.values()
                     for a in (info.ipv4, info.ipv6) if a]
        text = etcfiles.hosts_file(
            str(container.config.get("Hostname") or container.id[:12]),
            str(container.config.get("Domainname") or ""), addresses,
            self._extra_hosts(container))
        await self._writer(lambda: Path(container.hosts_path).write_text(text))

    def disconnect(self, container: str, network: Network | None, name: str,
                   force: bool) -> Deferred[None]:
        return ensureDeferred(self._disconnect(container, network, name, force))

    async def _disconnect(self, reference: str, network: Network | None, name: str,
                          force: bool) -> None:
        container = await self._reader(lambda: self._store.get(reference))
        network_name_ = network.name if network is not None else name
        if network_name_ not in container.networks:
            raise System(f"container {container.id} is not connected to the network "
                         f"{network_name_}")
        if network is not None and network.driver == "host" and \
                container.network_mode == "host":
            raise InvalidParameter(_HOST_CONFLICT)
        sandboxes = self._networks.sandboxes if self._networks else None
        if network is not None and sandboxes is not None and \
                sandboxes.get(container.id) is not None:
            await sandboxes.disconnect(container.id, network.id)
            await self._refresh_hosts(container)
        await self._save_networks(container.id, {network_name_: None})
        if network is not None and self._networks is not None:
            self._networks.emit(network, "disconnect", container=container.id)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _copy_or_empty(source: Path, target: Path) -> None:
    atomic_write(target, _read(source).encode(), 0o644, durable=False)

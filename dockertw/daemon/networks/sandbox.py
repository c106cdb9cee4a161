"""A running container's network stack: its namespace, endpoints, ports and DNS.

:meth:`Sandboxes.start` pins a new namespace (opening the embedded DNS sockets inside
it), attaches it with CNI ``ADD`` (``loopback``, then one ``bridge`` list per network,
all at once), holds and forwards the published ports and starts the DNS server;
:meth:`Sandboxes.stop` undoes it with CNI ``DEL``.  What was set up is recorded in the
container's directory (``network.json``: the namespace, each CNI list, runtime
arguments and result, the port rules) before and after each step, so that a daemon
restarted after ``kill -9`` tears down exactly that (:meth:`Sandboxes.recover`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from dockertw.daemon.networks.bridges import cni_config
from dockertw.daemon.networks.dns import DnsServer, EmbeddedDns, open_sockets
from dockertw.daemon.networks.firewall import Firewall, PortRule
from dockertw.daemon.networks.ports import PortAllocated, PortRequest, Reservation, reserve
from dockertw.daemon.networks.records import Network
from dockertw.daemon.networks.table import EndpointInfo, EndpointTable
from dockertw.daemon.storage import atomic_write
from dockertw.daemon.workers import Runner
from dockertw.errdefs import DockerError, System
from dockertw.runtime import netns
from dockertw.runtime.cni import Cni, CniError, NetworkConfigList, RuntimeConf

__all__ = ["EndpointRequest", "SandboxRequest", "Attachment", "Sandbox", "Sandboxes",
           "new_endpoint_id"]

_log = Logger()
_LOOPBACK = NetworkConfigList(name="loopback", plugins=({"type": "loopback"},))


def new_endpoint_id() -> str:
    return secrets.token_hex(32)


@attrs.frozen
class EndpointRequest:
    """One network to attach the container to, with what the user asked of it."""

    network: Network
    endpoint_id: str = attrs.field(factory=new_endpoint_id)
    ipv4: str = ""
    ipv6: str = ""
    mac: str = ""
    aliases: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class SandboxRequest:
    """A container's network stack to build."""

    container_id: str
    container_name: str  # without "/"
    hostname: str
    netns: Path
    state: Path  # the record (network.json in the container's directory)
    endpoints: tuple[EndpointRequest, ...] = ()
    ports: tuple[PortRequest, ...] = ()
    upstreams: tuple[tuple[str, int], ...] = ()  # for the embedded DNS


@attrs.frozen
class Attachment:
    """One CNI attachment as recorded: the list, the call, the result."""

    network_id: str
    network_name: str
    endpoint_id: str
    config: NetworkConfigList
    runtime: RuntimeConf
    result: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"NetworkID": self.network_id, "NetworkName": self.network_name,
                "EndpointID": self.endpoint_id, "Config": self.config.to_json(),
                "Runtime": self.runtime.to_json(), "Result": self.result}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Attachment:
        return cls(network_id=str(value["NetworkID"]),
                   network_name=str(value.get("NetworkName") or ""),
                   endpoint_id=str(value.get("EndpointID") or ""),
                   config=NetworkConfigList.from_json(value["Config"]),
                   runtime=RuntimeConf.from_json(value["Runtime"]),
                   result=value.get("Result"))

    def _ips(self, version: int) -> tuple[str, str]:
        for ip in (self.result or {}).get("ips") or ():
            address = str(ip.get("address") or "")
            if (":" in address) == (version == 6):
                return address, str(ip.get("gateway") or "")
        return "", ""

    def ipv4(self) -> tuple[str, str]:
        """The container's address (CIDR) and gateway on this network."""
        return self._ips(4)

    def ipv6(self) -> tuple[str, str]:
        return self._ips(6)

    def mac(self) -> str:
        for interface in (self.result or {}).get("interfaces") or ():
            if interface.get("name") == self.runtime.ifname and interface.get("sandbox"):
                return str(interface.get("mac") or "")
        return ""

    def has_gateway(self) -> bool:
        plugin = self.config.plugins[0] if self.config.plugins else {}
        return bool(plugin.get("isDefaultGateway"))


@attrs.define
class Sandbox:
    """What a running container's network stack is made of."""

    container_id: str
    netns: Path
    state: Path
    loopback: Attachment
    attachments: list[Attachment] = attrs.field(factory=list)
    ports: list[PortRule] = attrs.field(factory=list)
    reservations: list[Reservation] = attrs.field(factory=list)
    dns: DnsServer | None = None
    infos: dict[str, EndpointInfo] = attrs.field(factory=dict)  # by network ID

    def record(self) -> bytes:
        return json.dumps({
            "NetNS": str(self.netns), "Loopback": self.loopback.to_json(),
            "Endpoints": [a.to_json() for a in self.attachments],
            "Ports": [attrs.asdict(p) for p in self.ports]}).encode()

    def save(self) -> None:
        """Record the stack (whole-file, not fsynced: the start-up sweep covers a
        power loss; a crashed daemon leaves the file whole)."""
        atomic_write(self.state, self.record(), durable=False)

    def free_ifname(self) -> str:
        used = {a.runtime.ifname for a in self.attachments}
        return next(f"eth{n}" for n in range(len(used) + 1) if f"eth{n}" not in used)

    def attachment(self, network_id: str) -> Attachment | None:
        return next((a for a in self.attachments if a.network_id == network_id), None)


def _with_prefix(address: str, network: Network) -> str:
    """``10.0.0.5`` -> ``10.0.0.5/24`` (host-local wants the subnet's prefix)."""
    if not address or "/" in address:
        return address
    version = 6 if ":" in address else 4
    pool = network.pool_of(version)
    return f"{address}/{pool.network.prefixlen}" if pool else address


class Sandboxes:
    """Builds and tears down sandboxes; ``blocking`` CNI for recovery at start-up."""

    def __init__(self, *, cni: Cni, blocking_cni: Cni, firewall: Firewall,
                 dns: EmbeddedDns, table: EndpointTable, threads: Runner,
                 ipam_dir: Path) -> None:
        self._cni = cni
        self._blocking_cni = blocking_cni
        self._firewall = firewall
        self._dns = dns
        self._table = table
        self._threads = threads
        self._ipam_dir = ipam_dir
        self._sandboxes: dict[str, Sandbox] = {}

    def get(self, container_id: str) -> Sandbox | None:
        return self._sandboxes.get(container_id)

    # -- start -------------------------------------------------------------------------

    def _attachment(self, sandbox: Sandbox, request: EndpointRequest, ifname: str,
                    gateway: bool) -> Attachment:
        """The CNI call attaching ``sandbox`` to the request's network as ``ifname``
        (``gateway``: its default route goes there)."""
        network = request.network
        ips = [_with_prefix(a, network) for a in (request.ipv4, request.ipv6) if a]
        runtime = RuntimeConf(container_id=sandbox.container_id, netns=str(sandbox.netns),
                              ifname=ifname, runtime={"ips": ips} if ips else {})
        config = cni_config(network, self._ipam_dir, default_gateway=gateway,
                            mac=request.mac, static=bool(ips))
        return Attachment(network.id, network.name, request.endpoint_id, config, runtime)

    async def start(self, request: SandboxRequest) -> Sandbox:
        """Build the stack; on failure nothing of it is left."""
        wants_dns = any(e.network.name != "bridge" for e in request.endpoints)
        sockets = await self._threads(lambda: netns.create(
            request.netns, open_sockets if wants_dns else None))
        loopback = Attachment("", "", "", _LOOPBACK,
                              RuntimeConf(request.container_id, str(request.netns), "lo"))
        sandbox = Sandbox(request.container_id, request.netns, request.state, loopback)
        planned: list[Attachment] = []
        for index, endpoint in enumerate(request.endpoints):
            gateway = not endpoint.network.internal and \
                not any(a.has_gateway() for a in planned)
            planned.append(self._attachment(sandbox, endpoint, f"eth{index}", gateway))
        sandbox.attachments = planned
        try:
            self._reserve(sandbox, request)
            await self._threads(sandbox.save)
            await self._add_all(sandbox)
            self._port_rules(sandbox, request)
            await self._firewall.publish(sandbox.ports)
        except BaseException:
            if sockets is not None:
                for sock in sockets:
                    sock.close()
            await self._teardown(sandbox)
            raise
        if sockets is not None:
            sandbox.dns = self._dns.serve(request.container_id, sockets, request.upstreams)
        for endpoint, attachment in zip(request.endpoints, sandbox.attachments, strict=True):
            self._register(sandbox, request, endpoint, attachment)
        self._sandboxes[request.container_id] = sandbox
        await self._threads(sandbox.save)
        return sandbox

    async def _add_all(self, sandbox: Sandbox) -> None:
        """CNI ADD of loopback and every endpoint at once; results recorded."""
        calls = [self._cni.add(a.config, a.runtime)
                 for a in (sandbox.loopback, *sandbox.attachments)]
        results: list[tuple[bool, Any]] = await DeferredList(
            [ensureDeferred(c) for c in calls], consumeErrors=True)
        failures: list[Failure] = [outcome for ok, outcome in results if not ok]
        outcomes = [outcome if ok else None for ok, outcome in results]
        sandbox.attachments = [attrs.evolve(a, result=r) for a, r in
                               zip(sandbox.attachments, outcomes[1:], strict=True)]
        if failures:
            failures[0].raiseException()

    def _reserve(self, sandbox: Sandbox, request: SandboxRequest) -> None:
        """Hold the host ports (a taken one fails the start before anything else)."""
        carrier = next((e.network for e in request.endpoints if not e.network.internal),
                       None)
        default_ip = carrier.host_ip if carrier else "0.0.0.0"
        for port in request.ports:
            sandbox.reservations.append(reserve(port, default_ip))

    def _port_rules(self, sandbox: Sandbox, request: SandboxRequest) -> None:
        """The DNAT of each held port, to the endpoint that has the default route."""
        carrier = next((a for a in sandbox.attachments if a.has_gateway()), None)
        target = carrier.ipv4()[0].split("/")[0] if carrier else ""
        if not target:
            return
        sandbox.ports = [PortRule(held.request.proto, held.host_ip, held.host_port, target,
                                  held.request.port, request.container_id)
                         for held in sandbox.reservations]

    def _register(self, sandbox: Sandbox, request: SandboxRequest,
                  endpoint: EndpointRequest, attachment: Attachment) -> None:
        ipv4, gateway = attachment.ipv4()
        ipv6, gateway6 = attachment.ipv6()
        info = EndpointInfo(
            container_id=request.container_id, container_name=request.container_name,
            hostname=request.hostname, network_id=attachment.network_id,
            network_name=attachment.network_name, endpoint_id=attachment.endpoint_id,
            mac=attachment.mac(), ipv4=ipv4, ipv6=ipv6, gateway=gateway,
            ipv6_gateway=gateway6, aliases=endpoint.aliases, links=endpoint.links,
            user_defined=not endpoint.network.predefined)
        sandbox.infos[attachment.network_id] = info
        self._table.add(info)

    # -- connect, disconnect (running containers) --------------------------------------

    async def connect(self, container_id: str, container_name: str, hostname: str,
                      endpoint: EndpointRequest) -> EndpointInfo:
        """Attach a running container to one more network."""
        sandbox = self._sandboxes[container_id]
        gateway = not any(a.has_gateway() for a in sandbox.attachments) and \
            not endpoint.network.internal
        attachment = self._attachment(sandbox, endpoint, sandbox.free_ifname(), gateway)
        sandbox.attachments.append(attachment)
        await self._threads(sandbox.save)
        try:
            result = await self._cni.add(attachment.config, attachment.runtime)
        except BaseException:
            await self._delete(attachment)
            sandbox.attachments.remove(attachment)
            await self._threads(sandbox.save)
            raise
        done = attrs.evolve(attachment, result=result)
        sandbox.attachments[sandbox.attachments.index(attachment)] = done
        request = SandboxRequest(container_id, container_name, hostname, sandbox.netns,
                                 sandbox.state)
        self._register(sandbox, request, endpoint, done)
        await self._threads(sandbox.save)
        return sandbox.infos[done.network_id]

    async def disconnect(self, container_id: str, network_id: str) -> None:
        """Detach a running container from one network (CNI DEL)."""
        sandbox = self._sandboxes[container_id]
        attachment = sandbox.attachment(network_id)
        if attachment is None:
            return
        self._table.remove(container_id, network_id)
        sandbox.infos.pop(network_id, None)
        await self._delete(attachment)
        sandbox.attachments.remove(attachment)
        await self._threads(sandbox.save)

    # -- stop ----------------------------------------------------------------------------

    async def stop(self, container_id: str) -> None:
        """Tear down the container's stack (nothing to do if it has none)."""
        sandbox = self._sandboxes.pop(container_id, None)
        if sandbox is None:
            return
        try:
            await self._teardown(sandbox)
        except (DockerError, OSError) as error:  # logged: the exit must still be recorded
            _log.warn("network teardown of {id}: {error}", id=container_id,
                      error=str(error))

    async def _teardown(self, sandbox: Sandbox) -> None:
        for network_id in list(sandbox.infos):
            self._table.remove(sandbox.container_id, network_id)
        if sandbox.dns is not None:
            sandbox.dns.stop()
        try:
            await self._firewall.unpublish(sandbox.ports)
        except DockerError as error:
            _log.warn("unpublish ports of {id}: {error}", id=sandbox.container_id,
                      error=str(error))
        for held in sandbox.reservations:
            held.release()
        await DeferredList([ensureDeferred(self._delete(a)) for a in sandbox.attachments],
                           consumeErrors=True)
        await self._threads(lambda: _remove_stack(sandbox.netns, sandbox.state))

    async def _delete(self, attachment: Attachment) -> None:
        try:
            await self._cni.delete(attachment.config, attachment.runtime, attachment.result)
        except CniError as error:
            _log.warn("CNI DEL {network} of {id}: {error}", network=attachment.network_name,
                      id=attachment.runtime.container_id, error=str(error))

    # -- live restore (daemon start, blocking) ------------------------------------------

    def restore(self, request: SandboxRequest) -> Sandbox | None:
        """Take back the stack a previous daemon recorded for a container that kept
        running (``--live-restore``): its namespace, CNI attachments (their addresses
        stay leased) and port rules as they are; the host ports are held again and
        the embedded DNS serves again.  None (logged) if the record is unusable."""
        try:
            sandbox = _recorded(request.container_id, request.state)
        except (OSError, KeyError, TypeError, ValueError) as error:
            _log.warn("cannot take back the network of {id}: {error}",
                      id=request.container_id, error=str(error))
            return None
        sandbox.reservations = [held for held in map(_hold_again, sandbox.ports) if held]
        if any(e.network.name != "bridge" for e in request.endpoints):
            sandbox.dns = self._serve_dns_again(sandbox, request)
        by_network = {a.network_id: a for a in sandbox.attachments}
        for endpoint in request.endpoints:
            attachment = by_network.get(endpoint.network.id)
            if attachment is not None:
                self._register(sandbox, request, endpoint, attachment)
        self._sandboxes[request.container_id] = sandbox
        return sandbox

    def _serve_dns_again(self, sandbox: Sandbox, request: SandboxRequest
                         ) -> DnsServer | None:
        try:
            sockets = netns.enter(sandbox.netns, open_sockets)
        except OSError as error:
            _log.warn("embedded DNS of {id}: {error}", id=request.container_id,
                      error=str(error))
            return None
        return self._dns.serve(request.container_id, sockets, request.upstreams)

    def kept(self) -> dict[str, Sandbox]:
        """The running containers' stacks, by container ID."""
        return dict(self._sandboxes)

    # -- recovery (daemon start, blocking) ---------------------------------------------

    def recover(self, state: Path) -> None:
        """Tear down what a previous daemon recorded in ``state`` (its containers are
        gone): CNI DEL of each attachment with its recorded list and result, then the
        namespace and the record."""
        try:
            record = json.loads(state.read_bytes())
        except FileNotFoundError:
            return
        except ValueError:
            record = {}
        for item in record.get("Endpoints") or ():
            try:
                attachment = Attachment.from_json(item)
                ensureDeferred(self._blocking_cni.delete(
                    attachment.config, attachment.runtime, attachment.result)
                ).addErrback(lambda failure: _log.warn(
                    "recovery CNI DEL: {error}", error=failure.getErrorMessage()))
            except (KeyError, TypeError, ValueError) as error:
                _log.warn("unreadable network record {path}: {error}", path=str(state),
                          error=str(error))
        _remove_stack(Path(record.get("NetNS") or state.with_name("no-netns")), state)


def _recorded(container_id: str, state: Path) -> Sandbox:
    """The stack ``state`` records (what :meth:`Sandbox.record` wrote)."""
    record = json.loads(state.read_bytes())
    return Sandbox(container_id, Path(record["NetNS"]), state,
                   Attachment.from_json(record["Loopback"]),
                   [Attachment.from_json(item) for item in record.get("Endpoints") or ()],
                   [PortRule(**item) for item in record.get("Ports") or ()])


def _hold_again(rule: PortRule) -> Reservation | None:
    """The host port of a restored rule, held again (taken meanwhile: logged; its
    DNAT rule still forwards it)."""
    request = PortRequest(rule.container_port, rule.proto, rule.host_ip, rule.host_port,
                          rule.host_port)
    try:
        return reserve(request, rule.host_ip)
    except PortAllocated:
        _log.warn("port {ip}:{port} of {id} was taken while the daemon was away",
                  ip=rule.host_ip, port=rule.host_port, id=rule.container_id)
        return None


def _remove_stack(path: Path, state: Path) -> None:
    try:
        netns.remove(path)
    except OSError as error:
        raise System(f"cannot remove network namespace {path}: {error}") from None
    finally:
        state.unlink(missing_ok=True)

"""The daemon's IPv4 firewall rules, all in chains of its own.

Every chain is named ``<prefix>-...`` where the prefix is the daemon's (one per state
root), so two daemons on a host never share a chain.  The only rules outside them are
four jumps into them, inserted at start and deleted at shut-down (and found again by
name after a crash)::

    filter FORWARD      -> P-FORWARD (established, icc, outbound, published, internal)
                           P-ISOLATION-1/2 (no traffic between two of our bridges)
    nat PREROUTING, OUTPUT (local destinations) -> P-DNAT (published ports)
    nat POSTROUTING     -> P-POSTROUTING (masquerade, loopback and hairpin NAT)

The network rules are rebuilt as one transaction whenever a network comes or goes;
each published port is one DNAT rule added and deleted with its container's run.
Published ports reach containers by kernel NAT only: from other hosts, from the host
(also on 127.0.0.1, as the bridges have ``route_localnet``) and from containers
(hairpin), with no proxy process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs
from twisted.internet.defer import Deferred, succeed

from dockertw.runtime.iptables import Iptables

__all__ = ["Firewall", "BridgeRules", "PortRule", "chain_prefix"]

_BUILTIN = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


def chain_prefix(root: Path) -> str:
    """``DTW-<6 hex>``: the daemon's chains are named after its state root."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:6].upper()
    return f"DTW-{digest}"


@attrs.frozen
class BridgeRules:
    """What the firewall needs to know of one bridge network."""

    bridge: str
    subnets: tuple[str, ...]  # IPv4 ones
    internal: bool = False
    icc: bool = True
    masquerade: bool = True


@attrs.frozen
class PortRule:
    """One published port: ``host_ip:host_port/proto`` -> ``container_ip:port``."""

    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int
    container_id: str

    def spec(self, chain: str) -> str:
        """The rule after ``-A``/``-D``."""
        destination = "" if self.host_ip in ("", "0.0.0.0") else f"-d {self.host_ip}/32 "
        return (f"{chain} {destination}-p {self.proto} -m {self.proto} "
                f"--dport {self.host_port} -m comment --comment {self.container_id[:12]} "
                f"-j DNAT --to-destination {self.container_ip}:{self.container_port}")


def _table(name: str, lines: Iterable[str]) -> str:
    body = list(lines)
    return f"*{name}\n" + "".join(line + "\n" for line in body) + "COMMIT\n" if body else ""


class Firewall:
    """The chains of one daemon (``enabled`` False: ``--iptables=false``, no rules)."""

    def __init__(self, prefix: str, iptables: Iptables, enabled: bool = True) -> None:
        self.prefix = prefix
        self.enabled = enabled
        self._iptables = iptables
        self.forward = f"{prefix}-FORWARD"
        self.isolation = (f"{prefix}-ISOLATION-1", f"{prefix}-ISOLATION-2")
        self.dnat = f"{prefix}-DNAT"
        self.postrouting = f"{prefix}-POSTROUTING"

    # -- rule text ---------------------------------------------------------------------

    def _base(self) -> str:
        filter_lines = [f":{chain} - [0:0]" for chain in (self.forward, *self.isolation)]
        filter_lines += [f"-A {self.forward} -j {self.isolation[0]}",
                         f"-I FORWARD -j {self.forward}"]
        nat_lines = [f":{self.dnat} - [0:0]", f":{self.postrouting} - [0:0]",
                     f"-I PREROUTING -m addrtype --dst-type LOCAL -j {self.dnat}",
                     f"-I OUTPUT -m addrtype --dst-type LOCAL -j {self.dnat}",
                     f"-I POSTROUTING -j {self.postrouting}"]
        return _table("filter", filter_lines) + _table("nat", nat_lines)

    def _forward_lines(self, net: BridgeRules) -> list[str]:
        bridge, chain = net.bridge, self.forward
        lines = [f"-A {self.isolation[0]} -i {bridge} ! -o {bridge} -j {self.isolation[1]}",
                 f"-A {self.isolation[1]} -o {bridge} -j DROP"]
        verdict = "ACCEPT" if net.icc else "DROP"
        lines.append(f"-A {chain} -i {bridge} -o {bridge} -j {verdict}")
        if net.internal:
            return lines + [f"-A {chain} -i {bridge} ! -o {bridge} -j DROP",
                            f"-A {chain} ! -i {bridge} -o {bridge} -j DROP"]
        return lines + [
            f"-A {chain} -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A {chain} -o {bridge} -m conntrack --ctstate DNAT -j ACCEPT",
            f"-A {chain} -i {bridge} ! -o {bridge} -j ACCEPT"]

    def _nat_lines(self, net: BridgeRules) -> list[str]:
        bridge, chain = net.bridge, self.postrouting
        lines = [f"-A {chain} -o {bridge} -s 127.0.0.0/8 -j MASQUERADE"]
        for subnet in net.subnets:
            lines.append(f"-A {chain} -o {bridge} -s {subnet} -m conntrack --ctstate DNAT "
                         "-j MASQUERADE")
            if net.masquerade and not net.internal:
                lines.append(f"-A {chain} -s {subnet} ! -o {bridge} -j MASQUERADE")
        return lines

    def network_rules(self, networks: Sequence[BridgeRules]) -> str:
        """Every network's rules, replacing the ones before (one transaction)."""
        filter_lines = [f":{chain} - [0:0]" for chain in (self.forward, *self.isolation)]
        filter_lines.append(f"-A {self.forward} -j {self.isolation[0]}")
        nat_lines = [f":{self.postrouting} - [0:0]"]
        for net in networks:
            filter_lines += self._forward_lines(net)
            nat_lines += self._nat_lines(net)
        return _table("filter", filter_lines) + _table("nat", nat_lines)

    def port_rules(self, ports: Iterable[PortRule], add: bool) -> str:
        verb = "-A" if add else "-D"
        return _table("nat", [f"{verb} {port.spec(self.dnat)}" for port in ports])

    def teardown_rules(self, saved: dict[str, str]) -> str:
        """What deletes every rule and chain of this prefix, given ``iptables-save``
        output per table (what a crashed daemon left, or a clean stop)."""
        ours = re.compile(rf"-j {re.escape(self.prefix)}-\S+")
        text = ""
        for table, dump in saved.items():
            chains = [line.split()[0][1:] for line in dump.splitlines()
                      if line.startswith(f":{self.prefix}-")]
            jumps = ["-D" + line[2:] for line in dump.splitlines()
                     if line.startswith("-A ") and line.split()[1] in _BUILTIN
                     and ours.search(line)]
            lines = jumps + [f":{chain} - [0:0]" for chain in chains] + \
                [f"-X {chain}" for chain in chains]
            text += _table(table, lines)
        return text

    # -- applying ----------------------------------------------------------------------

    def _apply(self, rules: str) -> Deferred[None]:
        if not self.enabled or not rules:
            return succeed(None)
        return self._iptables.restore(rules)

    def start(self, networks: Sequence[BridgeRules]) -> Deferred[None]:
        """Remove what an earlier life left, then create the chains and the jumps."""
        return self.stop().addCallback(
            lambda _: self._apply(self._base() + self.network_rules(networks)))

    def set_networks(self, networks: Sequence[BridgeRules]) -> Deferred[None]:
        return self._apply(self.network_rules(networks))

    def publish(self, ports: Sequence[PortRule]) -> Deferred[None]:
        return self._apply(self.port_rules(ports, add=True))

    def unpublish(self, ports: Sequence[PortRule]) -> Deferred[None]:
        return self._apply(self.port_rules(ports, add=False))

    def stop(self) -> Deferred[None]:
        """Delete every chain and jump of this prefix."""
        if not self.enabled:
            return succeed(None)
        saved: dict[str, str] = {}

        def dump(table: str) -> Deferred[None]:
            return self._iptables.save(table).addCallback(
                lambda text: saved.__setitem__(table, text))

        done = dump("filter").addCallback(lambda _: dump("nat"))
        return done.addCallback(lambda _: self._apply(self.teardown_rules(saved)))

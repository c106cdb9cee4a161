"""Subnets and addresses: the address pools new networks take subnets from, the
checks of a user's ``IPAM.Config``, and the ``host-local`` ranges that hand out
container addresses.

As Docker does, a subnet chosen from a pool is one that overlaps no route on the host
(so dockertw and a Docker Engine side by side pick different ones) and no other
network of the daemon.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dockertw.daemon.jsonfields import json_text
from dockertw.daemon.networks.records import IpamPool, Network, Subnet
from dockertw.errdefs import Forbidden, InvalidParameter

__all__ = ["AddressPool", "DEFAULT_POOLS", "parse_address_pool", "host_routes",
           "choose_subnet", "parse_ipam", "check_no_overlap", "cni_ranges",
           "ipv6_subnet_for", "subnet_status", "leases", "release_leases_but"]

@attrs.frozen
class AddressPool:
    """``--default-address-pool base=CIDR,size=N``: subnets of prefix ``size`` in
    ``base``."""

    base: ipaddress.IPv4Network
    size: int

    def subnets(self) -> Iterator[ipaddress.IPv4Network]:
        return self.base.subnets(new_prefix=self.size)


DEFAULT_POOLS = (*(AddressPool(ipaddress.IPv4Network(f"172.{n}.0.0/16"), 16)
                   for n in range(17, 32)),
                 AddressPool(ipaddress.IPv4Network("192.168.0.0/16"), 20))


def parse_address_pool(text: str) -> AddressPool:
    """``base=172.30.0.0/16,size=24`` (ValueError with a reason when malformed)."""
    fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    try:
        base = ipaddress.IPv4Network(fields["base"])
        size = int(fields["size"])
    except (KeyError, ValueError) as error:
        raise ValueError(f"invalid default address pool {text!r}: {error}") from None
    if not base.prefixlen <= size <= 30:
        raise ValueError(f"invalid default address pool {text!r}: size must be between "
                         f"{base.prefixlen} and 30")
    return AddressPool(base, size)


def _ipv4_routes(text: str) -> Iterator[tuple[Subnet, str]]:
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        destination = ipaddress.IPv4Address(bytes.fromhex(fields[1])[::-1])
        mask = ipaddress.IPv4Address(bytes.fromhex(fields[7])[::-1])
        if int(mask):
            yield ipaddress.IPv4Network(f"{destination}/{mask}", strict=False), fields[0]


def _ipv6_routes(text: str) -> Iterator[tuple[Subnet, str]]:
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10 or int(fields[1], 16) == 0:
            continue
        address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        network = ipaddress.IPv6Network(f"{address}/{int(fields[1], 16)}", strict=False)
        if not network.is_link_local and not network.is_multicast:
            yield network, fields[9]


def host_routes(except_devices: Iterable[str] = (), proc: Path = Path("/proc/net")
                ) -> list[Subnet]:
    """The destinations of the host's routes (default routes, and routes through
    ``except_devices``, left out)."""
    skipped = set(except_devices)
    found: list[Subnet] = []
    for name, parse in (("route", _ipv4_routes), ("ipv6_route", _ipv6_routes)):
        try:
            text = (proc / name).read_text()
        except OSError:
            continue
        found.extend(subnet for subnet, device in parse(text) if device not in skipped)
    return found


def _overlaps(subnet: Subnet, others: Iterable[Subnet]) -> bool:
    return any(subnet.version == other.version and subnet.overlaps(other)
               for other in others)


def choose_subnet(pools: Sequence[AddressPool], in_use: Iterable[Subnet]
                  ) -> ipaddress.IPv4Network:
    """The first subnet of ``pools`` that overlaps nothing ``in_use``."""
    taken = list(in_use)
    for pool in pools:
        for subnet in pool.subnets():
            if not _overlaps(subnet, taken):
                return subnet
    raise Forbidden("could not find an available, non-overlapping IPv4 address pool "
                    "among the defaults to assign to the network")


def ipv6_subnet_for(network_id: str, in_use: Iterable[Subnet]) -> ipaddress.IPv6Network:
    """A unique-local /64 for a network that enables IPv6 without a subnet."""
    taken = list(in_use)
    for attempt in range(16):
        digest = hashlib.sha256(f"{network_id}/{attempt}".encode()).digest()
        subnet = ipaddress.IPv6Network((b"\xfd" + digest[:7] + bytes(8), 64))
        if not _overlaps(subnet, taken):
            return subnet
    raise Forbidden("could not find an available IPv6 address pool for the network")


# -- a user's IPAM.Config (moby ValidateIPAM) ------------------------------------------


def _parse_subnet(text: str) -> Subnet | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _has_host_bits(block: Subnet, text: str) -> bool:
    """Whether ``text`` (``address/prefix``) names an address inside ``block`` rather
    than its first one (``10.0.0.1/24`` is not ``10.0.0.0/24``)."""
    return ipaddress.ip_address(text.split("/", 1)[0]) != block.network_address


def _address_error(text: str, subnet: Subnet) -> str:
    if not text:
        return ""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return "invalid address"
    if address.version != subnet.version:
        return f"parent subnet is an IPv{subnet.version} block"
    if address not in subnet:
        return f"parent subnet {subnet} doesn't contain this address"
    return ""


def _range_errors(text: str, subnet: Subnet) -> list[str]:
    if not text:
        return []
    prefix = _parse_subnet(text)
    if prefix is None:
        return [f"invalid ip-range {text}: invalid CIDR block notation"]
    if prefix.version != subnet.version:
        return [f"invalid ip-range {text}: parent subnet is an IPv{subnet.version} block"]
    errors = []
    if prefix.prefixlen < subnet.prefixlen:
        errors.append(f"invalid ip-range {text}: CIDR block is bigger than its parent "
                      f"subnet {subnet}")
    if _has_host_bits(prefix, text):
        errors.append(f"invalid ip-range {text}: it should be {prefix}")
    if not prefix.overlaps(subnet):
        errors.append(f"invalid ip-range {text}: parent subnet {subnet} doesn't contain "
                      "ip-range")
    return errors


def _pool_errors(pool: IpamPool) -> list[str]:
    subnet = _parse_subnet(pool.subnet)
    if subnet is None:
        return [f"invalid subnet {pool.subnet}: invalid CIDR block notation"]
    errors = []
    if _has_host_bits(subnet, pool.subnet):
        errors.append(f"invalid subnet {pool.subnet}: it should be {subnet}")
    errors.extend(_range_errors(pool.ip_range, subnet))
    gateway = _address_error(pool.gateway, subnet)
    if gateway:
        errors.append(f"invalid gateway {pool.gateway}: {gateway}")
    for name, address in sorted(pool.aux.items()):
        problem = _address_error(address, subnet)
        if problem:
            errors.append(f"invalid auxiliary address {name}: {problem}")
    return errors




def _pool(entry: Any) -> IpamPool:
    if not isinstance(entry, dict):
        raise InvalidParameter("invalid JSON: IPAM.Config entries must be objects")
    aux = entry.get("AuxiliaryAddresses") or entry.get("AuxAddress") or {}
    if not isinstance(aux, dict) or not all(isinstance(v, str) for v in aux.values()):
        raise InvalidParameter("invalid JSON: AuxiliaryAddresses must map names to "
                               "addresses")
    return IpamPool(subnet=json_text(entry.get("Subnet"), "Subnet"),
                    ip_range=json_text(entry.get("IPRange"), "IPRange"),
                    gateway=json_text(entry.get("Gateway"), "Gateway"), aux=dict(aux))


def parse_ipam(ipam: Any, enable_ipv6: bool) -> tuple[list[IpamPool], dict[str, str] | None]:
    """A create body's ``IPAM``: its pools (checked) and ``Options``."""
    if ipam is None:
        return [], None
    if not isinstance(ipam, dict):
        raise InvalidParameter("invalid JSON: IPAM must be an object")
    driver = ipam.get("Driver") or "default"
    if driver != "default":
        raise InvalidParameter(f'IPAM driver "{driver}" is not supported by dockertw '
                               '(only "default")')
    pools = [_pool(entry) for entry in ipam.get("Config") or ()]
    errors: list[str] = []
    for pool in pools:
        subnet = _parse_subnet(pool.subnet)
        if not pool.subnet:
            raise InvalidParameter("IPAM.Config entries without a Subnet are not supported "
                                   "by dockertw")
        if subnet is not None and subnet.version == 6 and not enable_ipv6:
            continue
        errors.extend(_pool_errors(pool))
    if errors:
        raise InvalidParameter("invalid network config:\n" + "\n".join(errors))
    options = ipam.get("Options")
    return ([p for p in pools if enable_ipv6 or p.version == 4],
            dict(options) if isinstance(options, dict) else None)


def check_no_overlap(pools: Iterable[IpamPool], networks: Iterable[Network]) -> None:
    """403 when a user's subnet overlaps a subnet of another network of the daemon."""
    others = [subnet for network in networks for subnet in network.subnets()]
    for pool in pools:
        if _overlaps(pool.network, others):
            raise Forbidden("invalid pool request: Pool overlaps with other one on this "
                            "address space")


# -- host-local ranges -------------------------------------------------------------------


def _bounds(pool: IpamPool, whole_subnet: bool = False) -> tuple[int, int]:
    """The first and last address a container may get, as integers: the range (or the
    subnet) without its network and broadcast addresses."""
    subnet = pool.network
    block = ipaddress.ip_network(pool.ip_range) if pool.ip_range and not whole_subnet \
        else subnet
    first = max(int(block.network_address), int(subnet.network_address)) + 1
    last = min(int(block.broadcast_address),
               int(subnet.broadcast_address) - (1 if subnet.version == 4 else 0))
    if block.version == 4 and block.prefixlen >= 31:
        first = int(block.network_address)
    return first, last


def _segments(first: int, last: int, holes: Sequence[int]) -> list[tuple[int, int]]:
    """``[first, last]`` without the addresses in ``holes``."""
    segments, start = [], first
    for hole in sorted(h for h in holes if first <= h <= last):
        if start < hole:
            segments.append((start, hole - 1))
        start = hole + 1
    if start <= last:
        segments.append((start, last))
    return segments


def cni_ranges(network: Network, static: bool = False) -> list[list[dict[str, str]]]:
    """``host-local``'s ``ranges``: one range set per pool, split around the auxiliary
    addresses (which it must never hand out); ``static`` (an address is asked for):
    the whole subnet, as Docker takes static addresses outside ``IPRange``."""
    sets = []
    for pool in network.pools:
        first, last = _bounds(pool, static)
        holes = [int(ipaddress.ip_address(a)) for a in pool.aux.values()]
        address = type(pool.network.network_address)
        sets.append([{"subnet": str(pool.network), "rangeStart": str(address(start)),
                      "rangeEnd": str(address(end)), "gateway": pool.gateway_address()}
                     for start, end in _segments(first, last, holes)])
    return sets


def subnet_status(pool: IpamPool, leased: int) -> dict[str, int]:
    """``Status.IPAM.Subnets[subnet]`` (API 1.52): addresses used or reserved, and the
    dynamic ones still free."""
    subnet = pool.network
    first, last = _bounds(pool)
    reserved = 2 if subnet.version == 4 else 1
    in_range = last - first + 1
    limit = (1 << 64) - 1
    used = min(leased + reserved + 1 + len(pool.aux), limit)
    return {"IPsInUse": used, "DynamicIPsAvailable": min(max(in_range - leased - 1, 0),
                                                        limit)}


def leases(data_dir: Path, network_id: str) -> Mapping[str, str]:
    """``host-local``'s leases of a network: address -> container ID."""
    found = {}
    try:
        entries = list((data_dir / network_id).iterdir())
    except FileNotFoundError:
        return {}
    for entry in entries:
        if entry.name in ("lock",) or entry.name.startswith("last_reserved_ip"):
            continue
        try:
            found[entry.name] = entry.read_text().split()[0]
        except (OSError, IndexError):
            continue
    return found


def release_leases_but(network_dir: Path, kept: Collection[str]) -> None:
    """Delete ``host-local``'s leases in ``network_dir`` (one network's) but those of
    the ``kept`` container IDs (blocking, at start: what dead containers held)."""
    for address, container_id in leases(network_dir.parent, network_dir.name).items():
        if container_id not in kept:
            (network_dir / address).unlink(missing_ok=True)

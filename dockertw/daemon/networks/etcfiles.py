"""A container's ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf``, as
Docker 20.10 writes them (pure functions: text in, text out).

``resolv.conf`` on the default bridge is the host's with its loopback nameservers left
out (they mean nothing in the container's namespace; Google's servers when none is
left, as Docker); on a user-defined network it names the embedded DNS server
``127.0.0.11`` with ``options ndots:0``.  ``--dns``, ``--dns-search`` and
``--dns-option`` (the container's, else the daemon's) replace the host's values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import attrs

__all__ = ["HostEntry", "hosts_file", "hostname_file", "ResolvConf", "parse_resolv_conf",
           "resolv_conf", "DEFAULT_NAMESERVERS", "is_loopback"]

_DEFAULT_HOSTS = (("127.0.0.1", "localhost"),
                  ("::1", "localhost ip6-localhost ip6-loopback"),
                  ("fe00::0", "ip6-localnet"), ("ff00::0", "ip6-mcastprefix"),
                  ("ff02::1", "ip6-allnodes"), ("ff02::2", "ip6-allrouters"))
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
_EMBEDDED = "127.0.0.11"


@attrs.frozen
class HostEntry:
    address: str
    names: str  # space-separated


def own_names(hostname: str, domainname: str) -> str:
    """``host.domain host`` (or the bare hostname), as Docker's main record."""
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    short = fqdn.split(".", 1)[0]
    return f"{fqdn} {short}" if short != fqdn else fqdn


def hosts_file(hostname: str, domainname: str, addresses: Sequence[str],
               extra: Sequence[HostEntry] = ()) -> str:
    """The defaults, ``--add-host`` and link entries, then the container's own names
    for each of its addresses."""
    lines = [f"{address}\t{names}" for address, names in _DEFAULT_HOSTS]
    lines += [f"{entry.address}\t{entry.names}" for entry in extra]
    names = own_names(hostname, domainname)
    lines += [f"{address}\t{names}" for address in addresses]
    return "".join(line + "\n" for line in lines)


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@attrs.frozen
class ResolvConf:
    """The parts of a ``resolv.conf`` Docker works with."""

    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()  # the text as it was, line by line


def parse_resolv_conf(text: str) -> ResolvConf:
    nameservers, search, options = [], [], []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith(("#", ";")):
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return ResolvConf(tuple(nameservers), tuple(search), tuple(options),
                      tuple(text.splitlines()))


def _filtered_host(host: ResolvConf) -> str:
    """The host's file without loopback nameservers (Google's if none is left)."""
    kept = [line for line in host.lines
            if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                    and is_loopback(line.split()[1]))]
    if not any(line.split()[:1] == ["nameserver"] for line in kept):
        kept += [f"nameserver {server}" for server in DEFAULT_NAMESERVERS]
    return "".join(line + "\n" for line in kept)


def _generated(nameservers: Sequence[str], search: Sequence[str],
               options: Sequence[str]) -> str:
    lines = []
    if search:
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {server}" for server in nameservers]
    if options:
        lines.append("options " + " ".join(options))
    return "".join(line + "\n" for line in lines)


def resolv_conf(host: ResolvConf, *, dns: Sequence[str] = (), search: Sequence[str] = (),
                options: Sequence[str] = (), embedded: bool = False) -> str:
    """The container's ``resolv.conf`` (``embedded``: on a user-defined network)."""
    chosen_search = tuple(search) or host.search
    chosen_options = tuple(options) or host.options
    if search == (".",) or list(search) == ["."]:
        chosen_search = ()
    if embedded:
        if not any(option.startswith("ndots:") for option in chosen_options):
            chosen_options = (*chosen_options, "ndots:0")
        return _generated((_EMBEDDED,), chosen_search, chosen_options)
    if not dns and not search and not options:
        return _filtered_host(host)
    servers = tuple(dns) or tuple(s for s in host.nameservers if not is_loopback(s)) \
        or DEFAULT_NAMESERVERS
    return _generated(servers, chosen_search, chosen_options)

"""Registry settings: mirrors, insecure registries, certificates; and the endpoints
a repository is reached at, in the order Docker tries them.

``docker.io`` names go to each ``--registry-mirror`` first, then to Docker Hub's
registry.  Other registries are reached over HTTPS, verified with the system CAs plus
``CERTS_DIR/HOST:PORT/*.crt`` and a client certificate ``*.cert``/``*.key`` from the
same directory; an insecure registry (``--insecure-registry`` name or CIDR, and
127.0.0.0/8 and ::1 always) is tried over HTTPS without verification, then over plain
HTTP.  Host names are never resolved to match CIDRs (no DNS lookups): only literal
addresses and ``localhost`` are.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from dockertw.client.tls import TLSSettings
from dockertw.daemon.images.reference import DEFAULT_DOMAIN
from dockertw.errdefs import InvalidParameter

__all__ = ["Endpoint", "RegistryConfig", "HUB_REGISTRY", "INDEX_SERVER",
           "registry_host_of"]

HUB_REGISTRY = "https://registry-1.docker.io"
INDEX_SERVER = "https://index.docker.io/v1/"
_DEFAULT_INSECURE = ("::1/128", "127.0.0.0/8")
_HUB_NAMES = frozenset({DEFAULT_DOMAIN, "index.docker.io", "registry-1.docker.io"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen
class Endpoint:
    """One base URL to try for a registry, with how to speak TLS to it."""

    url: str  # scheme://host[:port], no trailing slash
    tls: TLSSettings | None = None
    mirror: bool = False
    official: bool = False

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc


def _normal_mirror(url: str) -> str:
    """Docker's ``ValidateMirror``: an http(s) URL with no path, query or credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParameter(f"invalid mirror: unsupported scheme {parts.scheme!r} in "
                               f"{url!r}")
    if parts.username or parts.password or parts.query or parts.fragment \
            or parts.path.strip("/"):
        raise InvalidParameter(f"invalid mirror: path, query, fragment or credentials "
                               f"are not allowed in {url!r}")
    return f"{parts.scheme}://{parts.netloc}/"


def _insecure_entry(entry: str) -> tuple[Network | None, str]:
    """A CIDR, or a registry name (``host[:port]``); URL schemes are refused."""
    if "://" in entry:
        raise InvalidParameter(f"insecure registry {entry} should not contain '://'")
    try:
        return ipaddress.ip_network(entry, strict=False), ""
    except ValueError:
        return None, entry.rstrip("/")


def _host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return ipaddress.ip_address("127.0.0.1")
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def registry_host_of(server_address: str) -> str:
    """``host[:port]`` of a login server address (``https://host/v1/`` or ``host``)."""
    text = server_address.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.split("/", 1)[0]
    return DEFAULT_DOMAIN if text in _HUB_NAMES or not text else text


@attrs.frozen
class RegistryConfig:
    """The daemon's registry options (``--registry-mirror`` and the others)."""

    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    certs_dir: Path = Path("/etc/docker/certs.d")
    hub_url: str = HUB_REGISTRY

    @classmethod
    def build(cls, mirrors: Sequence[str] = (), insecure: Sequence[str] = (),
              certs_dir: Path = Path("/etc/docker/certs.d"), hub_url: str = "") -> RegistryConfig:
        """Check and normalise the options as Docker does (a bad one is refused)."""
        for entry in insecure:
            _insecure_entry(entry)
        hub = _normal_mirror(hub_url).rstrip("/") if hub_url else HUB_REGISTRY
        return cls(tuple(_normal_mirror(m) for m in mirrors), tuple(insecure), certs_dir, hub)

    # -- which registries are insecure --------------------------------------------

    def _networks(self) -> list[Network]:
        found = [ipaddress.ip_network(cidr) for cidr in _DEFAULT_INSECURE]
        found += [net for net, _ in map(_insecure_entry, self.insecure) if net is not None]
        return found

    def is_secure(self, host: str) -> bool:
        """False for a registry named by ``--insecure-registry`` or in an insecure CIDR."""
        if host in _HUB_NAMES:
            return True
        names = {name for _, name in map(_insecure_entry, self.insecure) if name}
        if host in names:
            return False
        address = _host_address(host)
        return address is None or not any(address in net for net in self._networks())

    # -- endpoints ------------------------------------------------------------------

    def tls_for(self, host: str, verify: bool = True) -> TLSSettings:
        """TLS settings from ``CERTS_DIR/HOST``: its CAs (with the system ones) and a
        client certificate."""
        directory = self.certs_dir / host
        cas = sorted(directory.glob("*.crt")) if directory.is_dir() else []
        certs = sorted(directory.glob("*.cert")) if directory.is_dir() else []
        cert = certs[0] if certs else None
        key = cert.with_suffix(".key") if cert is not None else None
        if cert is not None and key is not None and not key.is_file():
            raise InvalidParameter(f"missing key {key.name} for client certificate "
                                   f"{cert.name}. CA certificates must use the extension "
                                   ".crt")
        return TLSSettings(ca=cas[0] if cas else None, cert=cert, key=key, verify=verify,
                           extra_cas=tuple(cas[1:]), system_roots=True)

    def endpoints(self, domain: str) -> list[Endpoint]:
        """Where to reach the registry ``domain``, in the order to try them."""
        if domain in _HUB_NAMES:
            return self._hub_endpoints()
        if self.is_secure(domain):
            return [Endpoint(f"https://{domain}", self.tls_for(domain))]
        return [Endpoint(f"https://{domain}", self.tls_for(domain, verify=False)),
                Endpoint(f"http://{domain}")]

    def _hub_endpoints(self) -> list[Endpoint]:
        found = []
        for mirror in self.mirrors:
            url = mirror.rstrip("/")
            host = urlsplit(url).netloc
            tls = self.tls_for(host, self.is_secure(host)) if url.startswith("https") else None
            found.append(Endpoint(url, tls, mirror=True, official=True))
        hub_host = urlsplit(self.hub_url).netloc
        tls = self.tls_for(hub_host) if self.hub_url.startswith("https") else None
        found.append(Endpoint(self.hub_url, tls, official=True))
        return found

    def login_endpoints(self, host: str) -> list[Endpoint]:
        """Where ``docker login`` checks credentials: never a mirror."""
        return [e for e in self.endpoints(host) if not e.mirror]

    # -- /info -------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """``RegistryConfig`` of ``GET /info``."""
        cidrs = sorted({str(net) for net in self._networks()})
        indexes: dict[str, dict[str, Any]] = {
            DEFAULT_DOMAIN: {"Name": DEFAULT_DOMAIN, "Mirrors": list(self.mirrors),
                             "Secure": True, "Official": True}}
        for entry in self.insecure:
            network, name = _insecure_entry(entry)
            if network is None:
                indexes[name] = {"Name": name, "Mirrors": [], "Secure": False,
                                 "Official": False}
        return {"AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": cidrs, "IndexConfigs": indexes,
                "Mirrors": list(self.mirrors)}

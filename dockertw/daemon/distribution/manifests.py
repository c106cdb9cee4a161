"""Image manifests: media types, decoding, platform selection, and the manifest a push
writes.  Pure functions on bytes and dicts (no I/O).

A pull accepts Docker schema 2 manifests and manifest lists, OCI image manifests and
indexes; schema 1 is refused with Docker's message.  A list or index is resolved to
one manifest for a platform: the daemon's own by default, or ``os/arch[/variant]``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dockertw.errdefs import InvalidParameter, NotFound

__all__ = [
    "ACCEPTED",
    "Descriptor",
    "ImageManifest",
    "ManifestList",
    "Platform",
    "decode_manifest",
    "digest_of",
    "image_manifest",
    "parse_platform",
    "schema1_refusal",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
_LISTS = (DOCKER_LIST, OCI_INDEX)
_MANIFESTS = (DOCKER_MANIFEST, OCI_MANIFEST)
#: The ``Accept`` values of a manifest request, in Docker's order.
ACCEPTED = (DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST)
_LAYER_TYPES = frozenset({
    DOCKER_LAYER, "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", DOCKER_FOREIGN,
    "application/vnd.oci.image.layer.nondistributable.v1.tar"})
_ZSTD_TYPES = frozenset({"application/vnd.oci.image.layer.v1.tar+zstd"})


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@attrs.frozen
class Platform:
    """``os/architecture[/variant]`` as image configs and manifest lists name them."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    def matches(self, other: Platform) -> bool:
        """containerd's matcher: same OS and architecture; a variant must agree when
        both name one (``arm64`` is ``arm64/v8``)."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        mine, theirs = _normal_variant(self), _normal_variant(other)
        return not mine or not theirs or mine == theirs

    def view(self) -> dict[str, str]:
        """The ``Platform`` object of the API (``variant`` only when set)."""
        shown = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            shown["variant"] = self.variant
        return shown


def _normal_variant(platform: Platform) -> str:
    if platform.architecture == "arm64" and platform.variant == "v8":
        return ""
    return platform.variant


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386"}
_ARCHITECTURES = frozenset({"amd64", "arm64", "arm", "386", "ppc64le", "ppc64", "s390x",
                            "riscv64", "mips64le", "mips64", "mipsle", "mips", "loong64",
                            "wasm"})
_SYSTEMS = frozenset({"linux", "windows", "darwin", "freebsd", "netbsd", "openbsd",
                      "solaris", "illumos", "android", "ios", "aix", "plan9", "js", "wasip1"})


def _unknown_platform(text: str) -> InvalidParameter:
    return InvalidParameter(f'"{text}": unknown operating system or architecture: '
                            "invalid argument")


def parse_platform(text: str, default: Platform) -> Platform:
    """``linux``, ``linux/arm64``, ``linux/arm/v7`` or a bare architecture; empty
    means ``default``.  containerd's normalisation and error message."""
    if not text:
        return default
    parts = text.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise _unknown_platform(text)
    if len(parts) == 1:
        if parts[0] == default.os:
            return default
        architecture = _ARCH_ALIASES.get(parts[0], parts[0])
        if architecture not in _ARCHITECTURES:
            raise _unknown_platform(text) if parts[0] not in _SYSTEMS else \
                InvalidParameter(f'"{text}": operating system is not supported')
        return Platform(default.os, architecture)
    if parts[0] not in _SYSTEMS:
        raise _unknown_platform(text)
    if parts[0] != "linux":
        raise InvalidParameter(f'"{text}": operating system is not supported')
    variant = parts[2] if len(parts) == 3 else ""
    return Platform(parts[0], _ARCH_ALIASES.get(parts[1], parts[1]), variant)


@attrs.frozen
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def view(self) -> dict[str, Any]:
        """``ocispec.Descriptor`` as ``GET /distribution`` shows it."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@attrs.frozen
class ImageManifest:
    """A schema 2 or OCI image manifest: a config and layers, bottom first."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@attrs.frozen
class ManifestList:
    """A manifest list or OCI index: one manifest per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]

    def select(self, wanted: Platform, name: str) -> Descriptor:
        """The first entry for ``wanted`` (Docker's message when there is none)."""
        for entry in self.manifests:
            if entry.platform is not None and entry.platform.matches(wanted) \
                    and entry.media_type in _MANIFESTS:
                return entry
        raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")

    def platforms(self) -> list[Platform]:
        return [m.platform for m in self.manifests if m.platform is not None]


def schema1_refusal(name: str) -> InvalidParameter:
    return InvalidParameter(
        "support for Docker Image Format v1 and Docker Image manifest version 2, schema 1 "
        f"has been removed. Suggest the author of {name} to upgrade the image to the OCI "
        "Format or Docker Image manifest v2, schema 2. More information at "
        "https://docs.docker.com/go/deprecated-image-specs/")


def _string(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key, "")
    if not isinstance(value, str):
        raise InvalidParameter(f"invalid manifest: {key} is not a string")
    return value


def _platform(value: Any) -> Platform | None:
    if not isinstance(value, dict):
        return None
    return Platform(str(value.get("os", "")), str(value.get("architecture", "")),
                    str(value.get("variant", "") or ""))


def _descriptor(value: Any) -> Descriptor:
    if not isinstance(value, dict) or not isinstance(value.get("size", 0), int):
        raise InvalidParameter("invalid manifest: bad descriptor")
    urls = value.get("urls") or ()
    return Descriptor(_string(value, "mediaType"), _string(value, "digest"),
                      int(value.get("size", 0)), _platform(value.get("platform")),
                      tuple(str(url) for url in urls) if isinstance(urls, list) else ())


def _media_type(document: Mapping[str, Any], header_type: str) -> str:
    """The manifest's own ``mediaType``, else the response's (OCI may omit it)."""
    found = document.get("mediaType") or header_type.split(";")[0].strip()
    if not found and "manifests" in document:
        return OCI_INDEX
    return str(found or (OCI_MANIFEST if "config" in document else ""))


def decode_manifest(data: bytes, header_type: str, name: str
                    ) -> ImageManifest | ManifestList:
    """Decode a manifest response; schema 1 and unknown types are refused."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidParameter(f"invalid manifest: {error}") from None
    if not isinstance(document, dict):
        raise InvalidParameter("invalid manifest: not an object")
    kind = _media_type(document, header_type)
    if kind in SCHEMA1 or document.get("schemaVersion") == 1:
        raise schema1_refusal(name)
    if kind in _LISTS:
        entries = document.get("manifests") or []
        return ManifestList(kind, tuple(_descriptor(entry) for entry in entries))
    if kind in _MANIFESTS:
        layers = document.get("layers") or []
        if not isinstance(layers, list):
            raise InvalidParameter("invalid manifest: layers is not a list")
        return ImageManifest(kind, _descriptor(document.get("config")),
                             tuple(_descriptor(layer) for layer in layers))
    raise InvalidParameter(f"unsupported manifest media type and no default available: {kind}")


def check_layer_type(layer: Descriptor) -> None:
    """Refuse layers the store cannot unpack (zstd, unknown types)."""
    if layer.media_type in _ZSTD_TYPES:
        raise InvalidParameter(f"unsupported layer media type {layer.media_type}: "
                               "zstd-compressed layers are not supported")
    if layer.media_type not in _LAYER_TYPES:
        raise InvalidParameter(f"unsupported layer media type {layer.media_type}")


def image_manifest(config: bytes, layers: Sequence[tuple[str, int]]) -> bytes:
    """The schema 2 manifest a push writes: the config and gzip layers, 3-space
    indented as Docker writes it (its digest is what clients get to see)."""
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config),
                   "digest": digest_of(config)},
        "layers": [{"mediaType": DOCKER_LAYER, "size": size, "digest": digest}
                   for digest, size in layers],
    }
    return json.dumps(document, indent=3).encode()

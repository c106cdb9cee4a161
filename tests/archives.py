"""Image archives built by hand for tests: layer tars, ``docker save`` archives, OCI
layouts."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from typing import Any

MTIME = 1_600_000_000

Entry = tuple[tarfile.TarInfo, bytes | None]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def info(name: str, kind: bytes = tarfile.REGTYPE, **fields: Any) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mtime = MTIME
    member.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in fields.items():
        setattr(member, key, value)
    return member


def file(name: str, data: bytes = b"", **fields: Any) -> Entry:
    member = info(name, **fields)
    member.size = len(data)
    return member, data


def directory(name: str, **fields: Any) -> Entry:
    return info(name, tarfile.DIRTYPE, **fields), None


def tar(entries: Sequence[Entry], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for member, data in entries:
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def config(diff_ids: Sequence[str], **extra: Any) -> bytes:
    document = {"architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}, **extra}
    return json.dumps(document, separators=(",", ":")).encode()


def docker_archive(images: Sequence[tuple[bytes, Sequence[bytes], Sequence[str]]],
                   extra: Sequence[Entry] = ()) -> bytes:
    """A ``docker save`` archive: per image (config, layer tars, tags)."""
    entries: list[Entry] = list(extra)
    manifest = []
    for raw_config, layers, tags in images:
        config_name = hashlib.sha256(raw_config).hexdigest() + ".json"
        entries.append(file(config_name, raw_config))
        names = []
        for layer in layers:
            name = hashlib.sha256(layer).hexdigest()[:32] + "/layer.tar"
            entries.append(file(name, layer))
            names.append(name)
        manifest.append({"Config": config_name, "RepoTags": list(tags) or None,
                         "Layers": names})
    entries.append(file("manifest.json", json.dumps(manifest).encode()))
    return tar(entries)


def _blob(entries: list[Entry], data: bytes, media_type: str) -> dict[str, Any]:
    digest = sha256(data)
    entries.append(file("blobs/sha256/" + digest[7:], data))
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def oci_layout(raw_config: bytes, layers: Sequence[bytes],
               annotations: dict[str, str]) -> bytes:
    """An OCI image layout with one image, its layers gzip-compressed."""
    entries: list[Entry] = [file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    layer_descriptors = [
        _blob(entries, gzip.compress(layer, mtime=0),
              "application/vnd.oci.image.layer.v1.tar+gzip") for layer in layers]
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": _blob(entries, raw_config,
                                "application/vnd.oci.image.config.v1+json"),
                "layers": layer_descriptors}
    descriptor = _blob(entries, json.dumps(manifest).encode(),
                       "application/vnd.oci.image.manifest.v1+json")
    descriptor["annotations"] = annotations
    index = {"schemaVersion": 2, "manifests": [descriptor]}
    entries.append(file("index.json", json.dumps(index).encode()))
    return tar(entries)


def members(archive: bytes) -> dict[str, bytes | None]:
    """Every member of a tar: its bytes (regular files) or ``None``."""
    found: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        for member in opened:
            extracted = opened.extractfile(member) if member.isreg() else None
            found[member.name] = extracted.read() if extracted is not None else None
    return found

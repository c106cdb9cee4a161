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


def _sparse_entries(block: bytearray, at: int, segments: Sequence[tuple[int, int]]) -> None:
    for index, (offset, size) in enumerate(segments):
        block[at + 24 * index:at + 24 * (index + 1)] = (
            tarfile.itn(offset, 12, tarfile.GNU_FORMAT) + tarfile.itn(size, 12, tarfile.GNU_FORMAT))


def sparse_content(size: int, segments: Sequence[tuple[int, int]]) -> bytes:
    """``size`` zero bytes but for the ``segments`` (offset, size), filled in."""
    content = bytearray(size)
    for offset, length in segments:
        content[offset:offset + length] = bytes([offset % 251 + 1]) * length
    return bytes(content)


def gnu_sparse(name: str, content: bytes, segments: Sequence[tuple[int, int]]) -> bytes:
    """A member holding the ``segments`` (offset, size) of ``content``, in GNU's old
    sparse format: four segments in the header, 21 in each block after it."""
    stored = b"".join(content[offset:offset + size] for offset, size in segments)
    header = bytearray(info(name, tarfile.GNUTYPE_SPARSE, size=len(stored)).tobuf(
        tarfile.GNU_FORMAT))
    _sparse_entries(header, 386, segments[:4])
    header[482] = len(segments) > 4
    header[483:495] = tarfile.itn(len(content), 12, tarfile.GNU_FORMAT)
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\0" % sum(header)
    for first in range(4, len(segments), 21):
        block = bytearray(512)
        _sparse_entries(block, 0, segments[first:first + 21])
        block[504] = first + 21 < len(segments)
        header += block
    return bytes(header) + stored + bytes(-len(stored) % 512)


def pax_sparse(version: str, name: str, content: bytes,
               segments: Sequence[tuple[int, int]]) -> bytes:
    """The same in a PAX sparse format: ``"0.1"`` (the map in a record) or ``"1.0"``
    (the map in lines before the data)."""
    stored = b"".join(content[offset:offset + size] for offset, size in segments)
    numbers = [str(number) for segment in segments for number in segment]
    member = info("GNUSparseFile.0/" + name)
    member.pax_headers = {"GNU.sparse.name": name}
    if version == "0.1":
        member.pax_headers.update({"GNU.sparse.size": str(len(content)),
                                   "GNU.sparse.map": ",".join(numbers)})
    else:
        member.pax_headers.update({"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                                   "GNU.sparse.realsize": str(len(content))})
        sparse_map = "\n".join([str(len(segments)), *numbers]).encode() + b"\n"
        stored = sparse_map + bytes(-len(sparse_map) % 512) + stored
    member.size = len(stored)
    return member.tobuf(tarfile.PAX_FORMAT) + stored + bytes(-len(stored) % 512)


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

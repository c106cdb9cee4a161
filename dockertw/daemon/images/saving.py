"""``docker save``: the Docker 20.10 archive of some images, produced piece by piece.

The archive holds, in name order (as Docker's ``archive.Tar`` walks its directory)::

    <v1id>/VERSION, <v1id>/json, <v1id>/layer.tar   one directory per layer
    <config hex>.json                              each image config, byte for byte
    manifest.json                                  [{"Config", "RepoTags", "Layers"}]
    repositories                                   {"busybox": {"latest": <top v1id>}}

``layer.tar`` is the layer's original tar, rebuilt from its tar-split record, so the
loader computes the same diff IDs and therefore the same image IDs.  A layer whose
diff ID was already written under another v1 ID becomes a symbolic link to it, as
Docker writes it.  Nothing is built on disk or in memory beyond one chunk at a time.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from dockertw.daemon.images.layers import chain_ids
from dockertw.daemon.images.reference import Reference, image_id_hex

__all__ = ["SavedImage", "archive_chunks"]

_EPOCH_TEXT = "1970-01-01T00:00:00Z"
_END_OF_ARCHIVE = b"\0" * (2 * tarfile.BLOCKSIZE)

#: ``chain ID -> (size, chunks)`` of a layer's original tar.
LayerSource = Callable[[str], tuple[int, Iterator[bytes]]]


@attrs.frozen
class SavedImage:
    """One image to save: its config, the tags to record and its parent in the set."""

    id: str
    raw_config: bytes
    config: Mapping[str, Any]
    tags: tuple[Reference, ...] = ()
    parent: str = ""
    created_unix: int = 0

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.get("rootfs") or {}
        return list(rootfs.get("diff_ids") or [])


@attrs.frozen
class _Layer:
    v1_id: str
    chain: str
    diff_id: str
    json: bytes


@attrs.frozen
class _Member:
    """One archive entry: a directory, a file with its bytes or source, or a link."""

    name: str
    mtime: int = 0
    data: bytes | None = None
    layer: str = ""  # chain ID whose tar is the contents
    link: str = ""
    directory: bool = False


def _go_json(value: Any) -> bytes:
    """Compact JSON as Go's encoder writes it (``json.Encoder`` adds the newline)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _v1_json(image: SavedImage, index: int, v1_id: str, parent: str) -> dict[str, Any]:
    """The legacy ``json`` of a layer: the image's v1 fields on the top layer."""
    if index == len(image.diff_ids) - 1:
        document = {k: v for k, v in image.config.items() if k not in ("rootfs", "history")}
    else:
        document = {"created": _EPOCH_TEXT, "container_config": {}}
    document["id"] = v1_id
    if parent:
        document["parent"] = image_id_hex(parent)
    document["os"] = image.config.get("os") or "linux"
    return document


def _v1_id(image: SavedImage, index: int, chain: str, parent: str) -> str:
    """v1 ``CreateID``: the sha256 of the v1 fields plus ``layer_id`` and ``parent``."""
    fields = _v1_json(image, index, "", "")
    del fields["id"]
    fields["layer_id"] = chain
    if parent:
        fields["parent"] = parent
    return hashlib.sha256(json.dumps(fields, sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()


def _layers_of(image: SavedImage) -> list[_Layer]:
    found: list[_Layer] = []
    parent = ""
    for index, chain in enumerate(chain_ids(image.diff_ids)):
        v1_id = _v1_id(image, index, chain, parent)
        document = _v1_json(image, index, v1_id, parent)
        found.append(_Layer(v1_id, chain, image.diff_ids[index], _go_json(document)))
        parent = "sha256:" + v1_id
    return found


class _Plan:
    """Every member of the archive, from the images to save (no layer is read yet)."""

    def __init__(self, images: Sequence[SavedImage]) -> None:
        self.members: dict[str, _Member] = {}
        self._by_diff: dict[str, str] = {}
        manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        saved = {image.id for image in images}
        for image in images:
            layers = self._add_image(image)
            manifest.append(self._manifest_item(image, layers, saved))
            for reference in image.tags:
                repositories.setdefault(reference.repository, {})[reference.tag] = (
                    layers[-1].v1_id)
        self._add_file("manifest.json", _go_json(manifest or None) + b"\n", 0)
        if repositories:
            self._add_file("repositories", _go_json(repositories) + b"\n", 0)

    def _add_file(self, name: str, data: bytes, mtime: int) -> None:
        self.members[name] = _Member(name, mtime, data=data)

    def _add_image(self, image: SavedImage) -> list[_Layer]:
        layers = _layers_of(image)
        created = image.created_unix
        for layer in layers:
            if layer.v1_id + "/" not in self.members:
                self._add_layer(layer, created)
        self._add_file(image_id_hex(image.id) + ".json", image.raw_config, created)
        return layers

    def _add_layer(self, layer: _Layer, mtime: int) -> None:
        base = layer.v1_id + "/"
        self.members[base] = _Member(base, mtime, directory=True)
        self._add_file(base + "VERSION", b"1.0", mtime)
        self._add_file(base + "json", layer.json, mtime)
        tar_name = base + "layer.tar"
        earlier = self._by_diff.get(layer.diff_id)
        if earlier is not None:
            self.members[tar_name] = _Member(tar_name, mtime, link=f"../{earlier}")
            return
        self._by_diff[layer.diff_id] = tar_name
        self.members[tar_name] = _Member(tar_name, mtime, layer=layer.chain)

    @staticmethod
    def _manifest_item(image: SavedImage, layers: list[_Layer], saved: set[str]
                       ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "Config": image_id_hex(image.id) + ".json",
            "RepoTags": [reference.familiar() for reference in image.tags] or None,
            "Layers": [layer.v1_id + "/layer.tar" for layer in layers],
        }
        if image.parent in saved:
            item["Parent"] = image.parent
        return item


def _header(member: _Member, size: int) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.mtime = member.mtime
    info.size = size
    info.mode = 0o755 if member.directory else 0o644
    if member.directory:
        info.type = tarfile.DIRTYPE
    elif member.link:
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, member.link, 0o777
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _member_chunks(member: _Member, layers: LayerSource) -> Iterator[bytes]:
    if member.data is not None:
        yield _header(member, len(member.data)) + member.data
        size = len(member.data)
    elif member.layer:
        size, chunks = layers(member.layer)
        yield _header(member, size)
        yield from chunks
    else:
        size = 0
        yield _header(member, 0)
    if size % tarfile.BLOCKSIZE:
        yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)


def archive_chunks(images: Sequence[SavedImage], layers: LayerSource) -> Iterator[bytes]:
    """The archive of ``images``; ``layers`` gives each layer's original tar."""
    plan = _Plan(images)
    for name in sorted(plan.members):
        yield from _member_chunks(plan.members[name], layers)
    yield _END_OF_ARCHIVE

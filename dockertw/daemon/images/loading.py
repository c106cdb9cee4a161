"""``docker load``: images from a ``docker save`` archive or an OCI image layout.

The archive (plain or compressed) is unpacked into a private directory under the state
root, never into memory: regular files and directories only, members whose names are
absolute or climb out with ``..`` refused; symbolic and hard links are kept as aliases
that may only name other members.  Then the images are read from ``manifest.json``
(Docker) or ``index.json`` (OCI), their layers registered (each checked against the
config's diff ID) and their tags set, as moby's ``tarexport.Load`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import attrs

from dockertw.daemon.images.layers import chain_id, leaves_root, open_uncompressed, tar_members
from dockertw.daemon.images.reference import parse_normalized, validate_digest
from dockertw.daemon.images.store import ImageStore, decode_config
from dockertw.daemon.tarreader import ChunkSource, TarReader
from dockertw.errdefs import InvalidParameter

__all__ = ["Importer", "LoadItem", "LoadOutput", "Unpacked", "unpack_archive", "read_items"]

_MAX_JSON = 64 << 20
_MAX_LINKS = 40
_OCI_INDEX = ("application/vnd.oci.image.index.v1+json",
              "application/vnd.docker.distribution.manifest.list.v2+json")
_CONTAINERD_NAME = "io.containerd.image.name"
_OCI_REF_NAME = "org.opencontainers.image.ref.name"


@attrs.frozen
class LoadItem:
    """One image of an archive: its config, layer member names and tags."""

    config: bytes
    layers: tuple[str, ...]
    tags: tuple[str, ...] = ()
    parent: str = ""


# -- unpacking -----------------------------------------------------------------------


def _member_name(name: str) -> str:
    """A member name, cleaned; absolute names and ``..`` components are refused."""
    if name.startswith("/") or "\0" in name:
        raise InvalidParameter(f'invalid archive member "{name}": absolute path')
    if ".." in name.split("/"):
        raise InvalidParameter(f'invalid archive member "{name}": path escapes the archive')
    cleaned = posixpath.normpath(name)
    return "" if cleaned == "." else cleaned


class Unpacked:
    """The files of an unpacked archive under ``root``, with link aliases."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._links: dict[str, str] = {}

    def add_link(self, name: str, target: str) -> None:
        self._links[name] = target

    def _resolve(self, name: str) -> str:
        current = _member_name(name)
        for _ in range(_MAX_LINKS):
            target = self._links.get(current)
            if target is None:
                return current
            current = target
        raise InvalidParameter(f"open {name}: too many levels of symbolic links")

    def exists(self, name: str) -> bool:
        return (self.root / self._resolve(name)).is_file()

    def open(self, name: str) -> IO[bytes]:
        """The member ``name`` (links followed, never out of the archive)."""
        resolved = self._resolve(name)
        try:
            descriptor = os.open(self.root / resolved, os.O_RDONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC)
        except OSError as error:
            raise InvalidParameter(f"open {name}: {(error.strerror or str(error)).lower()}"
                                   ) from None
        return os.fdopen(descriptor, "rb")

    def read_json(self, name: str) -> tuple[bytes, Any]:
        with self.open(name) as source:
            raw = source.read(_MAX_JSON + 1)
        if len(raw) > _MAX_JSON:
            raise InvalidParameter(f"{name} is too large")
        try:
            return raw, json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InvalidParameter(f"invalid JSON in {name}: {error}") from None


def _link_target(member: tarfile.TarInfo, name: str) -> str:
    """Where a link points, inside the archive (absolute targets from its root)."""
    base = "" if member.islnk() else posixpath.dirname(name)
    target = posixpath.normpath(posixpath.join(base, member.linkname.lstrip("/")))
    if leaves_root(target):
        raise InvalidParameter(f'invalid archive member "{member.name}": link target '
                               f'"{member.linkname}" escapes the archive')
    return target


def _write_member(archive: TarReader, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(path, flags, 0o600)
    try:
        archive.write_contents(descriptor)
    finally:
        os.close(descriptor)


def _unpack_member(archive: TarReader, member: tarfile.TarInfo,
                   unpacked: Unpacked) -> None:
    name = _member_name(member.name)
    if not name:
        return
    if member.isdir():
        (unpacked.root / name).mkdir(parents=True, exist_ok=True)
    elif member.issym() or member.islnk():
        unpacked.add_link(name, _link_target(member, name))
    elif member.isreg():
        _write_member(archive, unpacked.root / name)


def unpack_archive(stream: ChunkSource | IO[bytes], target: Path) -> Unpacked:
    """Unpack the archive ``stream`` (a chunk source or a binary file) into the empty
    directory ``target``."""
    unpacked = Unpacked(target)
    archive = TarReader(open_uncompressed(stream), sparse=True)
    for member in tar_members(archive, "archive"):
        try:
            _unpack_member(archive, member, unpacked)
        except OSError as error:
            raise InvalidParameter(f'cannot unpack archive member "{member.name}": '
                                   f"{error.strerror}") from None
        except tarfile.TarError as error:  # its contents cut short
            raise InvalidParameter(f"invalid archive: {error}") from None
    if not archive.offset:  # as tarfile refused it: an empty stream is no archive
        raise InvalidParameter("invalid archive: empty file")
    return unpacked


# -- reading the images --------------------------------------------------------------


def _string_list(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"invalid manifest: {what} must be a list of strings")
    return tuple(value)


def _docker_item(entry: Any, unpacked: Unpacked) -> LoadItem:
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
        raise InvalidParameter("invalid manifest: each entry needs a Config")
    config, _ = unpacked.read_json(entry["Config"])
    parent = entry.get("Parent") or ""
    return LoadItem(config, _string_list(entry.get("Layers"), "Layers"),
                    _string_list(entry.get("RepoTags"), "RepoTags"),
                    parent if isinstance(parent, str) else "")


def _docker_items(unpacked: Unpacked) -> list[LoadItem]:
    _, manifest = unpacked.read_json("manifest.json")
    if not isinstance(manifest, list):
        raise InvalidParameter("invalid manifest: manifest.json must be a list")
    return [_docker_item(entry, unpacked) for entry in manifest]


def _blob_name(descriptor: Any) -> str:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise InvalidParameter("invalid OCI layout: a descriptor has no digest")
    algorithm, _, encoded = validate_digest(descriptor["digest"]).partition(":")
    return f"blobs/{algorithm}/{encoded}"


def _verified_blob(unpacked: Unpacked, descriptor: Any) -> tuple[bytes, Any]:
    """A JSON blob whose sha256 must be the descriptor's digest."""
    raw, document = unpacked.read_json(_blob_name(descriptor))
    found = "sha256:" + hashlib.sha256(raw).hexdigest()
    if descriptor["digest"] != found:
        raise InvalidParameter(f"invalid OCI layout: blob {descriptor['digest']} has "
                               f"digest {found}")
    return raw, document


def _oci_name(descriptor: dict[str, Any]) -> tuple[str, ...]:
    """The tag of a manifest: containerd's full name, or a ref.name that is one."""
    annotations = descriptor.get("annotations") or {}
    name = annotations.get(_CONTAINERD_NAME) or annotations.get(_OCI_REF_NAME) or ""
    if not isinstance(name, str) or "@" in name:
        return ()
    return (name,) if ":" in name.rsplit("/", 1)[-1] else ()


def _oci_manifests(unpacked: Unpacked, index: Any, depth: int = 0
                   ) -> Iterator[dict[str, Any]]:
    """The image manifests an index names (nested indexes followed, Linux only)."""
    if depth > 4 or not isinstance(index, dict):
        raise InvalidParameter("invalid OCI layout: bad index")
    for descriptor in index.get("manifests") or []:
        platform = descriptor.get("platform") or {}
        if platform.get("os", "linux") != "linux":
            continue
        if descriptor.get("mediaType") in _OCI_INDEX:
            _, nested = _verified_blob(unpacked, descriptor)
            yield from _oci_manifests(unpacked, nested, depth + 1)
        else:
            yield descriptor


def _oci_item(unpacked: Unpacked, descriptor: dict[str, Any]) -> LoadItem:
    _, manifest = _verified_blob(unpacked, descriptor)
    if not isinstance(manifest, dict):
        raise InvalidParameter("invalid OCI layout: a manifest is not an object")
    config, _ = _verified_blob(unpacked, manifest.get("config"))
    layers = tuple(_blob_name(layer) for layer in manifest.get("layers") or [])
    return LoadItem(config, layers, _oci_name(descriptor))


def read_items(unpacked: Unpacked) -> list[LoadItem]:
    """The images of an unpacked archive, Docker's layout first, then OCI's."""
    if unpacked.exists("manifest.json"):
        return _docker_items(unpacked)
    if unpacked.exists("index.json") and unpacked.exists("oci-layout"):
        _, index = unpacked.read_json("index.json")
        return [_oci_item(unpacked, d) for d in _oci_manifests(unpacked, index)]
    raise InvalidParameter("invalid archive: no manifest.json (docker save) or "
                           "index.json and oci-layout (OCI image layout) found; legacy "
                           "archives without a manifest are not supported")


# -- progress ------------------------------------------------------------------------

ProgressSink = Callable[[int, int], None]


class ProgressReader:
    """Reports ``(current, total)`` every 512 KiB read and at the end, as moby does."""

    _EVERY = 512 * 1024

    def __init__(self, source: IO[bytes], total: int, report: ProgressSink) -> None:
        self._source = source
        self._total = total
        self._report = report
        self._current = 0
        self._reported = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._current += len(data)
        if (self._current - self._reported > self._EVERY
                or (data and self._current == self._total)):
            self._reported = self._current
            self._report(self._current, self._total)
        return data


# -- importing -----------------------------------------------------------------------


class LoadOutput(Protocol):
    """Where a load reports: text lines (``stream``) and per-layer progress."""

    def text(self, line: str) -> None: ...
    def progress(self, layer: str, current: int, total: int) -> None: ...


class Importer:
    """Registers the images of an unpacked archive in ``store``, as moby's ``Load``."""

    def __init__(self, store: ImageStore, output: LoadOutput, *, progress: bool,
                 loaded: Callable[[str], None]) -> None:
        self._store = store
        self._output = output
        self._progress = progress
        self._loaded = loaded

    def run(self, unpacked: Unpacked, items: list[LoadItem]) -> None:
        ids_text, tagged, links = "", 0, []
        for item in items:
            image_id = self._load_image(unpacked, item)
            ids_text += f"Loaded image ID: {image_id}\n"
            tagged = self._tag(image_id, item.tags)
            links.append((image_id, item.parent))
            self._loaded(image_id)
        loaded = {image_id for image_id, _ in links}
        for image_id, parent in links:
            if parent in loaded and parent != image_id:  # moby's validatedParentLinks
                self._store.create_image(self._store.get(image_id).raw_config, parent)
        if not tagged:
            for line in ids_text.splitlines(keepends=True):
                self._output.text(line)

    def _load_image(self, unpacked: Unpacked, item: LoadItem) -> str:
        config = decode_config(item.config)
        operating_system = config.get("os") or "linux"
        if operating_system != "linux":
            raise InvalidParameter(f"cannot load {operating_system} image on linux")
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(item.layers) != len(diff_ids):
            raise InvalidParameter(f"invalid manifest, layers length mismatch: expected "
                                   f"{len(item.layers)}, got {len(diff_ids)}")
        parent = None
        for index, (name, expected) in enumerate(zip(item.layers, diff_ids, strict=True)):
            parent = self._load_layer(unpacked, name, index, expected, parent)
        return self._store.create_image(item.config)

    def _load_layer(self, unpacked: Unpacked, name: str, index: int, expected: str,
                    parent: str | None) -> str:
        chain = chain_id(parent, expected)
        if self._store.has_tar_split(chain):  # a layer without one is read to record it
            return chain
        with unpacked.open(name) as source:
            stream: Any = source
            if self._progress:
                total = os.fstat(source.fileno()).st_size
                short = expected.removeprefix("sha256:")[:12]
                stream = ProgressReader(
                    source, total, lambda c, t: self._output.progress(short, c, t))
            layer = self._store.add_layer(stream, parent)
        if layer.diff_id != expected:
            raise InvalidParameter(f'invalid diffID for layer {index}: expected '
                                   f'"{expected}", got "{layer.diff_id}"')
        return layer.chain_id

    def _tag(self, image_id: str, tags: tuple[str, ...]) -> int:
        for text in tags:
            reference = parse_normalized(text)
            if not reference.tag or reference.digest:
                raise InvalidParameter(f'invalid tag "{text}"')
            previous = self._store.lookup(reference)
            if previous is not None and previous != image_id:
                self._output.text(f"The image {reference.familiar()} already exists, "
                                  f"renaming the old one with ID {previous} to empty string\n")
            self._store.add_reference(reference, image_id, emit=False)
            self._output.text(f"Loaded image: {reference.familiar()}\n")
        return len(tags)

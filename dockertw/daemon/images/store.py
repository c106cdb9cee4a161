"""The image store: content-addressed layers, image configs and repository tags.

Everything lives under ``ROOT/image/``::

    layers/sha256/<chain>/diff/        the unpacked layer (overlayfs lower directory)
    layers/sha256/<chain>/diff-id      sha256 of the uncompressed layer tar
    layers/sha256/<chain>/size         Docker's size figure for the layer
    layers/sha256/<chain>/parent       the chain ID below (absent for a base layer)
    layers/sha256/<chain>/tar-split.gz the layer tar's own bytes minus file contents
                                       (absent for layers stored before it was kept)
    layers/tmp/                        staging; emptied at open
    imagedb/sha256/<id>                image config JSON; <id> is its sha256
    imagedb/metadata/sha256/<id>/      parent, lastUpdated
    repositories.json                  {"Repositories": {"busybox": {"busybox:latest": id}}}

A layer is unpacked into ``layers/tmp``, synced, then renamed into place, so a crash
never leaves half a layer under its chain ID; small files go through
:func:`~dockertw.daemon.storage.atomic_write`.  Deleting an image follows Docker's
``ImageDelete``: untag, or delete with its now unused layers and untagged parents.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import attrs

from dockertw.daemon.images.layers import chain_id, chain_ids, extract_layer
from dockertw.daemon.images.reference import (
    Reference,
    image_id_hex,
    parse_any,
    parse_normalized,
    short_id,
    validate_digest,
)
from dockertw.daemon.images.tarsplit import replay, stream_size
from dockertw.daemon.storage import (
    atomic_write,
    ensure_directory,
    fsync_directory,
    remove_temporaries,
)
from dockertw.daemon.tarreader import ChunkSource
from dockertw.errdefs import Conflict, InvalidParameter, NotFound, System
from dockertw.loglevel import Logger

__all__ = ["ImageStore", "Image", "Layer", "StagedLayer", "ImageUser", "ImageEventSink",
           "decode_config"]

_HEX64 = re.compile(r"[a-f0-9]{64}")
_log = Logger()
_TAR_SPLIT = "tar-split.gz"
_EPOCH = datetime.fromtimestamp(0, UTC)


@attrs.frozen
class Layer:
    """One unpacked layer, named by its chain ID."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    path: Path  # the ``diff`` directory


@attrs.frozen
class StagedLayer:
    """A layer unpacked into staging, not yet in the store (see ``stage_layer``)."""

    path: Path
    diff_id: str
    size: int

    def discard(self) -> None:
        """Remove what is left of the staging directory (nothing once committed)."""
        shutil.rmtree(self.path, ignore_errors=True)


@attrs.frozen
class ImageUser:
    """A container that uses an image, as the container store reports it."""

    container_id: str
    running: bool


@attrs.frozen
class Image:
    """A snapshot of one image: its config and the names it has right now."""

    id: str
    config: Mapping[str, Any]
    raw_config: bytes
    parent: str
    chain: tuple[str, ...]
    size: int
    repo_tags: tuple[str, ...] = ()
    repo_digests: tuple[str, ...] = ()
    last_tag_time: str = ""

    @property
    def created(self) -> str:
        return str(self.config.get("created") or "")

    @property
    def created_time(self) -> datetime:
        """``created`` as a datetime (the epoch when absent or unreadable)."""
        try:
            moment = datetime.fromisoformat(self.created)
        except ValueError:
            return _EPOCH
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    @property
    def created_unix(self) -> int:
        """``Created`` as unix seconds, as image lists show it."""
        return int(self.created_time.timestamp())

    @property
    def labels(self) -> dict[str, str]:
        return _labels(self.config)

    @property
    def top_layer(self) -> str | None:
        return self.chain[-1] if self.chain else None


def _labels(config: Mapping[str, Any]) -> dict[str, str]:
    """``config.Labels`` of an image config, tolerating malformed documents."""
    container_config = config.get("config")
    labels = container_config.get("Labels") if isinstance(container_config, dict) else None
    if not isinstance(labels, dict):
        return {}
    return {str(key): str(value) for key, value in labels.items()}


#: Called with ``(action, image_id, attributes)`` for Docker's image events.
ImageEventSink = Callable[[str, str, Mapping[str, str]], None]


def _no_users(image_id: str) -> Sequence[ImageUser]:
    return ()


def _no_pins() -> Collection[str]:
    return ()


def _no_events(action: str, image_id: str, attributes: Mapping[str, str]) -> None:
    return None


@attrs.define
class _Entry:
    raw: bytes
    config: dict[str, Any]
    chain: tuple[str, ...]
    parent: str = ""
    last_updated: str = ""


@attrs.frozen
class _Conflict:
    message: str
    hard: bool = False
    used: bool = False


# Conflict kinds checked before deleting an image (moby's conflictType).
_CHILD, _RUNNING, _REFERENCE, _STOPPED = 1, 2, 4, 8
_HARD = _CHILD | _RUNNING
_SOFT = _REFERENCE | _STOPPED


# -- small file helpers --------------------------------------------------------------


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _sync_filesystem(path: Path) -> None:
    """Flush the filesystem holding ``path`` (``syncfs``; ``sync`` where missing)."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:  # pragma: no cover - every Linux libc has it
        os.sync()
        return
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs(descriptor) != 0:  # pragma: no cover - only on I/O errors
            os.sync()
    finally:
        os.close(descriptor)


def _read_text(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return default


def _rfc3339_nano(nanoseconds: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def decode_config(raw: bytes) -> dict[str, Any]:
    """An image config's JSON object; Docker's message if it is not one."""
    try:
        config = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidParameter(f"invalid image JSON: {error}") from None
    if not isinstance(config, dict):
        raise InvalidParameter("invalid image JSON: not an object")
    return config


def _parse_config(raw: bytes) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The decoded config and its layers' chain IDs; Docker's checks and messages."""
    config = decode_config(raw)
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict):
        raise InvalidParameter("invalid image JSON, no RootFS key")
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidParameter("invalid image JSON: rootfs.diff_ids must be a list of digests")
    for diff in diff_ids:
        validate_digest(diff)
    history = config.get("history") or []
    non_empty = sum(1 for h in history if isinstance(h, dict) and not h.get("empty_layer"))
    if non_empty > len(diff_ids):
        raise InvalidParameter("too many non-empty layers in History section")
    return config, tuple(chain_ids(diff_ids))


def _is_id_prefix_of(image_id: str, name: str) -> bool:
    """moby's ``isImageIDPrefix``: ``name`` starts the ID, with or without ``sha256:``."""
    return image_id.startswith(name) or image_id_hex(image_id).startswith(name)


def _lookup_key(reference: Reference) -> Reference:
    """The stored form: a digest wins over a tag; a bare name means ``:latest``."""
    if reference.digest:
        return Reference(reference.domain, reference.path, digest=reference.digest)
    return reference.with_default_tag()


def _is_single_reference(references: Sequence[Reference]) -> bool:
    """One tag (plus digests of that same repository) or only digests of one repository."""
    if len(references) <= 1:
        return len(references) == 1
    tags = [r for r in references if not r.digest]
    if len(tags) > 1:
        return False
    digested = {r.name for r in references if r.digest}
    single = tags[0] if tags else references[0]
    return len(digested) == 1 and single.name in digested


def _not_found(reference: Reference) -> NotFound:
    shown = reference.with_default_tag() if reference.is_named else reference
    return NotFound(f"No such image: {shown.familiar()}")


class ImageStore:
    """Layers, image configs and tags under ``ROOT/image``; reloaded from disk at open.

    ``image_users`` (which containers use an image) and ``pinned_layers`` (chain IDs
    containers still mount) are set by the container store; until then nothing is used.
    """

    def __init__(self, root: Path, *, overlay_whiteouts: bool = True,
                 events: ImageEventSink | None = None) -> None:
        self.root = root
        self.overlay_whiteouts = overlay_whiteouts
        self.image_users: Callable[[str], Sequence[ImageUser]] = _no_users
        self.pinned_layers: Callable[[], Collection[str]] = _no_pins
        self._events = events or _no_events
        self._lock = threading.RLock()
        self._layers: dict[str, Layer] = {}
        self._images: dict[str, _Entry] = {}
        self._references: dict[Reference, str] = {}
        self._held: Counter[str] = Counter()

    @classmethod
    def open(cls, state_root: Path, *, overlay_whiteouts: bool = True,
             events: ImageEventSink | None = None) -> ImageStore:
        """Open (creating if needed) the store in ``state_root/image`` and load it."""
        store = cls(state_root / "image", overlay_whiteouts=overlay_whiteouts, events=events)
        store._prepare()
        store._load()
        return store

    # -- paths ---------------------------------------------------------------------

    @property
    def _layer_dir(self) -> Path:
        return self.root / "layers" / "sha256"

    @property
    def _staging_dir(self) -> Path:
        return self.root / "layers" / "tmp"

    @property
    def _config_dir(self) -> Path:
        return self.root / "imagedb" / "sha256"

    @property
    def _metadata_dir(self) -> Path:
        return self.root / "imagedb" / "metadata" / "sha256"

    @property
    def _repositories_file(self) -> Path:
        return self.root / "repositories.json"

    def _prepare(self) -> None:
        for directory in (self._layer_dir, self._config_dir, self._metadata_dir):
            ensure_directory(directory, mode=0o700)
        shutil.rmtree(self._staging_dir, ignore_errors=True)
        ensure_directory(self._staging_dir, mode=0o700)
        for directory in (self.root, self._config_dir):
            remove_temporaries(directory)

    # -- loading -------------------------------------------------------------------

    def _load(self) -> None:
        with self._lock:
            self._load_layers()
            self._load_images()
            self._load_references()
            self._remove_orphan_metadata()

    def _remove_orphan_metadata(self) -> None:
        """Metadata is written before its config; a crash between leaves it alone."""
        for directory in self._metadata_dir.iterdir():
            if "sha256:" + directory.name not in self._images:
                shutil.rmtree(directory, ignore_errors=True)
            else:
                remove_temporaries(directory)

    def _load_layers(self) -> None:
        for directory in self._layer_dir.iterdir():
            layer = self._read_layer(directory)
            if layer is not None:
                self._layers[layer.chain_id] = layer
        orphans = True
        while orphans:  # a layer is usable only on top of a usable parent
            orphans = False
            for layer in list(self._layers.values()):
                if layer.parent and layer.parent not in self._layers:
                    del self._layers[layer.chain_id]
                    orphans = True

    @staticmethod
    def _read_layer(directory: Path) -> Layer | None:
        if not _HEX64.fullmatch(directory.name):
            return None
        try:
            diff = _read_text(directory / "diff-id")
            size = int(_read_text(directory / "size", "0"))
        except (OSError, ValueError):
            return None
        parent = _read_text(directory / "parent") or None
        name = "sha256:" + directory.name
        if not diff or chain_id(parent, diff) != name or not (directory / "diff").is_dir():
            return None
        return Layer(chain_id=name, diff_id=diff, parent=parent, size=size,
                     path=directory / "diff")

    def _load_images(self) -> None:
        for path in self._config_dir.iterdir():
            if not _HEX64.fullmatch(path.name):
                continue
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != path.name:
                _log.error("image config {file} is not what its name promises: skipped",
                           file=str(path))
                continue  # never trust it
            try:
                config, chain = _parse_config(raw)
            except InvalidParameter:
                continue
            if chain and chain[-1] not in self._layers:
                continue
            metadata = self._metadata_dir / path.name
            self._images["sha256:" + path.name] = _Entry(
                raw, config, chain, parent=_read_text(metadata / "parent"),
                last_updated=_read_text(metadata / "lastUpdated"))

    def _load_references(self) -> None:
        try:
            document = json.loads(self._repositories_file.read_bytes())
            repositories = dict(document.get("Repositories") or {})
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError, TypeError) as error:
            aside = self._repositories_file.with_name("repositories.json.unreadable")
            with contextlib.suppress(OSError):
                os.replace(self._repositories_file, aside)
            _log.error("{file} cannot be read, images have no tags (the file is kept as "
                       "{aside}): {error}", file=str(self._repositories_file),
                       aside=aside.name, error=str(error))
            return
        for tags in repositories.values():
            for text, image_id in tags.items():
                with contextlib.suppress(InvalidParameter):
                    reference = parse_normalized(text)
                    if image_id in self._images:
                        self._references[reference] = image_id

    # -- layers --------------------------------------------------------------------

    def layer(self, chain: str) -> Layer:
        """The layer with chain ID ``chain``."""
        with self._lock:
            try:
                return self._layers[chain]
            except KeyError:
                raise NotFound(f"layer {chain} does not exist") from None

    def has_layer(self, chain: str) -> bool:
        with self._lock:
            return chain in self._layers

    def layers(self) -> list[Layer]:
        with self._lock:
            return list(self._layers.values())

    def layer_paths(self, image: Image) -> list[Path]:
        """The directories of ``image``'s layers, bottom first (none for an empty image)."""
        return [layer.path for layer in self.layer_chain(image.chain[-1])] if image.chain else []

    def image_layers(self, image_id: str) -> list[Path]:
        """The layer directories of the image ``image_id``, bottom first; none for
        ``""`` (a container made without an image, as a build ``FROM scratch`` makes)."""
        return self.layer_paths(self.get(image_id)) if image_id else []

    def image_chain(self, image_id: str) -> tuple[str, ...]:
        """The chain IDs of the image ``image_id``'s layers (none for ``""``)."""
        return self.get(image_id).chain if image_id else ()

    def layer_chain(self, chain: str) -> list[Layer]:
        """The layer ``chain`` and all below it, bottom first (overlayfs wants them reversed)."""
        found: list[Layer] = []
        current: str | None = chain
        with self._lock:
            while current:
                found.append(self.layer(current))
                current = found[-1].parent
        return found[::-1]

    def add_layer(self, stream: IO[bytes], parent: str | None = None) -> Layer:
        """Unpack a layer tar on top of ``parent``; an existing chain ID is reused as is
        (and given the tar-split record it lacked, if it was stored without one)."""
        if parent:
            self.layer(parent)
        staged = self.stage_layer(stream)
        try:
            return self.commit_layer(staged, parent)
        finally:
            staged.discard()

    def stage_layer(self, stream: ChunkSource | IO[bytes]) -> StagedLayer:
        """Unpack a layer tar into staging, on no parent yet (layers unpack on their
        own); :meth:`commit_layer` puts it in place, :meth:`StagedLayer.discard` drops
        it.  A crash leaves only staging, which the next open empties."""
        staging = Path(tempfile.mkdtemp(prefix="layer-", dir=self._staging_dir))
        try:
            (staging / "diff").mkdir(mode=0o755)
            with (staging / _TAR_SPLIT).open("wb") as record:
                result = extract_layer(stream, staging / "diff", record=record,
                                       overlay_whiteouts=self.overlay_whiteouts)
                os.fchmod(record.fileno(), 0o600)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return StagedLayer(staging, result.diff_id, result.size)

    def commit_layer(self, staged: StagedLayer, parent: str | None) -> Layer:
        """Put ``staged`` in place on top of ``parent`` (which must exist); a layer
        already stored under the same chain ID is answered instead."""
        chain = chain_id(parent, staged.diff_id)
        with self._lock:
            existing = self._layers.get(chain)
            if existing is not None:
                if staged.path.exists():
                    self._adopt_record(staged.path, existing)
                return existing
            if parent:
                self.layer(parent)  # still there after the unlocked unpacking?
            layer = Layer(chain, staged.diff_id, parent, staged.size,
                          self._layer_dir / image_id_hex(chain) / "diff")
            self._commit_layer(staged.path, layer)
            self._layers[chain] = layer
            return layer

    def _adopt_record(self, staging: Path, layer: Layer) -> None:
        target = layer.path.parent / _TAR_SPLIT
        if not target.exists():
            with (staging / _TAR_SPLIT).open("rb") as record:
                os.fsync(record.fileno())
            os.rename(staging / _TAR_SPLIT, target)
            fsync_directory(layer.path.parent)

    def staging_directory(self, prefix: str) -> Path:
        """A new private directory under the state root, emptied when the store opens."""
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self._staging_dir))

    def layer_tar(self, chain: str) -> tuple[int, Iterator[bytes]]:
        """The size and bytes of the layer's original uncompressed tar (``tarsplit``)."""
        layer = self.layer(chain)
        record = self.require_tar_split(chain)
        return stream_size(record), replay(record, layer.path, layer.diff_id)

    def has_tar_split(self, chain: str) -> bool:
        """Whether the layer ``chain`` exists and can be saved (it has its record)."""
        with self._lock:
            layer = self._layers.get(chain)
        return layer is not None and (layer.path.parent / _TAR_SPLIT).is_file()

    def require_tar_split(self, chain: str) -> Path:
        """The layer's tar-split record; ``System`` if it was stored without one."""
        layer = self.layer(chain)
        record = layer.path.parent / _TAR_SPLIT
        if not record.is_file():
            raise System(
                f"layer {layer.diff_id} cannot be saved: it was stored before dockertw "
                "kept tar-split records, so its original tar cannot be rebuilt; import or "
                "load the image again to record it")
        return record

    @contextlib.contextmanager
    def holding(self, chains: Collection[str]) -> Iterator[None]:
        """Keep ``chains`` on disk (an export reads them) even if their images go."""
        with self._lock:
            missing = [c for c in chains if c not in self._layers]
            if missing:
                raise NotFound(f"layer {missing[0]} does not exist")
            self._held.update(chains)
        try:
            yield
        finally:
            self.release(chains)

    def hold_present(self, chains: Collection[str]) -> list[str]:
        """Hold those of ``chains`` that are stored (a pull builds on them); answers
        them.  :meth:`release` lets them go."""
        with self._lock:
            present = [c for c in chains if c in self._layers]
            self._held.update(present)
            return present

    def release(self, chains: Collection[str]) -> None:
        """Stop holding ``chains`` (see :meth:`holding`, :meth:`hold_present`)."""
        with self._lock:
            self._held.subtract(chains)
            self._held = +self._held

    def unused(self, chains: Collection[str]) -> bool:
        """Whether any of ``chains`` is still stored but no longer used."""
        with self._lock:
            used = self._layers_in_use()
            return any(c in self._layers and c not in used for c in chains)

    def _commit_layer(self, staging: Path, layer: Layer) -> None:
        atomic_write(staging / "diff-id", layer.diff_id.encode(), mode=0o644)
        atomic_write(staging / "size", str(layer.size).encode(), mode=0o644)
        if layer.parent:
            atomic_write(staging / "parent", layer.parent.encode(), mode=0o644)
        _sync_filesystem(staging)
        os.rename(staging, layer.path.parent)
        fsync_directory(self._layer_dir)

    def _layers_in_use(self) -> set[str]:
        used = set(self.pinned_layers()) | set(self._held)
        for entry in self._images.values():
            used.update(entry.chain)
        return used

    def _remove_layer(self, chain: str) -> None:
        """Move the layer out of ``sha256/`` first, so a crash never leaves half of it."""
        layer = self._layers.pop(chain)
        doomed = Path(tempfile.mkdtemp(prefix="removing-", dir=self._staging_dir))
        os.rename(layer.path.parent, doomed / "layer")
        fsync_directory(self._layer_dir)
        shutil.rmtree(doomed, ignore_errors=True)

    def _release_layers(self, chain: Sequence[str]) -> list[str]:
        """Delete the unused layers of ``chain`` from the top down; return their IDs."""
        used = self._layers_in_use()
        removed = []
        for layer in reversed(chain):
            if layer in used or layer not in self._layers:
                break
            self._remove_layer(layer)
            removed.append(layer)
        return removed

    def delete_unused_layers(self) -> list[str]:
        """Remove layers no image or container uses (left by an interrupted load)."""
        with self._lock:
            used = self._layers_in_use()
            removed = []
            for layer in sorted(self._layers.values(), key=self._depth, reverse=True):
                if layer.chain_id not in used:
                    self._remove_layer(layer.chain_id)
                    removed.append(layer.chain_id)
            return removed

    def _depth(self, layer: Layer) -> int:
        depth = 0
        while layer.parent and layer.parent in self._layers:
            layer, depth = self._layers[layer.parent], depth + 1
        return depth

    # -- images --------------------------------------------------------------------

    def create_image(self, config: bytes, parent: str = "") -> str:
        """Store an image config (its layers must exist); return its ID, ``sha256:<hex>``."""
        decoded, chain = _parse_config(config)
        image_id = "sha256:" + hashlib.sha256(config).hexdigest()
        with self._lock:
            if parent and parent not in self._images:
                raise NotFound(f"No such image: {parent}")
            if chain and chain[-1] not in self._layers:
                raise InvalidParameter(f"failed to get layer {chain[-1]}: layer does not exist")
            if parent:  # metadata first: the config file is what makes the image exist
                self._set_metadata(image_id, "parent", parent)
            entry = self._images.get(image_id)
            if entry is None:
                atomic_write(self._config_dir / image_id_hex(image_id), config)
                entry = self._images[image_id] = _Entry(config, decoded, chain)
            entry.parent = parent or entry.parent
        return image_id

    def _set_metadata(self, image_id: str, key: str, value: str) -> None:
        directory = ensure_directory(self._metadata_dir / image_id_hex(image_id), mode=0o700)
        atomic_write(directory / key, value.encode())

    def _snapshot(self, image_id: str) -> Image:
        entry = self._images[image_id]
        references = self._references_of(image_id)
        return Image(
            id=image_id, config=entry.config, raw_config=entry.raw, parent=entry.parent,
            chain=entry.chain, size=sum(self._layers[c].size for c in entry.chain),
            repo_tags=tuple(r.familiar() for r in references if not r.digest),
            repo_digests=tuple(r.familiar() for r in references if r.digest),
            last_tag_time=entry.last_updated,
        )

    def get(self, name: str) -> Image:
        """Resolve ``name`` (reference, full or ``sha256:`` ID, unique ID prefix)."""
        with self._lock:
            return self._snapshot(self._resolve(name))

    def resolve(self, name: str) -> str:
        """The ID of the image ``name`` designates (see :meth:`get`)."""
        with self._lock:
            return self._resolve(name)

    def _resolve(self, name: str) -> str:
        reference = parse_any(name)
        if not reference.is_named:
            if reference.digest in self._images:
                return reference.digest
            raise _not_found(reference)
        found = self._references.get(_lookup_key(reference))
        if found is not None:
            return found
        found = self._search(name)
        if found is not None:
            return found
        raise _not_found(reference)

    def _search(self, prefix: str) -> str | None:
        """The one image whose ID starts with ``prefix`` (``sha256:`` optional)."""
        algorithm, colon, digits = prefix.rpartition(":")
        if (colon and algorithm != "sha256") or not re.fullmatch(r"[a-f0-9]+", digits):
            return None
        found = [i for i in self._images if image_id_hex(i).startswith(digits)]
        return found[0] if len(found) == 1 else None

    def images(self) -> list[Image]:
        """Every image, newest first."""
        with self._lock:
            found = [self._snapshot(image_id) for image_id in self._images]
        return sorted(found, key=lambda image: image.created_time, reverse=True)

    def children(self, image_id: str) -> list[str]:
        with self._lock:
            return [i for i, entry in self._images.items() if entry.parent == image_id]

    # -- references ----------------------------------------------------------------

    def lookup(self, reference: Reference) -> str | None:
        """The image a tag or digest names, ``None`` if it names none."""
        with self._lock:
            return self._references.get(_lookup_key(reference))

    def tags_of_repository(self, reference: Reference) -> list[tuple[Reference, str]]:
        """Every tag of ``reference``'s repository with its image, by familiar string."""
        with self._lock:
            found = [(r, i) for r, i in self._references.items()
                     if r.name == reference.name and not r.digest]
        return sorted(found, key=lambda item: item[0].familiar())

    def _references_of(self, image_id: str) -> list[Reference]:
        found = [r for r, target in self._references.items() if target == image_id]
        return sorted(found, key=lambda r: r.familiar())

    def references(self, image_id: str) -> list[Reference]:
        """The tags and digests naming ``image_id``, sorted by their familiar strings."""
        with self._lock:
            return self._references_of(image_id)

    def _save_references(self) -> None:
        repositories: dict[str, dict[str, str]] = {}
        for reference, image_id in sorted(self._references.items(),
                                          key=lambda item: item[0].familiar()):
            repositories.setdefault(reference.repository, {})[reference.familiar()] = image_id
        document = json.dumps({"Repositories": repositories}, separators=(",", ":"))
        atomic_write(self._repositories_file, document.encode())

    def tag(self, source: str, repository: str, tag: str = "") -> str:
        """``docker tag``: name the image ``source`` ``repository[:tag]``; return the
        familiar form of the new name (``busybox:latest``)."""
        with self._lock:
            image_id = self._resolve(source)
            reference = parse_normalized(repository)
            if tag:
                reference = reference.trimmed().with_tag(tag)
            if reference.digest:
                raise InvalidParameter("refusing to create a tag with a digest reference")
            return self.add_reference(reference, image_id)

    def add_reference(self, reference: Reference, image_id: str, force: bool = True,
                      *, emit: bool = True) -> str:
        """Point a tag (or, for pulled images, a digest) at ``image_id``; ``emit=False``
        sends no ``tag`` event (``docker load`` tags silently)."""
        with self._lock:
            if image_id not in self._images:
                raise NotFound(f"No such image: {image_id}")
            key = _lookup_key(reference)
            existing = self._references.get(key)
            if existing is not None and existing != image_id:
                self._check_overwrite(key, existing, force)
            if existing != image_id:  # an unchanged tag is not written again
                self._references[key] = image_id
                self._save_references()
            if not key.digest:
                self._touch(image_id)
                if emit:
                    self._emit("tag", image_id, key.familiar())
            return key.familiar()

    @staticmethod
    def _check_overwrite(key: Reference, existing: str, force: bool) -> None:
        if key.digest:
            raise Conflict(f"Cannot overwrite digest {key.digest}")
        if not force:
            raise Conflict(f"Conflict: Tag {key.familiar()} is already set to image "
                           f"{existing}, if you want to replace it, please use the force option")

    def _touch(self, image_id: str) -> None:
        stamp = _rfc3339_nano(time.time_ns())
        self._set_metadata(image_id, "lastUpdated", stamp)
        self._images[image_id].last_updated = stamp

    def remove_reference(self, reference: Reference) -> str | None:
        """Drop a tag or digest; return the image it named, ``None`` if it named none."""
        with self._lock:
            image_id = self._references.pop(_lookup_key(reference), None)
            if image_id is not None:
                self._save_references()
            return image_id

    # -- events --------------------------------------------------------------------

    def _emit(self, action: str, image_id: str, name: str) -> None:
        entry = self._images.get(image_id)
        attributes = _labels(entry.config) if entry is not None else {}
        attributes["name"] = name
        self._events(action, image_id, attributes)

    # -- deletion ------------------------------------------------------------------

    def delete(self, name: str, *, force: bool = False, prune: bool = True
               ) -> list[dict[str, str]]:
        """``docker rmi``: untag ``name``, and delete the image once nothing names it.

        Returns Docker's records, ``[{"Untagged": "busybox:latest"}, {"Deleted": id}]``;
        conflicts (children, containers, other tags) raise ``Conflict``.
        """
        with self._lock:
            image_id = self._resolve(name)
            records: list[dict[str, str]] = []
            if _is_id_prefix_of(image_id, name):
                self._untag_all_if_single(image_id, force, records)
                self._delete_image(image_id, records, force, prune, quiet=False)
            elif self._untag_name(name, image_id, force, records):
                self._delete_image(image_id, records, force, prune, quiet=True)
            return records

    def _untag_all_if_single(self, image_id: str, force: bool,
                             records: list[dict[str, str]]) -> None:
        """Deleting by ID removes the names of an image named once (or in one repository)."""
        references = self._references_of(image_id)
        if not _is_single_reference(references):
            return
        mask = _HARD if force else _HARD | (_SOFT & ~_REFERENCE)
        conflict = self._conflict(image_id, mask)
        if conflict is not None:
            raise Conflict(self._conflict_message(image_id, conflict))
        for reference in references:
            self._untag(reference, image_id, records)

    def _untag(self, reference: Reference, image_id: str, records: list[dict[str, str]],
               event: bool = True) -> None:
        self.remove_reference(reference)
        records.append({"Untagged": reference.familiar()})
        if event:
            self._emit("untag", image_id, image_id)

    def _untag_name(self, name: str, image_id: str, force: bool,
                    records: list[dict[str, str]]) -> bool:
        """Remove the name given; True if that left the image with no name at all."""
        references = self._references_of(image_id)
        if not force and _is_single_reference(references):
            self._refuse_if_used(name, image_id)
        reference = _lookup_key(parse_normalized(name))
        self._untag(reference, image_id, records)
        if not reference.digest:
            self._untag_orphan_digests(reference, image_id, records)
        return not self._references_of(image_id)

    def _refuse_if_used(self, name: str, image_id: str) -> None:
        users = self.image_users(image_id)
        if users:
            raise Conflict(
                f'conflict: unable to remove repository reference "{name}" (must force) - '
                f"container {users[0].container_id[:12]} is using its referenced image "
                f"{short_id(image_id)}")

    def _untag_orphan_digests(self, removed: Reference, image_id: str,
                              records: list[dict[str, str]]) -> None:
        """With the repository's last tag gone, its digest references go too."""
        remaining = self._references_of(image_id)
        if any(not r.digest and r.name == removed.name for r in remaining):
            return
        for reference in remaining:
            if reference.digest and reference.name == removed.name:
                self._untag(reference, image_id, records, event=False)

    def _delete_image(self, image_id: str, records: list[dict[str, str]], force: bool,
                      prune: bool, quiet: bool) -> None:
        """moby's ``imageDeleteHelper``: check conflicts, delete, then prune the parent."""
        conflict = self._conflict(image_id, _HARD if force else _HARD | _SOFT)
        if conflict is not None:
            if quiet and (not self._is_dangling(image_id) or conflict.used):
                return
            raise Conflict(self._conflict_message(image_id, conflict))
        parent = self._images[image_id].parent
        for reference in self._references_of(image_id):
            self._untag(reference, image_id, records)
        removed_layers = self._forget_image(image_id)
        self._emit("delete", image_id, image_id)
        records.append({"Deleted": image_id})
        records.extend({"Deleted": layer} for layer in removed_layers)
        if prune and parent in self._images:
            self._delete_image(parent, records, force=False, prune=True, quiet=True)

    def _is_dangling(self, image_id: str) -> bool:
        return not self._references_of(image_id) and not self.children(image_id)

    def _conflict(self, image_id: str, mask: int) -> _Conflict | None:
        if mask & _CHILD and self.children(image_id):
            return _Conflict("image has dependent child images", hard=True)
        users = self.image_users(image_id)
        running = [u for u in users if u.running]
        if mask & _RUNNING and running:
            return _Conflict(f"image is being used by running container "
                             f"{running[0].container_id[:12]}", hard=True, used=True)
        if mask & _REFERENCE and self._references_of(image_id):
            return _Conflict("image is referenced in multiple repositories")
        stopped = [u for u in users if not u.running]
        if mask & _STOPPED and stopped:
            return _Conflict(f"image is being used by stopped container "
                             f"{stopped[0].container_id[:12]}", used=True)
        return None

    @staticmethod
    def _conflict_message(image_id: str, conflict: _Conflict) -> str:
        kind = "cannot be forced" if conflict.hard else "must be forced"
        return f"conflict: unable to delete {short_id(image_id)} ({kind}) - {conflict.message}"

    def _forget_image(self, image_id: str) -> list[str]:
        """Remove the config, then the metadata, then the layers nothing else uses."""
        entry = self._images.pop(image_id)
        hex_id = image_id_hex(image_id)
        (self._config_dir / hex_id).unlink(missing_ok=True)
        fsync_directory(self._config_dir)
        shutil.rmtree(self._metadata_dir / hex_id, ignore_errors=True)
        return self._release_layers(entry.chain)


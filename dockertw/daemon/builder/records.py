"""The classic build cache as ``/system/df`` and ``POST /build/prune`` see it.

The cache of the classic builder is its step images (moby keeps them as untagged
parents).  Every image a build step makes is recorded here with when it was made and
last used and how often the cache hit it, in ``ROOT/builder/cache.json`` (written
whole and renamed; a crash loses at most the last build's figures).  A record is
*shared* when a tagged image or a container depends on its image; prune deletes the
others' images (those whose last use is before ``until``), children first.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from dockertw.daemon.images.reference import image_id_hex
from dockertw.daemon.images.store import Image, ImageStore
from dockertw.daemon.images.views import rfc3339_nano
from dockertw.daemon.storage import atomic_write
from dockertw.errdefs import DockerError

__all__ = ["CacheRecords", "Record"]


@attrs.define
class Record:
    created_ns: int
    last_used_ns: int
    usage: int = 0


class CacheRecords:
    """The step images builds made, kept across restarts (thread-safe)."""

    def __init__(self, path: Path, store: ImageStore) -> None:
        self._path = path
        self._store = store
        self._lock = threading.Lock()
        self._records: dict[str, Record] = {}

    @classmethod
    def open(cls, path: Path, store: ImageStore) -> CacheRecords:
        records = cls(path, store)
        try:
            saved = json.loads(path.read_bytes())
        except (OSError, ValueError):
            saved = {}
        for image_id, fields in (saved.get("records") or {}).items():
            if isinstance(fields, dict):
                records._records[image_id] = Record(int(fields.get("created", 0)),
                                                    int(fields.get("last_used", 0)),
                                                    int(fields.get("usage", 0)))
        return records

    def made(self, image_id: str) -> None:
        """A build step made (or restored) ``image_id``."""
        now = time.time_ns()
        with self._lock:
            self._records.setdefault(image_id, Record(now, now))

    def used(self, image_id: str) -> None:
        """The cache answered ``image_id`` for a step."""
        with self._lock:
            record = self._records.get(image_id)
            if record is not None:
                record.last_used_ns = time.time_ns()
                record.usage += 1

    def save(self) -> None:
        """Write the records (blocking), forgetting those whose image is gone."""
        with self._lock:
            self._records = {image_id: record for image_id, record in self._records.items()
                             if self._exists(image_id)}
            document = {"records": {image_id: {"created": r.created_ns,
                                               "last_used": r.last_used_ns,
                                               "usage": r.usage}
                                    for image_id, r in self._records.items()}}
        atomic_write(self._path, json.dumps(document, sort_keys=True).encode(), durable=False)

    def _exists(self, image_id: str) -> bool:
        try:
            self._store.get(image_id)
        except DockerError:
            return False
        return True

    def _images(self) -> Iterator[tuple[Image, Record]]:
        with self._lock:
            records = dict(self._records)
        for image_id, record in records.items():
            try:
                yield self._store.get(image_id), record
            except DockerError:
                continue

    def _kept(self, users: set[str]) -> set[str]:
        """Images a tagged image, a container or a running build depends on."""
        kept: set[str] = set()
        for image in self._store.images():
            if image.repo_tags or image.repo_digests or image.id in users:
                kept.update(self._lineage(image))
        return kept

    def _lineage(self, image: Image) -> Iterator[str]:
        current: str = image.id
        while current:
            yield current
            try:
                current = self._store.get(current).parent
            except DockerError:
                return

    def _layer_size(self, image: Image) -> int:
        parent_size = 0
        if image.parent:
            with contextlib.suppress(DockerError):
                parent_size = self._store.get(image.parent).size
        return max(image.size - parent_size, 0)

    def usage(self, users: set[str]) -> list[dict[str, Any]]:
        """The ``BuildCache`` items of ``/system/df`` (``users``: images containers
        and running builds use)."""
        kept = self._kept(users)
        found = list(self._images())
        ids = {image.id for image, _ in found}
        return [_item(image, record, image.id in kept, image.id in users,
                      self._layer_size(image), ids) for image, record in found]

    def prunable(self, users: set[str], until_ns: int | None) -> list[Image]:
        """The recorded images nothing needs, children before their parents."""
        kept = self._kept(users)
        chosen = [image for image, record in self._images() if image.id not in kept
                  and (until_ns is None or record.last_used_ns < until_ns)]
        depth = {image.id: sum(1 for _ in self._lineage(image)) for image in chosen}
        return sorted(chosen, key=lambda image: depth[image.id], reverse=True)


def _item(image: Image, record: Record, shared: bool, in_use: bool, size: int,
          recorded: set[str]) -> dict[str, Any]:
    history = image.config.get("history") or [{}]
    last = history[-1] if isinstance(history[-1], dict) else {}
    return {
        "ID": image_id_hex(image.id),
        "Parents": [image_id_hex(image.parent)] if image.parent in recorded else None,
        "Type": "regular", "Description": str(last.get("created_by") or ""),
        "InUse": in_use, "Shared": shared, "Size": size,
        "CreatedAt": rfc3339_nano(record.created_ns),
        "LastUsedAt": rfc3339_nano(record.last_used_ns), "UsageCount": record.usage,
    }

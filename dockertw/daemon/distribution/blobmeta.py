"""Which compressed blobs a layer is known as, on which registries and repositories.

Docker's ``v2metadata-by-diffid``: a pull records the blob a layer came from; a push
records the blob it compressed and uploaded.  A later push checks those blobs exist
(``Layer already exists``) or mounts them from another repository of the same
registry (``Mounted from``) instead of compressing the layer again.  Kept under
``ROOT/image/distribution/v2metadata-by-diffid/sha256/<hex>``, one JSON file per
layer, each written crash-safely.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import attrs

from dockertw.daemon.storage import atomic_write, ensure_directory

__all__ = ["BlobMetadata", "KnownBlob"]

_KEEP = 50


@attrs.frozen
class KnownBlob:
    digest: str
    size: int
    registry: str  # host[:port]
    repository: str  # path in the registry, e.g. library/busybox


class BlobMetadata:
    """The known blobs of each layer (by diff ID), newest first."""

    def __init__(self, root: Path) -> None:
        self._directory = root / "v2metadata-by-diffid" / "sha256"
        self._lock = threading.Lock()

    def _path(self, diff_id: str) -> Path:
        return self._directory / diff_id.removeprefix("sha256:")

    def known(self, diff_id: str) -> list[KnownBlob]:
        try:
            document = json.loads(self._path(diff_id).read_bytes())
        except (OSError, ValueError):
            return []
        if not isinstance(document, list):
            return []
        return [KnownBlob(str(e.get("Digest", "")), int(e.get("Size", 0) or 0),
                          str(e.get("Registry", "")), str(e.get("Repository", "")))
                for e in document if isinstance(e, dict) and e.get("Digest")]

    def add(self, diff_id: str, blob: KnownBlob) -> None:
        """Remember ``blob`` as the newest way to ``diff_id`` (blocking file I/O)."""
        with self._lock:
            entries = [blob] + [b for b in self.known(diff_id) if b != blob]
            document = [{"Digest": b.digest, "Size": b.size, "Registry": b.registry,
                         "Repository": b.repository} for b in entries[:_KEEP]]
            ensure_directory(self._directory, mode=0o700)
            atomic_write(self._path(diff_id), json.dumps(document).encode(), durable=False)

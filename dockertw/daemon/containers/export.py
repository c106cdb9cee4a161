"""``docker export``: a tar of a container's whole root filesystem, streamed.

The archive is read from a private read-only overlay of the container's upper
directory over its image layers, so it needs neither the container's own mount nor its
state: it works the same for a stopped and a running container, and never races a
start or an exit.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, cast

from dockertw.runtime import mounts

__all__ = ["export_rootfs"]

_CHUNK = 1 << 20


class _ChunkWriter:
    """A write-only file handing ``push`` chunks of about one MiB."""

    def __init__(self, push: Callable[[bytes], None]) -> None:
        self._push = push
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= _CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            chunk, self._buffer = bytes(self._buffer), bytearray()
            self._push(chunk)


def export_rootfs(upper: Path, lowers: Sequence[Path], scratch: Path,
                  push: Callable[[bytes], None]) -> None:
    """Stream the merged root filesystem as a tar through ``push``; ``scratch`` is a
    directory for the private mount (removed afterwards, also on errors)."""
    target = scratch / uuid.uuid4().hex
    upper.mkdir(exist_ok=True)
    empty = scratch / "empty"
    empty.mkdir(parents=True, exist_ok=True)  # an image without layers
    mounts.mount_overlay_readonly([upper, *(lowers or [empty])], target)
    try:
        writer = _ChunkWriter(push)
        with tarfile.open(fileobj=cast(IO[bytes], writer), mode="w|",
                          format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(os.listdir(target)):
                tar.add(target / name, arcname=name)
        writer.flush()
    finally:
        mounts.unmount(target)
        shutil.rmtree(target, ignore_errors=True)

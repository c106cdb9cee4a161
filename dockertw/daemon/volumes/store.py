"""Local volumes on disk: ``<root>/volumes/<name>/_data`` with ``volume.json`` beside.

The metadata file is written crash-safely and last, so a directory without it is a
volume whose creation never finished (ignored, then reused by a new create).  Every
method blocks and is safe to call from any thread.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import attrs

from dockertw.daemon.storage import (
    atomic_write,
    ensure_directory,
    remove_temporaries,
    tree_size,
)
from dockertw.errdefs import InvalidParameter, NotFound, System
from dockertw.loglevel import Logger
from dockertw.runtime import mounts

__all__ = ["Volume", "VolumeStore", "check_volume_name", "LOCAL_OPTIONS"]

_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
LOCAL_OPTIONS = frozenset({"type", "device", "o", "size"})
_METADATA = "volume.json"
_log = Logger()


def check_volume_name(name: str) -> None:
    """The local driver's rule for names (moby ``local.validateName``)."""
    if not _VALID_NAME.match(name):
        raise InvalidParameter(
            f'create {name}: "{name}" includes invalid characters for a local volume '
            'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass '
            "a host directory, use absolute path")


@attrs.frozen
class Volume:
    """One local volume's metadata."""

    name: str
    mountpoint: str
    created: str  # RFC 3339, seconds
    labels: dict[str, str] = attrs.field(factory=dict)
    options: dict[str, str] = attrs.field(factory=dict)
    anonymous: bool = False

    def view(self, usage: dict[str, int] | None = None) -> dict[str, Any]:
        """Docker's ``Volume`` JSON (``UsageData`` only for ``/system/df``)."""
        shown: dict[str, Any] = {
            "CreatedAt": self.created, "Driver": "local", "Labels": self.labels or None,
            "Mountpoint": self.mountpoint, "Name": self.name,
            "Options": self.options or None, "Scope": "local"}
        if usage is not None:
            shown["UsageData"] = usage
        return shown

    def to_json(self) -> bytes:
        return json.dumps({"Name": self.name, "CreatedAt": self.created,
                           "Labels": self.labels, "Options": self.options,
                           "Anonymous": self.anonymous}).encode()


def _mount(volume: Volume) -> None:
    """Mount a volume's ``device`` of ``type`` with ``o`` on its ``_data``."""
    options = volume.options
    try:
        mounts.mount_filesystem(options["device"], Path(volume.mountpoint), options["type"],
                                options.get("o", ""))
    except OSError as error:
        raise System(f"create {volume.name}: error while mounting volume "
                     f"'{volume.mountpoint}': failed to mount local volume: mount "
                     f"{options['device']}:{volume.mountpoint}, data: "
                     f"{options.get('o', '')}: {error.strerror}") from None


def _remove_unfinished(directory: Path) -> None:
    """Remove a volume directory whose creation or removal a crash cut short."""
    if not directory.is_dir():
        return
    data = directory / "_data"
    if mounts.is_mounted(data):
        mounts.unmount(data)
    shutil.rmtree(directory, ignore_errors=True)


def _unmount(volume: Volume) -> None:
    """Unmount the volume's own filesystem, if mounted; its data stays untouched."""
    target = Path(volume.mountpoint)
    if volume.options and mounts.is_mounted(target):
        mounts.unmount(target)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class VolumeStore:
    """The volumes under ``<state root>/volumes``, kept in memory once loaded."""

    def __init__(self, root: Path) -> None:
        self.root = ensure_directory(root, 0o701)
        self._lock = threading.RLock()
        self._volumes: dict[str, Volume] = {}
        for directory in sorted(self.root.iterdir()):
            remove_temporaries(directory)
            loaded = self._load(directory)
            if loaded is not None:
                self._volumes[loaded.name] = loaded
                if loaded.options and not mounts.is_mounted(Path(loaded.mountpoint)):
                    try:
                        _mount(loaded)
                    except System:
                        continue  # shown, but containers see an empty directory

    def _load(self, directory: Path) -> Volume | None:
        """The volume of ``directory``; one whose creation or removal was cut short
        (no metadata) is removed, one whose metadata cannot be read stays on disk."""
        try:
            raw = (directory / _METADATA).read_bytes()
        except FileNotFoundError:
            _remove_unfinished(directory)
            return None
        except OSError as error:
            _log.error("volume record {file} cannot be read, the volume is skipped: {error}",
                       file=str(directory / _METADATA), error=str(error))
            return None
        try:
            record = json.loads(raw)
            return Volume(name=directory.name, mountpoint=str(directory / "_data"),
                          created=str(record.get("CreatedAt") or _now()),
                          labels=dict(record.get("Labels") or {}),
                          options=dict(record.get("Options") or {}),
                          anonymous=bool(record.get("Anonymous")))
        except (ValueError, AttributeError, TypeError) as error:
            _log.error("volume record {file} cannot be read, the volume is skipped (its "
                       "directory is kept): {error}", file=str(directory / _METADATA),
                       error=str(error))
            return None

    def all(self) -> list[Volume]:
        with self._lock:
            return sorted(self._volumes.values(), key=lambda v: v.name)

    def get(self, name: str) -> Volume:
        with self._lock:
            found = self._volumes.get(name)
        if found is None:
            raise NotFound(f"get {name}: no such volume")
        return found

    def find(self, name: str) -> Volume | None:
        with self._lock:
            return self._volumes.get(name)

    def create(self, name: str = "", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None,
               anonymous: bool = False) -> tuple[Volume, bool]:
        """The volume called ``name`` (a random 64-hex one when empty), and whether it
        was created now (an existing one is returned as it is)."""
        name = name or secrets.token_hex(32)
        check_volume_name(name)
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return existing, False
            directory = self.root / name
            ensure_directory(directory / "_data", 0o755)
            (directory / "_data").chmod(0o755)
            volume = Volume(name=name, mountpoint=str(directory / "_data"),
                            created=_now(), labels=dict(labels or {}),
                            options=dict(options or {}), anonymous=anonymous)
            try:
                if volume.options:
                    _mount(volume)
                atomic_write(directory / _METADATA, volume.to_json())
            except BaseException:
                _unmount(volume)
                shutil.rmtree(directory, ignore_errors=True)
                raise
            self._volumes[name] = volume
            return volume, True

    def remove(self, name: str) -> Volume:
        """Delete the volume and its data (metadata first, so a crash leaves no
        half-volume that looks whole)."""
        with self._lock:
            volume = self._volumes.pop(name, None)
            if volume is None:
                raise NotFound(f"remove {name}: no such volume")
            directory = self.root / name
            (directory / _METADATA).unlink(missing_ok=True)
            _unmount(volume)
            shutil.rmtree(directory, ignore_errors=True)
            return volume

    def close(self) -> None:
        """Unmount the volumes that have their own filesystem (daemon shutdown)."""
        with self._lock:
            for volume in self._volumes.values():
                _unmount(volume)

    def size(self, name: str) -> int:
        return tree_size(Path(self.get(name).mountpoint))

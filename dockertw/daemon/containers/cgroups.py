"""Where a container's cgroup files are, under cgroup v1 (one hierarchy per
controller) or v2 (one unified hierarchy).  Reads here block: use a worker thread."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["CGROUP_ROOT", "cgroup_dir", "read_pids", "read_files"]

CGROUP_ROOT = Path("/sys/fs/cgroup")

#: The v1 hierarchies that may hold ``cgroup.procs``, the first present wins.
_PROCS_CONTROLLERS = ("pids", "memory", "cpuacct", "devices")


def cgroup_dir(version: str, controller: str, path: str,
               root: Path = CGROUP_ROOT) -> Path:
    """The directory of cgroup ``path`` (``/parent/id``) for ``controller``."""
    relative = path.strip("/")
    return root / relative if version == "2" else root / controller / relative


def read_pids(version: str, path: str, root: Path = CGROUP_ROOT) -> set[int]:
    """The process IDs in the cgroup (empty when it does not exist)."""
    controllers = ("",) if version == "2" else _PROCS_CONTROLLERS
    for controller in controllers:
        try:
            text = (cgroup_dir(version, controller, path, root) / "cgroup.procs").read_text()
        except OSError:
            continue
        return {int(line) for line in text.split() if line.isdigit()}
    return set()


def read_files(paths: Iterable[tuple[str, Path]]) -> dict[str, str]:
    """``{key: contents}`` of the files that could be read (missing ones left out)."""
    found: dict[str, str] = {}
    for key, path in paths:
        try:
            found[key] = path.read_text()
        except OSError:
            continue
    return found

"""Where a container's cgroup files are, under cgroup v1 (one hierarchy per
controller) or v2 (one unified hierarchy).  Reads here block: use a worker thread."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

__all__ = ["CGROUP_ROOT", "StatsFiles", "cgroup_dir", "read_pids", "read_files",
           "read_stats_files", "oom_kills"]

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


@attrs.frozen
class StatsFiles:
    """What one stats sample is made of: cgroup files by name, ``/proc/stat`` and the
    init's ``net/dev`` (``None`` when not read)."""

    cgroup: dict[str, str]
    proc_stat: str
    net_dev: str | None


def read_stats_files(version: str, path: str, wanted: Iterable[tuple[str, str]],
                     pid: int | None, root: Path = CGROUP_ROOT,
                     proc: Path = Path("/proc")) -> StatsFiles:
    """Read the ``(controller, name)`` files of cgroup ``path``, the host's CPU times
    and (``pid`` given) the network counters of the process's namespace."""
    cgroup = read_files((name, cgroup_dir(version, controller, path, root) / name)
                        for controller, name in wanted)
    found = read_files([("stat", proc / "stat")] +
                       ([("net", proc / str(pid) / "net" / "dev")] if pid else []))
    return StatsFiles(cgroup, found.get("stat", ""), found.get("net"))


def oom_kills(version: str, path: str, root: Path = CGROUP_ROOT) -> int:
    """How many processes of the cgroup the kernel killed for memory (``oom_kill`` of
    ``memory.events``, or of v1's ``memory.oom_control``); 0 when unknown."""
    name = "memory.events" if version == "2" else "memory.oom_control"
    try:
        text = (cgroup_dir(version, "memory", path, root) / name).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0

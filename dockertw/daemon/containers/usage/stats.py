"""``docker stats``: a container's cgroup files, ``/proc/stat`` and its network
counters turned into Docker's stats JSON.

Sans-IO: file contents in, pieces of Docker's answer out.  Which files to read is
listed by :func:`cgroup_files`; :mod:`dockertw.daemon.containers.usage.cgroups` reads them.
cgroup v1 gives per-CPU usage and the peak memory use, v2 gives neither (as with
dockerd); v2's ``memory.stat`` keys differ from v1's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from dockertw.daemon.containers.records.record import ZERO_TIME
from dockertw.daemon.timestamps import rfc3339_nano

__all__ = ["Sample", "cgroup_files", "parse_sample", "stats_json", "zero_stats",
           "system_cpu", "network_stats", "v1_stats", "v2_stats"]

_NS = 1_000_000_000

_BLKIO_LISTS = ("io_service_bytes_recursive", "io_serviced_recursive",
                "io_queue_recursive", "io_service_time_recursive",
                "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
                "sectors_recursive")

#: v1 blkio files by preference: BFQ, then CFQ, then the throttling counters.
_V1_BLKIO = {
    "io_service_bytes_recursive": ("blkio.bfq.io_service_bytes_recursive",
                                   "blkio.io_service_bytes_recursive",
                                   "blkio.throttle.io_service_bytes_recursive"),
    "io_serviced_recursive": ("blkio.bfq.io_serviced_recursive",
                              "blkio.io_serviced_recursive",
                              "blkio.throttle.io_serviced_recursive"),
}

_V1_FILES = (
    ("cpuacct", "cpuacct.usage"), ("cpuacct", "cpuacct.usage_percpu"),
    ("cpuacct", "cpuacct.stat"), ("cpu", "cpu.stat"),
    ("memory", "memory.usage_in_bytes"), ("memory", "memory.max_usage_in_bytes"),
    ("memory", "memory.limit_in_bytes"), ("memory", "memory.failcnt"),
    ("memory", "memory.stat"), ("pids", "pids.current"), ("pids", "pids.max"),
    *(("blkio", name) for names in _V1_BLKIO.values() for name in names),
)

_V2_FILES = ("cpu.stat", "memory.current", "memory.max", "memory.stat", "memory.events",
             "pids.current", "pids.max", "io.stat")


def cgroup_files(version: str) -> tuple[tuple[str, str], ...]:
    """``(controller, file name)`` of every file the stats read (v2: no controller)."""
    if version == "2":
        return tuple(("", name) for name in _V2_FILES)
    return _V1_FILES


# -- small parsers ---------------------------------------------------------------------

def _number(text: str | None) -> int:
    """A counter file's value; ``max`` (no limit), junk or a missing file is 0."""
    try:
        return int((text or "").split()[0])
    except (ValueError, IndexError):
        return 0


def _keyed(text: str | None) -> dict[str, int]:
    """``key value`` lines (``memory.stat``, ``cpu.stat``, ``cpuacct.stat``)."""
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _v1_blkio(text: str | None) -> list[dict[str, Any]]:
    """``major:minor Op value`` lines (the ``Total`` line left out)."""
    entries = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        try:
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                            "value": int(parts[2])})
        except ValueError:
            continue
    return entries


def _blkio(**lists: list[dict[str, Any]]) -> dict[str, Any]:
    """v2 (and no sample): the lists moby leaves nil, ``null``."""
    return {key: lists.get(key) or None for key in _BLKIO_LISTS}


def _v1_blkio_stats(**lists: list[dict[str, Any]]) -> dict[str, Any]:
    """v1: moby copies every list of containerd's, so an empty one reads ``[]``."""
    return {key: lists.get(key) or [] for key in _BLKIO_LISTS}


#: The ``memory_stats.stats`` keys moby copies (``daemon/stats_unix.go``), sorted as
#: Go writes a map; v1 leaves out e.g. ``shmem`` and ``swap``, v2 newer keys.
_V1_MEMORY_KEYS = tuple(sorted(prefix + key for prefix in ("", "total_") for key in (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout",
    "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file",
    "active_file", "unevictable")) + ["hierarchical_memory_limit",
                                      "hierarchical_memsw_limit"])
_V2_MEMORY_KEYS = tuple(sorted((
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file",
    "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault",
    "pgmajfault", "workingset_refault", "workingset_activate", "workingset_nodereclaim",
    "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc")))


def _memory_keys(text: str | None, keys: tuple[str, ...]) -> dict[str, int]:
    """``memory.stat`` as moby shows it: its keys (0 when absent), sorted; ``{}``
    without the file."""
    found = _keyed(text)
    return {key: found.get(key, 0) for key in sorted(keys)} if text else {}


def _memory(usage: int, limit: int, machine_memory: int, stats: dict[str, int],
            max_usage: int = 0, failcnt: int = 0) -> dict[str, Any]:
    """``memory_stats`` with Go's ``omitempty``; no limit shows the host's memory."""
    if machine_memory and (limit == 0 or limit > machine_memory):
        limit = machine_memory
    shown = {"usage": usage, "max_usage": max_usage, "stats": stats, "failcnt": failcnt,
             "limit": limit}  # the order of moby's MemoryStats
    return {key: value for key, value in shown.items() if value}


def _pids(current: int, limit: int) -> dict[str, int]:
    return {key: value for key, value in (("current", current), ("limit", limit)) if value}


def _throttling(periods: int, throttled: int, time_ns: int) -> dict[str, int]:
    return {"periods": periods, "throttled_periods": throttled, "throttled_time": time_ns}


# -- cgroup v1 and v2 ------------------------------------------------------------------

def v1_stats(files: Mapping[str, str], machine_memory: int = 0,
             clk_tck: int = 100) -> dict[str, Any]:
    """cgroup v1 files (by name) -> ``cpu_usage``, ``throttling_data``,
    ``memory_stats``, ``pids_stats``, ``blkio_stats``."""
    ticks = _keyed(files.get("cpuacct.stat"))
    throttled = _keyed(files.get("cpu.stat"))
    percpu = [int(v) for v in (files.get("cpuacct.usage_percpu") or "").split()
              if v.isdigit()]
    cpu_usage: dict[str, Any] = {
        "total_usage": _number(files.get("cpuacct.usage")),
        "percpu_usage": percpu,
        "usage_in_kernelmode": ticks.get("system", 0) * _NS // clk_tck,
        "usage_in_usermode": ticks.get("user", 0) * _NS // clk_tck,
    }
    if not percpu:
        del cpu_usage["percpu_usage"]
    blkio = {key: next((found for name in names
                        if (found := _v1_blkio(files.get(name)))), [])
             for key, names in _V1_BLKIO.items()}
    return {
        "cpu_usage": cpu_usage,
        "throttling_data": _throttling(throttled.get("nr_periods", 0),
                                       throttled.get("nr_throttled", 0),
                                       throttled.get("throttled_time", 0)),
        "memory_stats": _memory(_number(files.get("memory.usage_in_bytes")),
                                _number(files.get("memory.limit_in_bytes")),
                                machine_memory,
                                _memory_keys(files.get("memory.stat"), _V1_MEMORY_KEYS),
                                max_usage=_number(files.get("memory.max_usage_in_bytes")),
                                failcnt=_number(files.get("memory.failcnt"))),
        "pids_stats": _pids(_number(files.get("pids.current")),
                            _number(files.get("pids.max"))),
        "blkio_stats": _v1_blkio_stats(**blkio),
    }


def _v2_io(text: str | None) -> list[dict[str, Any]]:
    """``io.stat`` (``major:minor rbytes=N wbytes=N ...``) -> read and write bytes."""
    entries = []
    for line in (text or "").splitlines():
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        values = dict(pair.partition("=")[::2] for pair in pairs)
        if not (major.isdigit() and minor.isdigit()):
            continue
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            entries.append({"major": int(major), "minor": int(minor), "op": op,
                            "value": _number(values.get(key))})
    return entries


def v2_stats(files: Mapping[str, str], machine_memory: int = 0) -> dict[str, Any]:
    """cgroup v2 files (by name) -> the same pieces as :func:`v1_stats`."""
    cpu = _keyed(files.get("cpu.stat"))
    return {
        "cpu_usage": {"total_usage": cpu.get("usage_usec", 0) * 1000,
                      "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                      "usage_in_usermode": cpu.get("user_usec", 0) * 1000},
        "throttling_data": _throttling(cpu.get("nr_periods", 0),
                                       cpu.get("nr_throttled", 0),
                                       cpu.get("throttled_usec", 0) * 1000),
        "memory_stats": _memory(_number(files.get("memory.current")),
                                _number(files.get("memory.max")), machine_memory,
                                _memory_keys(files.get("memory.stat"), _V2_MEMORY_KEYS),
                                failcnt=_keyed(files.get("memory.events")).get("oom", 0)),
        "pids_stats": _pids(_number(files.get("pids.current")),
                            _number(files.get("pids.max"))),
        "blkio_stats": _blkio(io_service_bytes_recursive=_v2_io(files.get("io.stat"))),
    }


# -- the host and the network ----------------------------------------------------------

def system_cpu(proc_stat: str, clk_tck: int = 100) -> tuple[int, int]:
    """``/proc/stat`` -> (the host's CPU time in ns: the first seven fields of the
    ``cpu`` line, the number of online CPUs)."""
    total, online = 0, 0
    for line in proc_stat.splitlines():
        name, *fields = line.split()
        if name == "cpu":
            total = sum(int(field) for field in fields[:7]) * _NS // clk_tck
        elif name.startswith("cpu"):
            online += 1
    return total, online


_NET_FIELDS = {0: "rx_bytes", 1: "rx_packets", 2: "rx_errors", 3: "rx_dropped",
               8: "tx_bytes", 9: "tx_packets", 10: "tx_errors", 11: "tx_dropped"}


def network_stats(net_dev: str) -> dict[str, dict[str, int]]:
    """``/proc/<pid>/net/dev`` -> counters per interface, ``lo`` left out (sorted by
    name, as Go writes a map)."""
    networks = {}
    for line in net_dev.splitlines()[2:]:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or name.strip() == "lo" or len(values) < 16:
            continue
        networks[name.strip()] = {key: int(values[i]) for i, key in _NET_FIELDS.items()}
    return dict(sorted(networks.items()))


# -- samples and answers ---------------------------------------------------------------

@attrs.frozen
class Sample:
    """One reading of a container's counters."""

    read_ns: int
    cgroup: dict[str, Any]
    system_cpu: int = 0
    online_cpus: int = 0
    networks: dict[str, dict[str, int]] | None = None


def parse_sample(version: str, files: Mapping[str, str], proc_stat: str | tuple[int, int],
                 net_dev: str | None, read_ns: int, machine_memory: int = 0,
                 clk_tck: int = 100) -> Sample:
    """A :class:`Sample` from the files read at ``read_ns``; ``proc_stat`` is the
    host's ``/proc/stat``, or what :func:`system_cpu` made of it."""
    cgroup = (v2_stats(files, machine_memory) if version == "2"
              else v1_stats(files, machine_memory, clk_tck))
    total, online = system_cpu(proc_stat, clk_tck) if isinstance(proc_stat, str) \
        else proc_stat
    networks = network_stats(net_dev) if net_dev is not None else None
    return Sample(read_ns, cgroup, total, online, networks)


def _cpu_stats(sample: Sample | None) -> dict[str, Any]:
    if sample is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0},
                "throttling_data": _throttling(0, 0, 0)}
    shown: dict[str, Any] = {"cpu_usage": sample.cgroup["cpu_usage"]}
    if sample.system_cpu:
        shown["system_cpu_usage"] = sample.system_cpu
    if sample.online_cpus:
        shown["online_cpus"] = sample.online_cpus
    shown["throttling_data"] = sample.cgroup["throttling_data"]
    return shown


def stats_json(name: str, container_id: str, current: Sample | None,
               previous: Sample | None = None) -> dict[str, Any]:
    """Docker's stats object; ``previous`` fills ``preread`` and ``precpu_stats``
    (``current`` ``None``: the zeroed answer for a container that does not run)."""
    cgroup = current.cgroup if current is not None else {}
    shown: dict[str, Any] = {
        "read": rfc3339_nano(current.read_ns) if current is not None else ZERO_TIME,
        "preread": rfc3339_nano(previous.read_ns) if previous is not None else ZERO_TIME,
        "pids_stats": cgroup.get("pids_stats", {}),
        "blkio_stats": cgroup.get("blkio_stats", _blkio()),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_stats(current),
        "precpu_stats": _cpu_stats(previous),
        "memory_stats": cgroup.get("memory_stats", {}),
        "name": name,
        "id": container_id,
    }
    if current is not None and current.networks:
        shown["networks"] = current.networks
    return shown


def zero_stats(name: str, container_id: str) -> dict[str, Any]:
    """The answer for a container that does not run: zeroes, its name and ID."""
    return stats_json(name, container_id, None)

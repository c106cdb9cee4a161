"""``docker stats``: a container's cgroup and network readings in Docker's shape.

:func:`read_sample` gathers the raw files of one moment (blocking: a worker thread);
the parsers below turn file texts into numbers and :func:`stats_document` builds the
``ContainerStats`` JSON from two samples, for cgroup v1 and v2 alike.  The cgroup
paths come from ``/proc/<pid>/cgroup`` of the container's init, whatever the runtime.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dockertw.daemon.images.views import rfc3339_nano

__all__ = ["Sample", "read_sample", "stats_document", "zero_document", "parse_cgroups",
           "parse_key_values", "parse_net_dev", "system_cpu_ns"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
_V1_FILES = {"memory": ("memory.usage_in_bytes", "memory.max_usage_in_bytes",
                        "memory.limit_in_bytes", "memory.stat"),
             "cpuacct": ("cpuacct.usage", "cpuacct.usage_percpu", "cpuacct.stat"),
             "cpu": ("cpu.stat",), "pids": ("pids.current", "pids.max"),
             "blkio": ("blkio.throttle.io_service_bytes_recursive",
                       "blkio.throttle.io_serviced_recursive")}
_V2_FILES = ("memory.current", "memory.max", "memory.stat", "cpu.stat", "pids.current",
             "pids.max", "io.stat")
_ZERO_TIME = "0001-01-01T00:00:00Z"


@attrs.frozen
class Sample:
    """The raw texts of one reading (``files`` by cgroup file name)."""

    time_ns: int
    version: str  # "1" or "2"
    files: Mapping[str, str]
    proc_stat: str
    net_dev: str
    mem_total: int
    cpus: int


def parse_cgroups(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as {controller: path}; the v2 entry is keyed ``""``."""
    found = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            found[controller.removeprefix("name=")] = path
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _v1_files(paths: Mapping[str, str]) -> dict[str, str]:
    files = {}
    for controller, names in _V1_FILES.items():
        directory = _CGROUP_ROOT / controller / paths.get(controller, "").lstrip("/")
        for name in names:
            files[name] = _read(directory / name)
    return files


def _v2_directory(path: str) -> Path:
    unified = _CGROUP_ROOT / "unified"
    base = unified if unified.is_dir() else _CGROUP_ROOT
    return base / path.lstrip("/")


def read_sample(pid: int) -> Sample:
    """One reading of the container whose init is ``pid`` (blocking)."""
    paths = parse_cgroups(_read(Path(f"/proc/{pid}/cgroup")))
    version = "1" if "memory" in paths else "2"
    if version == "1":
        files = _v1_files(paths)
    else:
        directory = _v2_directory(paths.get("", "/"))
        files = {name: _read(directory / name) for name in _V2_FILES}
    meminfo = parse_key_values(_read(Path("/proc/meminfo")).replace(":", " "))
    return Sample(time_ns=time.time_ns(), version=version, files=files,
                  proc_stat=_read(Path("/proc/stat")),
                  net_dev=_read(Path(f"/proc/{pid}/net/dev")),
                  mem_total=meminfo.get("MemTotal", 0) * 1024,
                  cpus=os.cpu_count() or 1)


def parse_key_values(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, cpuacct.stat) as numbers."""
    found = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1].lstrip("-").isdigit():
            found[fields[0]] = int(fields[1])
    return found


def _number(text: str) -> int:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else 0


def system_cpu_ns(proc_stat: str) -> int:
    """The host's CPU time in nanoseconds: the first 7 fields of ``cpu`` (moby)."""
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            return sum(int(field) for field in line.split()[1:8]) * _TICK_NS
    return 0


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """``/proc/<pid>/net/dev`` as Docker's ``networks`` (loopback left out)."""
    networks = {}
    for line in text.splitlines()[2:]:
        name, _, counters = line.partition(":")
        values = [int(value) for value in counters.split()]
        if name.strip() == "lo" or len(values) < 16:
            continue
        networks[name.strip()] = {
            "rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
            "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
            "tx_errors": values[10], "tx_dropped": values[11]}
    return networks


def _blkio_v1(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and ":" in fields[0]:
            major, minor = fields[0].split(":")
            entries.append({"major": int(major), "minor": int(minor), "op": fields[1],
                            "value": int(fields[2])})
    return entries


def _blkio_v2(text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``io.stat`` as moby converts it: bytes and operations per device."""
    service_bytes: list[dict[str, Any]] = []
    serviced: list[dict[str, Any]] = []
    for line in text.splitlines():
        device, *pairs = line.split()
        major, minor = (int(part) for part in device.split(":"))
        values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        for key, op, target in (("rbytes", "read", service_bytes),
                                ("wbytes", "write", service_bytes),
                                ("rios", "read", serviced), ("wios", "write", serviced)):
            if key in values:
                target.append({"major": major, "minor": minor, "op": op,
                               "value": int(values[key])})
    return service_bytes, serviced


def _cpu(sample: Sample) -> dict[str, Any]:
    files = sample.files
    if sample.version == "1":
        ticks = parse_key_values(files["cpuacct.stat"])
        throttled = parse_key_values(files["cpu.stat"])
        usage = {"total_usage": _number(files["cpuacct.usage"]),
                 "percpu_usage": [int(v) for v in files["cpuacct.usage_percpu"].split()],
                 "usage_in_kernelmode": ticks.get("system", 0) * _TICK_NS,
                 "usage_in_usermode": ticks.get("user", 0) * _TICK_NS}
        throttling = (throttled.get("nr_periods", 0), throttled.get("nr_throttled", 0),
                      throttled.get("throttled_time", 0))
    else:
        stat = parse_key_values(files["cpu.stat"])
        usage = {"total_usage": stat.get("usage_usec", 0) * 1000,
                 "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
                 "usage_in_usermode": stat.get("user_usec", 0) * 1000}
        throttling = (stat.get("nr_periods", 0), stat.get("nr_throttled", 0),
                      stat.get("throttled_usec", 0) * 1000)
    return {"cpu_usage": usage, "system_cpu_usage": system_cpu_ns(sample.proc_stat),
            "online_cpus": sample.cpus,
            "throttling_data": dict(zip(("periods", "throttled_periods", "throttled_time"),
                                        throttling, strict=True))}


def _memory(sample: Sample) -> dict[str, Any]:
    files = sample.files
    if sample.version == "1":
        limit = _number(files["memory.limit_in_bytes"])
        return {"usage": _number(files["memory.usage_in_bytes"]),
                "max_usage": _number(files["memory.max_usage_in_bytes"]),
                "stats": parse_key_values(files["memory.stat"]),
                "limit": min(limit, sample.mem_total) if limit else sample.mem_total}
    raw_limit = files["memory.max"].strip()
    limit = int(raw_limit) if raw_limit.isdigit() else sample.mem_total
    return {"usage": _number(files["memory.current"]),
            "stats": parse_key_values(files["memory.stat"]),
            "limit": min(limit, sample.mem_total)}


def _blkio(sample: Sample) -> dict[str, Any]:
    if sample.version == "1":
        service_bytes = _blkio_v1(sample.files["blkio.throttle.io_service_bytes_recursive"])
        serviced = _blkio_v1(sample.files["blkio.throttle.io_serviced_recursive"])
    else:
        service_bytes, serviced = _blkio_v2(sample.files["io.stat"])
    empty = None
    return {"io_service_bytes_recursive": service_bytes or empty,
            "io_serviced_recursive": serviced or empty, "io_queue_recursive": empty,
            "io_service_time_recursive": empty, "io_wait_time_recursive": empty,
            "io_merged_recursive": empty, "io_time_recursive": empty,
            "sectors_recursive": empty}


def _empty_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                          "usage_in_usermode": 0}, "throttling_data": {
        "periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def _pids(sample: Sample) -> dict[str, Any]:
    current = _number(sample.files["pids.current"])
    limit_text = sample.files["pids.max"].strip()
    pids: dict[str, Any] = {"current": current}
    if limit_text.isdigit():
        pids["limit"] = int(limit_text)
    return pids


def stats_document(name: str, container_id: str, sample: Sample,
                   previous: Sample | None) -> dict[str, Any]:
    """Docker's ``ContainerStats`` from ``sample`` (``previous``: the precpu one)."""
    return {"read": rfc3339_nano(sample.time_ns),
            "preread": rfc3339_nano(previous.time_ns) if previous else _ZERO_TIME,
            "pids_stats": _pids(sample), "blkio_stats": _blkio(sample),
            "num_procs": 0, "storage_stats": {}, "cpu_stats": _cpu(sample),
            "precpu_stats": _cpu(previous) if previous else _empty_cpu(),
            "memory_stats": _memory(sample), "name": name, "id": container_id,
            "networks": parse_net_dev(sample.net_dev)}


def zero_document(name: str, container_id: str) -> dict[str, Any]:
    """What Docker answers for a container that does not run."""
    return {"read": _ZERO_TIME, "preread": _ZERO_TIME, "pids_stats": {},
            "blkio_stats": {key: None for key in (
                "io_service_bytes_recursive", "io_serviced_recursive",
                "io_queue_recursive", "io_service_time_recursive",
                "io_wait_time_recursive", "io_merged_recursive", "io_time_recursive",
                "sectors_recursive")},
            "num_procs": 0, "storage_stats": {}, "cpu_stats": _empty_cpu(),
            "precpu_stats": _empty_cpu(), "memory_stats": {}, "name": name,
            "id": container_id}

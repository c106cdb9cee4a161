"""HostConfig settings handed to the runtime as they are: checked at create with
Docker's messages, turned into :class:`~dockertw.runtime.spec.Tuning` at start.

Covers ``--ulimit``, ``--sysctl``, ``--security-opt`` (see :mod:`.security`), ``--shm-size``,
``--oom-score-adj``, ``--cpu-quota``/``--cpu-period``, ``--cpuset-*``,
``--memory-swap``/``--memory-reservation``/``--memory-swappiness``,
``--oom-kill-disable``, ``--blkio-weight`` and ``--init``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from typing import Any

from dockertw.daemon.containers.records.security import (
    parse_security_options,
    seccomp_profile,
)
from dockertw.errdefs import InvalidParameter
from dockertw.runtime.spec import Tuning

__all__ = ["check_tuning", "tuning_of", "find_init"]

_ULIMITS = frozenset({"as", "core", "cpu", "data", "fsize", "locks", "memlock",
                      "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime",
                      "sigpending", "stack"})
_IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                          "kernel.shm_rmid_forced"})
_CPUSET = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")
_MIN_MEMORY = 6 * 1024 * 1024


def _int(host: Mapping[str, Any], key: str) -> int:
    value = host.get(key) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParameter(f"invalid JSON: {key} must be an integer")
    return value


def check_tuning(host: Mapping[str, Any], network_mode: str) -> None:
    """Refuse what Docker refuses, with its messages (400)."""
    _check_cpu(host)
    _check_memory(host)
    _check_ulimits(host.get("Ulimits") or [])
    _check_sysctls(host.get("Sysctls") or {}, network_mode)
    seccomp_profile(parse_security_options(host.get("SecurityOpt")),
                    bool(host.get("Privileged")))
    if _int(host, "ShmSize") < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    if not -1000 <= _int(host, "OomScoreAdj") <= 1000:
        raise InvalidParameter(f"Invalid value {host.get('OomScoreAdj')}, range for oom "
                               "score adj is [-1000, 1000]")
    weight = _int(host, "BlkioWeight")
    if weight and not 10 <= weight <= 1000:
        raise InvalidParameter("Range of blkio weight is from 10 to 1000")
    if host.get("Init") and not find_init():
        raise InvalidParameter("--init needs docker-init or tini-static on the daemon's "
                               "PATH (Debian package tini)")


def _check_cpu(host: Mapping[str, Any]) -> None:
    if _int(host, "NanoCpus"):
        for key, name in (("CpuPeriod", "CPU Period"), ("CpuQuota", "CPU Quota")):
            if _int(host, key):
                raise InvalidParameter(f"Conflicting options: Nano CPUs and {name} cannot "
                                       "both be set")
    period = _int(host, "CpuPeriod")
    if period and not 1000 <= period <= 1_000_000:
        raise InvalidParameter("CPU cfs period can not be less than 1ms (i.e. 1000) or "
                               "larger than 1s (i.e. 1000000)")
    quota = _int(host, "CpuQuota")
    if quota and quota < 1000:
        raise InvalidParameter("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for key in ("CpusetCpus", "CpusetMems"):
        value = host.get(key) or ""
        if value and (not isinstance(value, str) or not _CPUSET.match(value)):
            what = "cpuset cpus" if key == "CpusetCpus" else "cpuset mems"
            raise InvalidParameter(f"Invalid value {value} for {what}")


def _check_memory(host: Mapping[str, Any]) -> None:
    memory, swap = _int(host, "Memory"), _int(host, "MemorySwap")
    if swap and swap != -1:
        if not memory:
            raise InvalidParameter("You should always set the Memory limit when using "
                                   "Memoryswap limit, see usage")
        if swap < memory:
            raise InvalidParameter("Minimum memoryswap limit should be larger than memory "
                                   "limit, see usage")
    reservation = _int(host, "MemoryReservation")
    if reservation and reservation < _MIN_MEMORY:
        raise InvalidParameter("Minimum memory reservation allowed is 6MB")
    if reservation and memory and memory < reservation:
        raise InvalidParameter("Minimum memory limit can not be less than memory "
                               "reservation limit, see usage")
    swappiness = host.get("MemorySwappiness")
    if swappiness is not None and swappiness != -1 and not (
            isinstance(swappiness, int) and 0 <= swappiness <= 100):
        raise InvalidParameter(f"Invalid value: {swappiness}, valid memory swappiness "
                               "range is 0-100")


def _check_ulimits(ulimits: Any) -> None:
    if not isinstance(ulimits, list):
        raise InvalidParameter("invalid JSON: Ulimits must be a list")
    for ulimit in ulimits:
        if not isinstance(ulimit, dict):
            raise InvalidParameter("invalid JSON: Ulimits must hold objects")
        name = ulimit.get("Name")
        if name not in _ULIMITS:
            raise InvalidParameter(f"invalid ulimit type: {name}")
        soft, hard = ulimit.get("Soft"), ulimit.get("Hard")
        if not isinstance(soft, int) or not isinstance(hard, int) or soft > hard:
            raise InvalidParameter(f"invalid ulimit {name}: soft limit must be less than "
                                   "or equal to hard limit")


def _check_sysctls(sysctls: Any, network_mode: str) -> None:
    if not isinstance(sysctls, dict):
        raise InvalidParameter("invalid JSON: Sysctls must be an object")
    for name in sysctls:
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            continue
        if name.startswith("net."):
            if network_mode == "host":
                raise InvalidParameter(f"sysctl '{name}' not allowed in host network "
                                       "namespace")
            continue
        raise InvalidParameter(f"sysctl '{name}' is not whitelisted")


def find_init() -> str:
    """The static init binary ``--init`` mounts into containers ("" when missing)."""
    return shutil.which("docker-init") or shutil.which("tini-static") or ""


def tuning_of(host: Mapping[str, Any]) -> Tuning:
    """The runtime settings of a HostConfig checked by :func:`check_tuning`."""
    security = parse_security_options(host.get("SecurityOpt"))
    privileged = bool(host.get("Privileged"))
    return Tuning(
        oom_score_adj=_int(host, "OomScoreAdj"),
        sysctls=tuple(sorted((str(k), str(v)) for k, v in
                             (host.get("Sysctls") or {}).items())),
        rlimits=tuple((u["Name"], u["Soft"], u["Hard"]) for u in host.get("Ulimits") or []),
        no_new_privileges=security.no_new_privileges,
        seccomp=seccomp_profile(security, privileged),
        writable_cgroups=privileged if security.writable_cgroups is None
        else security.writable_cgroups,
        shm_size=_int(host, "ShmSize"), cpu_quota=_int(host, "CpuQuota"),
        cpu_period=_int(host, "CpuPeriod"), cpuset_cpus=host.get("CpusetCpus") or "",
        cpuset_mems=host.get("CpusetMems") or "", memory_swap=_int(host, "MemorySwap"),
        memory_reservation=_int(host, "MemoryReservation"),
        memory_swappiness=(None if host.get("MemorySwappiness") in (None, -1)
                           else int(host["MemorySwappiness"])),
        oom_kill_disable=bool(host.get("OomKillDisable")),
        blkio_weight=_int(host, "BlkioWeight"),
        init_path=find_init() if host.get("Init") and not host.get("PidMode") else "",
    )

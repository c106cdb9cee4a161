"""What a build is asked to do (the query of ``POST /build``) and where it reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import attrs

__all__ = ["BuildOptions", "BuildOutput", "PruneOptions", "host_config"]


class BuildOutput(Protocol):
    """Where a build's messages go, in Docker's JSON-message terms (called in the
    reactor thread)."""

    def stream(self, text: str) -> None: ...
    def aux(self, value: Any, id: str = "") -> None: ...  # noqa: A002 - Docker's name
    def status(self, text: str, id: str = "") -> None: ...  # noqa: A002 - Docker's name
    def progress(self, action: str, current: int, total: int,
                 id: str = "") -> None: ...  # noqa: A002


@attrs.frozen
class BuildOptions:
    """The classic builder's options (moby's ``ImageBuildOptions``)."""

    tags: tuple[str, ...] = ()
    dockerfile: str = ""
    remote: str = ""
    no_cache: bool = False
    cache_from: tuple[str, ...] | None = None
    pull: bool = False
    remove: bool = True
    force_remove: bool = False
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    cgroup_parent: str = ""
    shm_size: int = 0
    ulimits: tuple[Mapping[str, Any], ...] = ()
    build_args: Mapping[str, str | None] = attrs.field(factory=dict)
    labels: Mapping[str, str] = attrs.field(factory=dict)
    network_mode: str = ""
    extra_hosts: tuple[str, ...] = ()
    platform: str = ""
    target: str = ""
    squash: bool = False
    isolation: str = ""
    auth_configs: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PruneOptions:
    """``POST /build/prune``: ``all``, the ``until`` filter (a time or a Go duration)
    and how much to keep."""

    all: bool = False
    until: str = ""
    keep_storage: int = 0


def host_config(options: BuildOptions) -> dict[str, Any]:
    """The HostConfig of every build container (moby's ``hostConfigFromOptions``):
    the build's resources, network mode and extra hosts, no log kept."""
    config: dict[str, Any] = {
        "ShmSize": options.shm_size, "CgroupParent": options.cgroup_parent,
        "CpuShares": options.cpu_shares, "CpuPeriod": options.cpu_period,
        "CpuQuota": options.cpu_quota, "CpusetCpus": options.cpuset_cpus,
        "CpusetMems": options.cpuset_mems, "Memory": options.memory,
        "MemorySwap": options.memory_swap, "Ulimits": [dict(u) for u in options.ulimits],
        "NetworkMode": options.network_mode, "LogConfig": {"Type": "none", "Config": {}},
    }
    if options.extra_hosts:
        config["ExtraHosts"] = list(options.extra_hosts)
    return {key: value for key, value in config.items() if value not in ("", 0, [])}

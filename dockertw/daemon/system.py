"""The engine's system facts: ``/version``, ``/info`` and ``/system/df`` in Docker's shapes."""

from __future__ import annotations

import os
import platform
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed

from dockertw import __version__
from dockertw.daemon.events import EventBus
from dockertw.daemon.host import HostFacts, go_arch
from dockertw.daemon.storage import atomic_write
from dockertw.runtime.probe import RuntimeInfo
from dockertw.runtime.rootcheck import CHROOT_WARNING

__all__ = ["SystemConfig", "SystemService", "ImageFigures", "ContainerFigures",
           "load_engine_id"]


def _security_options(host: HostFacts) -> list[str]:
    """``SecurityOptions`` of ``/info``, in moby's order (no AppArmor or SELinux)."""
    options = ["name=seccomp,profile=default"] if host.seccomp else []
    return options + (["name=cgroupns"] if host.cgroup_version == "2" else [])


class ImageFigures(Protocol):
    """What ``/info`` and ``/system/df`` ask the image service (cheap, no I/O)."""

    def image_count(self) -> int: ...
    def image_disk_usage(self) -> tuple[int, list[dict[str, Any]]]: ...


class _NoImages:
    def image_count(self) -> int:
        return 0

    def image_disk_usage(self) -> tuple[int, list[dict[str, Any]]]:
        return 0, []


class ContainerFigures(Protocol):
    """What ``/info`` (cheap, no I/O) and ``/system/df`` ask the container service."""

    def container_counts(self) -> tuple[int, int, int]: ...
    def container_disk_usage(self) -> Deferred[list[dict[str, Any]]]: ...


class _NoContainers:
    def container_counts(self) -> tuple[int, int, int]:
        return 0, 0, 0

    def container_disk_usage(self) -> Deferred[list[dict[str, Any]]]:
        return succeed([])


@attrs.frozen
class SystemConfig:
    root: Path
    max_api_version: str
    min_api_version: str
    experimental: bool = False
    registry: dict[str, Any] | None = None
    live_restore: bool = False


def load_engine_id(root: Path) -> str:
    """The daemon's stable ID, made on first start and kept in ``ROOT/engine-id``."""
    path = root / "engine-id"
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    engine_id = str(uuid.uuid4())
    atomic_write(path, engine_id.encode() + b"\n", mode=0o644)
    return engine_id


def _enabled(sysctl: str) -> bool:
    try:
        return Path(sysctl).read_text().strip() == "1"
    except OSError:
        return False


def _rfc3339_nano(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


class BuildCacheFigures(Protocol):
    def cache_usage(self) -> Deferred[list[dict[str, Any]]]: ...


class VolumeFigures(Protocol):
    def disk_usage(self) -> Deferred[list[dict[str, Any]]]: ...


class SystemService:
    """Answers the system questions.

    Image and container figures come from their services (no container runs yet, so
    every container counts as stopped, as a created one does in Docker); volume
    figures are zero until their store exists.
    """

    def __init__(self, config: SystemConfig, host: HostFacts, runtime: RuntimeInfo,
                 events: EventBus, engine_id: str, images: ImageFigures | None = None,
                 containers: ContainerFigures | None = None,
                 volumes: VolumeFigures | None = None,
                 build_cache: BuildCacheFigures | None = None,
                 live: Callable[[], dict[str, Any]] | None = None) -> None:
        self._config = config
        self._live = live or dict
        self._volumes = volumes
        self._build_cache = build_cache
        self._containers: ContainerFigures = (containers if containers is not None
                                              else _NoContainers())
        self._images: ImageFigures = images if images is not None else _NoImages()
        self._host = host
        self._runtime = runtime
        self._events = events
        self._engine_id = engine_id
        self._version = self._build_version()
        self._static_info = self._build_static_info()

    @property
    def engine_id(self) -> str:
        return self._engine_id

    @property
    def host(self) -> HostFacts:
        return self._host

    def version(self) -> dict[str, Any]:
        return self._version

    def _build_version(self) -> dict[str, Any]:
        host, config = self._host, self._config
        details = {
            "ApiVersion": config.max_api_version,
            "Arch": go_arch(host.machine),
            "BuildTime": "",
            "Experimental": "true" if config.experimental else "false",
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "KernelVersion": host.kernel_version,
            "MinAPIVersion": config.min_api_version,
            "Os": "linux",
        }
        components: list[dict[str, Any]] = [
            {"Name": "Engine", "Version": __version__, "Details": details}
        ]
        if self._runtime.found:
            components.append({"Name": self._runtime.name, "Version": self._runtime.version,
                               "Details": {"GitCommit": self._runtime.commit}})
        version: dict[str, Any] = {
            "Platform": {"Name": f"dockertw {__version__}"},
            "Components": components,
            "Version": __version__,
            "ApiVersion": config.max_api_version,
            "MinAPIVersion": config.min_api_version,
            "GitCommit": "",
            "GoVersion": details["GoVersion"],
            "Os": "linux",
            "Arch": details["Arch"],
            "KernelVersion": host.kernel_version,
            "BuildTime": "",
        }
        if config.experimental:
            version["Experimental"] = True
        return version

    def _build_static_info(self) -> dict[str, Any]:
        """The parts of ``/info`` that do not change while the daemon runs."""
        host, runtime = self._host, self._runtime
        info: dict[str, Any] = {
            "ID": self._engine_id,
            "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0,
            "ContainersStopped": 0, "Images": 0,
            "Driver": "overlay2", "DriverStatus": [["Backing Filesystem", "overlayfs"]],
            "DockerRootDir": str(self._config.root),
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                        "Authorization": None, "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": False, "KernelMemory": False,
            "KernelMemoryTCP": False, "CpuCfsPeriod": True, "CpuCfsQuota": True,
            "CPUShares": True, "CPUSet": True, "PidsLimit": True, "OomKillDisable": False,
            "IPv4Forwarding": host.ipv4_forwarding,
            "BridgeNfIptables": _enabled("/proc/sys/net/bridge/bridge-nf-call-iptables"),
            "BridgeNfIp6tables": _enabled("/proc/sys/net/bridge/bridge-nf-call-ip6tables"),
            "Debug": False,
            "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
            "CgroupVersion": host.cgroup_version,
            "KernelVersion": host.kernel_version, "OperatingSystem": host.operating_system,
            "OSVersion": host.os_version, "OSType": "linux",
            "Architecture": host.machine, "NCPU": host.cpus, "MemTotal": host.mem_total,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": self._config.registry or {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {}, "Mirrors": []},
            "GenericResources": None,
            "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
            "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
            "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
            "Name": host.hostname, "Labels": [],
            "ExperimentalBuild": self._config.experimental,
            "ServerVersion": __version__,
            "Runtimes": {runtime.name: {"path": runtime.path}},
            "DefaultRuntime": runtime.name,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": self._config.live_restore, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": runtime.commit, "Expected": runtime.commit},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": _security_options(host),
            "Warnings": self._warnings(),
        }
        return info

    def info(self) -> dict[str, Any]:
        """``GET /info``: the host, the daemon's settings and live counters."""
        return {
            **self._static_info,
            **self._live(),
            "Images": self._images.image_count(),
            **self._container_counts(),
            "NFd": _open_descriptors(), "NGoroutines": threading.active_count(),
            "SystemTime": _rfc3339_nano(datetime.now(UTC)),
            "NEventsListener": self._events.listener_count,
        }

    def _container_counts(self) -> dict[str, int]:
        running, paused, stopped = self._containers.container_counts()
        return {"Containers": running + paused + stopped, "ContainersRunning": running,
                "ContainersPaused": paused, "ContainersStopped": stopped}

    def _warnings(self) -> list[str]:
        found = [CHROOT_WARNING] if self._host.chrooted else []
        if self._runtime.found:
            return found
        return found + [f"WARNING: the OCI runtime {self._runtime.path!r} was not found; "
                        "containers cannot start"]

    def disk_usage(self) -> Deferred[dict[str, Any]]:
        """``GET /system/df``: layers, images, containers, volumes and build cache."""
        layers_size, images = self._images.image_disk_usage()

        async def assemble() -> dict[str, Any]:
            containers = await self._containers.container_disk_usage()
            volumes = await self._volumes.disk_usage() if self._volumes else []
            cache = await self._build_cache.cache_usage() if self._build_cache else []
            return {"LayersSize": layers_size, "Images": images, "Containers": containers,
                    "Volumes": volumes, "BuildCache": cache}

        return ensureDeferred(assemble())

"""The engine: every backend the API routers talk to, built from one configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from dockertw import versions
from dockertw.daemon.builder.pulls import RegistryPuller
from dockertw.daemon.builder.service import BuilderService
from dockertw.daemon.containers.service import ContainerService
from dockertw.daemon.distribution.config import RegistryConfig
from dockertw.daemon.distribution.service import DistributionService
from dockertw.daemon.events import EventBus
from dockertw.daemon.host import go_arch, read_host_facts
from dockertw.daemon.images.service import ImageService
from dockertw.daemon.storage import ensure_directory, lock_root
from dockertw.daemon.system import SystemConfig, SystemService, load_engine_id
from dockertw.daemon.volumes.service import VolumeService
from dockertw.runtime.probe import probe_runtime

__all__ = ["EngineConfig", "Engine"]


@attrs.frozen
class EngineConfig:
    root: Path = Path("/var/lib/dockertw")
    runtime: str = "runc"
    cgroup_parent: str = "dockertw"
    experimental: bool = False
    max_api_version: str = versions.MAX_API_VERSION
    min_api_version: str = versions.MIN_API_VERSION
    registry: RegistryConfig = RegistryConfig()
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    live_restore: bool = False  # containers outlive the daemon (the holder keeps them)


@attrs.define
class Engine:
    """The daemon's state and services; knows nothing of HTTP."""

    config: EngineConfig
    events: EventBus
    system: SystemService
    images: ImageService
    containers: ContainerService
    volumes: VolumeService
    distribution: DistributionService
    builder: BuilderService

    @classmethod
    def open(cls, config: EngineConfig, reactor: Any = None) -> Engine:
        """Create the state root if needed, load the stores and assemble the services.

        ``reactor`` (default: the global one) runs the stores' worker threads.
        """
        if reactor is None:
            from twisted.internet import reactor
        root = ensure_directory(config.root)
        lock_root(root)  # held until the process exits
        events = EventBus()
        host = read_host_facts()
        images = ImageService.open(root, events, reactor, architecture=go_arch(host.machine))
        runtime = probe_runtime(config.runtime)
        volumes = VolumeService.open(root, events, reactor)
        containers = ContainerService.open(root, images.store, events, reactor,
                                           runtime=runtime.name,
                                           cgroup_version=host.cgroup_version,
                                           cgroup_parent=config.cgroup_parent,
                                           machine_memory=host.mem_total,
                                           volumes=volumes,
                                           live_restore=config.live_restore)
        containers.snapshots.commit_image = images.commit
        images.store.delete_unused_layers()  # what an interrupted pull or load left
        distribution = DistributionService.open(
            images, config.registry, reactor, architecture=go_arch(host.machine),
            max_downloads=config.max_concurrent_downloads,
            max_uploads=config.max_concurrent_uploads)
        builder = BuilderService.open(root, images, containers, events, reactor)
        builder.puller = RegistryPuller(distribution)
        system = SystemService(
            SystemConfig(root=root, max_api_version=config.max_api_version,
                         min_api_version=config.min_api_version,
                         experimental=config.experimental,
                         registry=config.registry.view()),
            host=host,
            runtime=runtime,
            events=events,
            engine_id=load_engine_id(root),
            images=images,
            containers=containers,
            volumes=volumes,
            build_cache=builder,
        )
        return cls(config=config, events=events, system=system, images=images,
                   containers=containers, volumes=volumes, distribution=distribution,
                   builder=builder)

    def reload(self) -> None:
        """Re-read the configuration (on SIGHUP) and report it as Docker does.

        Nothing is re-read yet: every setting is a command-line option.
        """
        self.events.emit("daemon", "reload", self.system.engine_id,
                         name=self.system.host.hostname)

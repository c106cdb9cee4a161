"""The engine: every backend the API routers talk to, built from one configuration."""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from dockertw.daemon.live import LiveSettings
from dockertw.daemon.networks.service import NetworkConfig, NetworkService
from dockertw.daemon.storage import ensure_directory, lock_root
from dockertw.daemon.system import SystemConfig, SystemService, load_engine_id
from dockertw.daemon.volumes.service import VolumeService
from dockertw.runtime.probe import probe_runtime
from dockertw.runtime.runtimes import STOCK_RUNTIME, OciRuntime, RuntimeTable

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
    exec_root: Path | None = None  # runtime state; default: under root
    runtimes: tuple[OciRuntime, ...] = ()  # besides the stock runc (--add-runtime)
    default_runtime: str = STOCK_RUNTIME
    default_ulimits: tuple[Mapping[str, Any], ...] = ()  # HostConfig.Ulimits entries
    default_log: Mapping[str, Any] = attrs.field(  # HostConfig.LogConfig of containers
        factory=lambda: {"Type": "json-file", "Config": {}})
    debug: bool = False
    log_level: str = "info"
    labels: tuple[str, ...] = ()
    network: NetworkConfig = NetworkConfig()
    live_restore: bool = False  # containers outlive the daemon (the holder keeps them)

    def live_settings(self) -> LiveSettings:
        """The reloadable settings as this configuration starts them."""
        live = LiveSettings(RuntimeTable(self.runtime, self.runtimes, self.default_runtime),
                            labels=list(self.labels), log_level=self.log_level,
                            logging_driver=self.default_log["Type"])
        live.set_debug(self.debug)
        return live


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
    live: LiveSettings
    networks: NetworkService

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
        live = config.live_settings()
        volumes = VolumeService.open(root, events, reactor)
        networks = NetworkService.open(root, config.network, events, reactor)
        containers = ContainerService.open(root, images.store, events, reactor,
                                           runtimes=live.runtimes,
                                           exec_root=config.exec_root,
                                           default_ulimits=config.default_ulimits,
                                           default_log=config.default_log,
                                           cgroup_version=host.cgroup_version,
                                           cgroup_parent=config.cgroup_parent,
                                           machine_memory=host.mem_total,
                                           volumes=volumes, networks=networks,
                                           live_restore=config.live_restore)
        networks.start()
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
                         registry=config.registry.view(),
                         live_restore=config.live_restore),
            host=host,
            runtime=runtime,
            events=events,
            engine_id=load_engine_id(root),
            images=images,
            containers=containers,
            volumes=volumes,
            build_cache=builder,
            live=lambda: {**live.info(), "RegistryConfig": distribution.config.view()},
        )
        return cls(config=config, events=events, system=system, images=images,
                   containers=containers, volumes=volumes, distribution=distribution,
                   builder=builder, live=live, networks=networks)

    def reload(self, values: Mapping[str, Any] | None = None) -> None:
        """Apply reloaded settings (by daemon.json key, read again on SIGHUP) and
        report it as Docker does; a bad value raises and changes nothing."""
        values = values or {}
        registry = self._reloaded_registry(values)
        self.live.apply(values)
        self.distribution.reconfigure(registry)
        attributes = {**self.live.event_attributes(),
                      "registry-mirrors": json.dumps(list(registry.mirrors)),
                      "insecure-registries": json.dumps(list(registry.insecure))}
        self.events.emit("daemon", "reload", self.system.engine_id,
                         name=self.system.host.hostname, **attributes)

    def _reloaded_registry(self, values: Mapping[str, Any]) -> RegistryConfig:
        """The registry options with the reloaded mirrors and insecure registries."""
        current = self.distribution.config
        return RegistryConfig.build(values.get("registry-mirrors", current.mirrors),
                                    values.get("insecure-registries", current.insecure),
                                    current.certs_dir, current.hub_url)

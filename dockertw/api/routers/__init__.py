"""One router module per resource; :func:`all_routers` lists them in matching order."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from dockertw.api.router import Router
from dockertw.api.routers.build import BuildRouter
from dockertw.api.routers.containers import ContainerRouter
from dockertw.api.routers.distribution import DistributionRouter
from dockertw.api.routers.exec import ExecRouter
from dockertw.api.routers.images import ImageRouter
from dockertw.api.routers.networks import NetworkRouter
from dockertw.api.routers.system import SystemRouter
from dockertw.api.routers.unsupported import UnsupportedRouter
from dockertw.api.routers.volumes import VolumeRouter
from dockertw.daemon.engine import Engine

__all__ = ["all_routers"]


def all_routers(engine: Engine, clock: IReactorTime) -> list[Router]:
    """Every router of the daemon, wired to ``engine``'s backends."""
    containers = engine.containers
    return [
        SystemRouter(engine.system, engine.events, clock),
        ContainerRouter(containers, containers.runs, containers.copies, containers.snapshots,
                        containers.monitor, clock),
        ExecRouter(containers.execs),
        ImageRouter(engine.images, engine.distribution),
        DistributionRouter(engine.distribution),
        BuildRouter(engine.builder, engine.config.experimental),
        VolumeRouter(engine.volumes),
        NetworkRouter(engine.networks),
        UnsupportedRouter(),
    ]

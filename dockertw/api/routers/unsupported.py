"""Groups dockertw does not implement, answered with errors a Docker client can show.

Swarm objects answer as a Docker node outside a swarm does (503); plugins answer as a
daemon with none installed; checkpoints are experimental; BuildKit sessions are 501.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from dockertw.api.router import ApiCall, Route
from dockertw.errdefs import NotFound, Unavailable

__all__ = ["UnsupportedRouter", "NOT_A_SWARM_MANAGER"]

NOT_A_SWARM_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)

_SWARM_ROUTES = (
    ("GET", "/swarm"), ("POST", "/swarm/update"), ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/nodes"), ("GET", "/nodes/<id>"), ("DELETE", "/nodes/<id>"),
    ("POST", "/nodes/<id>/update"),
    ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/<id>"),
    ("DELETE", "/services/<id>"), ("POST", "/services/<id>/update"),
    ("GET", "/services/<id>/logs"),
    ("GET", "/tasks"), ("GET", "/tasks/<id>"), ("GET", "/tasks/<id>/logs"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/<id>"),
    ("DELETE", "/secrets/<id>"), ("POST", "/secrets/<id>/update"),
    ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/<id>"),
    ("DELETE", "/configs/<id>"), ("POST", "/configs/<id>/update"),
)

_NAMED_PLUGIN_ROUTES = (
    ("GET", "/plugins/<path:name>/json"), ("DELETE", "/plugins/<path:name>"),
    ("POST", "/plugins/<path:name>/enable"), ("POST", "/plugins/<path:name>/disable"),
    ("POST", "/plugins/<path:name>/upgrade"), ("POST", "/plugins/<path:name>/push"),
    ("POST", "/plugins/<path:name>/set"),
)


class UnsupportedRouter:
    """Routes for swarm, plugins, checkpoints and sessions."""

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/swarm/init", self.swarm_mode_unsupported),
            Route("POST", "/swarm/join", self.swarm_mode_unsupported),
            Route("POST", "/swarm/leave", self.not_in_swarm),
            *(Route(method, path, self.not_a_manager) for method, path in _SWARM_ROUTES),
            Route("GET", "/plugins", self.no_plugins),
            Route("GET", "/plugins/privileges", self.plugins_unsupported),
            Route("POST", "/plugins/pull", self.plugins_unsupported),
            Route("POST", "/plugins/create", self.plugins_unsupported),
            *(Route(method, path, self.no_such_plugin)
              for method, path in _NAMED_PLUGIN_ROUTES),
            Route("GET", "/containers/<path:name>/checkpoints", self.checkpoints_unsupported,
                  experimental=True),
            Route("POST", "/containers/<path:name>/checkpoints", self.checkpoints_unsupported,
                  experimental=True),
            Route("DELETE", "/containers/<path:name>/checkpoints/<checkpoint>",
                  self.checkpoints_unsupported, experimental=True),
            Route("POST", "/session", self.sessions_unsupported),
        ]

    def not_a_manager(self, call: ApiCall) -> NoReturn:
        raise Unavailable(NOT_A_SWARM_MANAGER)

    def not_in_swarm(self, call: ApiCall) -> NoReturn:
        raise Unavailable("This node is not part of a swarm")

    def swarm_mode_unsupported(self, call: ApiCall) -> NoReturn:
        raise NotImplementedError("dockertw does not support swarm mode")

    def no_plugins(self, call: ApiCall) -> list[object]:
        call.filters({"capability", "enable"})
        return []

    def no_such_plugin(self, call: ApiCall) -> NoReturn:
        raise NotFound(f'plugin "{call.params["name"]}" not found')

    def plugins_unsupported(self, call: ApiCall) -> NoReturn:
        raise NotImplementedError("dockertw does not support plugins")

    def checkpoints_unsupported(self, call: ApiCall) -> NoReturn:
        raise NotImplementedError("dockertw does not support checkpoints")

    def sessions_unsupported(self, call: ApiCall) -> NoReturn:
        raise NotImplementedError("dockertw does not support BuildKit sessions")

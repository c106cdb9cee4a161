"""The HTTP side of the daemon: routers, version middleware, errors and streams.

Nothing here touches files, processes or runc: handlers parse a request, call their
backend in :mod:`dockertw.daemon` and serialise what it returns.
"""

from dockertw.api.router import (
    ApiCall,
    ApiConfig,
    ApiResource,
    Route,
    Router,
    build_app,
    build_resource,
)

__all__ = ["ApiCall", "ApiConfig", "ApiResource", "Route", "Router", "build_app",
           "build_resource"]

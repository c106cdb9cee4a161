"""The Twisted ``Site`` each listener serves: one log line per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.web import server
from twisted.web.resource import IResource

__all__ = ["ApiRequest", "ApiSite"]


class ApiRequest(server.Request):
    """A request that remembers when it arrived, and that a handler can hijack."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrived = time.monotonic()
        self.hijacked = False

    def mark_hijacked(self, code: int) -> None:
        """The connection now carries raw bytes: never write HTTP on it again."""
        self.hijacked = True
        self.code = code
        self.startedWriting = True
        if self.channel is not None and self.channel.factory is not None:
            self.channel.factory.log(self)

    def write(self, data: bytes) -> None:
        if not self.hijacked:
            super().write(data)

    def finish(self) -> None:
        if self.hijacked:
            self.finished = True
            return
        super().finish()


class ApiSite(server.Site):
    """A site named after its listener; logs listener, method, path, status, duration."""

    requestFactory = ApiRequest
    noisy = False
    _log = Logger()

    def __init__(self, resource: IResource, listener: str,
                 on_stop: Callable[[], None] | None = None) -> None:
        super().__init__(resource)
        self.listener = listener
        self.on_stop = on_stop

    def stopFactory(self) -> None:
        """The last port serving this site closed; tell whoever watches the listener."""
        super().stopFactory()
        if self.on_stop is not None:
            self.on_stop()

    def log(self, request: ApiRequest) -> None:  # type: ignore[override]
        # Formatted here, once: letting the logger format the fields costs twice as much.
        elapsed_ms = (time.monotonic() - request.arrived) * 1000.0
        method = request.method.decode("ascii", "replace")
        path = request.uri.decode("utf-8", "replace")
        self._log.info("{line}", line=f"{self.listener} {method} {path} {request.code} "
                                       f"{elapsed_ms:.1f}ms")

"""API version negotiation: one ping, shared by every call that needs a version."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import attrs
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.python.failure import Failure

from dockertw import versions

__all__ = ["PingResult", "Negotiator", "parse_version_setting"]


@attrs.frozen
class PingResult:
    api_version: str
    os_type: str = ""
    experimental: bool = False
    builder_version: str = ""


def parse_version_setting(text: str) -> str:
    """``DOCKER_API_VERSION``: trimmed, optional ``v``, must be ``MAJOR.MINOR``."""
    value = text.strip()
    value = value[1:] if value.startswith("v") else value
    if not versions.is_valid(value):
        raise ValueError(f"invalid API version ({text}): must be formatted <major>.<minor>")
    return value


class Negotiator:
    """Settles the API version once: ``min(client maximum, daemon's Api-Version)``.

    A pinned version turns negotiation off.  Concurrent first calls share one ping; a
    failed ping is not remembered, so the next call tries again.
    """

    def __init__(self, ping: Callable[[], Coroutine[Any, Any, PingResult]], maximum: str,
                 pinned: str | None = None) -> None:
        self._ping = ping
        self._maximum = maximum
        self._settled: str | None = pinned
        self._waiting: list[Deferred[str]] | None = None

    @property
    def settled(self) -> str | None:
        return self._settled

    def version(self) -> Deferred[str]:
        if self._settled is not None:
            return succeed(self._settled)
        waiter: Deferred[str] = Deferred()
        if self._waiting is None:
            self._waiting = [waiter]
            ensureDeferred(self._ping()).addCallbacks(self._done, self._failed)
        else:
            self._waiting.append(waiter)
        return waiter

    def negotiate(self, ping: PingResult) -> str:
        """The version to use with a daemon that answered ``ping``; never upgrades."""
        server = ping.api_version or "1.24"
        return server if versions.is_less(server, self._maximum) else self._maximum

    def _done(self, ping: PingResult) -> None:
        self._settled = self.negotiate(ping)
        waiting, self._waiting = self._waiting or [], None
        for waiter in waiting:
            waiter.callback(self._settled)

    def _failed(self, failure: Failure) -> None:
        waiting, self._waiting = self._waiting or [], None
        for waiter in waiting:
            waiter.errback(failure)

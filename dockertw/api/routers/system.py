"""System routes: ping, version, info, events, disk usage."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from dockertw.api import httputils
from dockertw.api.responses import Empty, Text
from dockertw.api.router import ApiCall, Route
from dockertw.api.versions import since
from dockertw.api.views import system as views
from dockertw.daemon.events import EVENT_FILTERS, Event
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters

__all__ = ["SystemRouter", "SystemBackend", "EventsBackend", "parse_timestamp"]


class SystemBackend(Protocol):
    def version(self) -> dict[str, Any]: ...
    def info(self) -> dict[str, Any]: ...
    def disk_usage(self) -> Deferred[dict[str, Any]]: ...


class EventsBackend(Protocol):
    def recent(self, filters: Filters, since_ns: int, until_ns: int | None) -> list[Event]: ...
    def subscribe(self, filters: Filters, deliver: Any) -> Any: ...


_PING_HEADERS = (
    (b"cache-control", b"no-cache, no-store, must-revalidate"),
    (b"pragma", b"no-cache"),
    (b"builder-version", b"1"),  # the classic builder (moby with features.buildkit=false)
    (b"swarm", b"inactive"),
)
_PONG, _PONG_HEAD = Text(b"OK"), Text(b"")  # immutable: one of each serves every ping


def parse_timestamp(value: str, name: str) -> int | None:
    """``SECONDS[.FRACTION]`` as Docker's server reads it, in nanoseconds; empty is ``None``."""
    if not value:
        return None
    seconds, _, fraction = value.partition(".")
    if not seconds.isdigit() or (fraction and not fraction.isdigit()):
        raise InvalidParameter(f"invalid value for {name}: {value!r} is not a unix timestamp")
    return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9])


def _format_timestamp(nanos: int) -> str:
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


class SystemRouter:
    def __init__(self, system: SystemBackend, events: EventsBackend, clock: IReactorTime):
        self._system = system
        self._events = events
        self._clock = clock
        self._version_body: bytes | None = None

    def routes(self) -> Sequence[Route]:
        return [
            Route("OPTIONS", "/<path:anyroute>", self.options),
            Route("GET", "/_ping", self.ping),
            Route("HEAD", "/_ping", self.ping_head),
            Route("GET", "/events", self.events),
            Route("GET", "/info", self.info),
            Route("GET", "/version", self.version),
            Route("GET", "/system/df", self.disk_usage),
        ]

    def options(self, call: ApiCall) -> Empty:
        return Empty(200)

    def ping(self, call: ApiCall) -> Text:
        for name, value in _PING_HEADERS:
            call.request.setHeader(name, value)
        return _PONG

    def ping_head(self, call: ApiCall) -> Text:
        for name, value in _PING_HEADERS:
            call.request.setHeader(name, value)
        return _PONG_HEAD

    def version(self, call: ApiCall) -> Text:
        if self._version_body is None:  # the answer never changes: encode it once
            self._version_body = httputils.encode_json(self._system.version())
        return Text(self._version_body, b"application/json")

    def info(self, call: ApiCall) -> dict[str, Any]:
        return views.info_view(self._system.info(), call.version)

    def disk_usage(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        types = views.disk_usage_types(call.query_all("type"), call.has("type"), call.version)
        verbose = call.bool("verbose") and since(call.version, "1.52")
        return self._system.disk_usage().addCallback(
            views.disk_usage_view, types, verbose, call.version)

    def events(self, call: ApiCall) -> Deferred[None] | None:
        """Replay kept events, then stream live ones until ``until`` or a disconnect."""
        since = parse_timestamp(call.query("since"), "since")
        until = parse_timestamp(call.query("until"), "until")
        if since is not None and until is not None and until < since:
            raise InvalidParameter(
                f"`since` time ({_format_timestamp(since)}) cannot be after "
                f"`until` time ({_format_timestamp(until)})"
            )
        filters = call.filters(EVENT_FILTERS)
        request = call.request
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        content_type = views.events_content_type(accept, call.version)
        request.setHeader(b"content-type", content_type.encode())
        request.write(b"")
        separator = b"\x1e" if content_type == views.JSON_SEQUENCE else b""

        def send(event: Event) -> None:
            message = views.event_view(event.to_json(), call.version)
            request.write(separator + httputils.encode_json(message))

        if since is not None or until is not None:
            for event in self._events.recent(filters, since or 0, until):
                send(event)
        now = time.time_ns()
        if until is not None and until <= now:
            return None
        return self._follow(filters, send, None if until is None else (until - now) / 1e9)

    def _follow(self, filters: Filters, send: Any, seconds_left: float | None) -> Deferred[None]:
        subscription = self._events.subscribe(filters, send)
        timer: list[IDelayedCall] = []

        def stop(_: object = None) -> None:
            subscription.cancel()
            if timer and timer[0].active():
                timer[0].cancel()

        done: Deferred[None] = Deferred(stop)
        if seconds_left is not None:
            timer.append(self._clock.callLater(seconds_left, self._finish, done, stop))
        return done

    @staticmethod
    def _finish(done: Deferred[None], stop: Any) -> None:
        stop()
        done.callback(None)

"""The event bus: every engine action is published here and read by ``GET /events``.

The bus keeps the most recent events (as Docker does, 256) for ``since`` replays and
hands new ones to live subscribers.  It knows nothing of HTTP.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from dockertw.filters import Filters

__all__ = ["Event", "EventBus", "Subscription", "EVENT_FILTERS", "event_matches"]

EVENT_FILTERS = frozenset({
    "config", "container", "daemon", "event", "image", "label", "network", "node",
    "plugin", "scope", "secret", "service", "type", "volume",
})

# Filter keys that name an object of the same event type.
_NAMED_TYPES = ("config", "container", "network", "node", "plugin", "secret", "service",
                "volume")


@attrs.frozen
class Event:
    """One ``events.Message``: what happened (``action``) to which object (``actor_id``)."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = attrs.field(factory=dict)
    scope: str = "local"
    time_nano: int = attrs.field(factory=time.time_ns)

    def to_json(self) -> dict[str, Any]:
        """Docker's wire shape, with the legacy ``status``/``id``/``from`` where Docker has them."""
        message: dict[str, Any] = {}
        if self.type in ("container", "image"):
            message["status"] = self.action
            if self.actor_id:  # omitempty, as in Go (prune events have no actor)
                message["id"] = self.actor_id
        if self.type == "container" and self.attributes.get("image"):
            message["from"] = self.attributes["image"]
        message.update({
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": self.scope,
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        })
        return message


def _matches_name(filters: Filters, key: str, event: Event) -> bool:
    return filters.fuzzy_match(key, event.actor_id) or filters.fuzzy_match(
        key, event.attributes.get("name", "")
    )


def _strip_tag(reference: str) -> str:
    name, _, tag = reference.rpartition(":")
    return name if name and "/" not in tag else reference


def _matches_image(filters: Filters, event: Event) -> bool:
    """moby's ``matchImage``: the actor ID or image name, with or without its tag."""
    name = event.attributes.get("name" if event.type == "image" else "image", "")
    candidates = {event.actor_id, name, _strip_tag(event.actor_id), _strip_tag(name)}
    return any(filters.exact_match("image", candidate) for candidate in candidates)


def _matches_action(filters: Filters, action: str) -> bool:
    values = filters.get("event")
    return not values or any(action == v or action.startswith(v + ":") for v in values)


def event_matches(filters: Filters, event: Event) -> bool:
    """Docker's ``events.Filter.Include``: every filtered key must accept the event."""
    return (
        _matches_action(filters, event.action)
        and filters.exact_match("type", event.type)
        and filters.exact_match("scope", event.scope)
        and all(_matches_name(filters, key, event) for key in _NAMED_TYPES)
        and _matches_name(filters, "daemon", event)
        and _matches_image(filters, event)
        and filters.match_labels("label", event.attributes)
    )


@attrs.define(eq=False)
class Subscription:
    """A live listener; :meth:`cancel` detaches it from the bus."""

    _bus: EventBus
    _filters: Filters
    _deliver: Callable[[Event], None]
    counted: bool = True

    def offer(self, event: Event) -> None:
        if event_matches(self._filters, event):
            self._deliver(event)

    def cancel(self) -> None:
        self._bus._subscriptions.pop(self, None)


class EventBus:
    """Publish events; replay recent ones; deliver new ones to subscribers, in the order
    they subscribed (so the engine's own, made at start, such as caches that an event
    may make stale, see each event before any client)."""

    def __init__(self, history: int = 256) -> None:
        self._recent: deque[Event] = deque(maxlen=history)
        self._subscriptions: dict[Subscription, None] = {}  # ordered

    @property
    def listener_count(self) -> int:
        """Clients following ``/events`` (``NEventsListener``): the daemon's own
        watchers are not counted."""
        return sum(1 for subscription in self._subscriptions if subscription.counted)

    def publish(self, event: Event) -> None:
        self._recent.append(event)
        for subscription in list(self._subscriptions):
            subscription.offer(event)

    def emit(self, type: str, action: str, actor_id: str, **attributes: str) -> Event:
        """Build and publish an event; the shorthand the engine uses."""
        event = Event(type=type, action=action, actor_id=actor_id, attributes=attributes)
        self.publish(event)
        return event

    def recent(self, filters: Filters, since_ns: int, until_ns: int | None) -> list[Event]:
        """Kept events after ``since_ns`` and not after ``until_ns`` that pass ``filters``."""
        return [
            event for event in self._recent
            if event.time_nano > since_ns
            and (until_ns is None or event.time_nano <= until_ns)
            and event_matches(filters, event)
        ]

    def subscribe(self, filters: Filters, deliver: Callable[[Event], None], *,
                  counted: bool = True) -> Subscription:
        """Deliver new events that pass ``filters``; ``counted=False`` for the daemon's
        own watchers, which are no events listener of ``/info``."""
        subscription = Subscription(self, filters, deliver, counted)
        self._subscriptions[subscription] = None
        return subscription

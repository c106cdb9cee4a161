"""The event bus and Docker's event filter semantics."""

from __future__ import annotations

from dockertw.daemon.events import Event, EventBus, event_matches
from dockertw.filters import Filters

CONTAINER = Event("container", "start", "7a57baec7756",
                  {"image": "busybox:local", "name": "mr-logs", "mr": "1"}, time_nano=10)
EXEC = Event("container", "exec_start: sh -c true", "7a57baec7756", {"name": "mr-logs"},
             time_nano=20)
IMAGE = Event("image", "tag", "sha256:abc", {"name": "busybox:latest"}, time_nano=30)


def _filters(**values: list[str]) -> Filters:
    return Filters({key: frozenset(value) for key, value in values.items()})


def test_wire_shape_matches_docker():
    assert CONTAINER.to_json() == {
        "status": "start", "id": "7a57baec7756", "from": "busybox:local",
        "Type": "container", "Action": "start",
        "Actor": {"ID": "7a57baec7756",
                  "Attributes": {"image": "busybox:local", "name": "mr-logs", "mr": "1"}},
        "scope": "local", "time": 0, "timeNano": 10,
    }
    daemon = Event("daemon", "reload", "engine", {}, time_nano=3_000_000_001).to_json()
    assert "status" not in daemon and daemon["time"] == 3


def test_container_filter_matches_id_prefix_and_name():
    assert event_matches(_filters(container=["7a57"]), CONTAINER)
    assert event_matches(_filters(container=["mr-logs"]), CONTAINER)
    assert not event_matches(_filters(container=["other"]), CONTAINER)
    assert not event_matches(_filters(container=["7a57"]), IMAGE)


def test_event_filter_matches_action_and_exec_prefix():
    assert event_matches(_filters(event=["exec_start"]), EXEC)
    assert not event_matches(_filters(event=["exec"]), EXEC)
    assert not event_matches(_filters(event=["stop"]), CONTAINER)


def test_type_image_label_and_scope_filters():
    assert event_matches(_filters(type=["image"]), IMAGE)
    assert not event_matches(_filters(type=["image"]), CONTAINER)
    assert event_matches(_filters(image=["busybox"]), IMAGE)
    assert event_matches(_filters(image=["busybox:local"]), CONTAINER)
    assert not event_matches(_filters(image=["alpine"]), CONTAINER)
    assert event_matches(_filters(label=["mr=1"]), CONTAINER)
    assert event_matches(_filters(label=["mr"]), CONTAINER)
    assert not event_matches(_filters(label=["mr=2"]), CONTAINER)
    assert not event_matches(_filters(scope=["swarm"]), CONTAINER)


def test_bus_replays_kept_events_in_window_and_delivers_live_ones():
    bus = EventBus(history=2)
    for event in (CONTAINER, EXEC, IMAGE):
        bus.publish(event)
    assert bus.recent(Filters(), 0, None) == [EXEC, IMAGE]
    assert bus.recent(Filters(), 20, None) == [IMAGE]
    assert bus.recent(Filters(), 0, 20) == [EXEC]
    seen: list[Event] = []
    subscription = bus.subscribe(_filters(type=["image"]), seen.append)
    assert bus.listener_count == 1
    bus.publish(CONTAINER)
    bus.publish(IMAGE)
    subscription.cancel()
    bus.publish(IMAGE)
    assert seen == [IMAGE]
    assert bus.listener_count == 0


def test_emit_stamps_the_time():
    bus = EventBus()
    event = bus.emit("daemon", "reload", "id", name="host")
    assert event.time_nano > 1_700_000_000 * 10**9
    assert event.attributes == {"name": "host"}


def test_prune_events_have_no_legacy_id():
    message = Event("image", "prune", "", {"reclaimed": "0"}, time_nano=1).to_json()
    assert "id" not in message and message["status"] == "prune"
    assert message["Actor"] == {"ID": "", "Attributes": {"reclaimed": "0"}}


def test_the_daemons_own_watchers_are_no_events_listeners():
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(Filters(), seen.append, counted=False)
    assert bus.listener_count == 0
    bus.publish(IMAGE)
    assert seen == [IMAGE]

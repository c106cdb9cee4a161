"""Inspect documents and list items answered from memory: made again as soon as what
they show changes (the caches of dockertw.daemon.containers.shown and
dockertw.api.encoded), against a real daemon and on their own."""

from __future__ import annotations

import json
from typing import Any

import attrs

from dockertw.api.encoded import EncodedViews
from dockertw.daemon.containers.records.record import Container, State
from dockertw.daemon.containers.shown import ShownCache
from dockertw.daemon.events import Event
from tests.cli import cli, ok
from tests.support import Daemon, api_request

# -- on their own ----------------------------------------------------------------------


def _container(container_id: str = "a" * 64) -> Container:
    return Container(id=container_id, name="/c", created_ns=1, path="sh", args=[],
                     config={"Image": "bb:1"}, host_config={}, image_id="sha256:x")


def _counting() -> tuple[list[int], Any]:
    built: list[int] = []

    def build() -> dict[str, Any]:
        built.append(1)
        return {"n": len(built)}

    return built, build


def test_a_document_is_kept_while_nothing_it_shows_changed():
    cache, container = ShownCache(), _container()
    built, build = _counting()
    first = cache.document(container, (), build)
    assert cache.document(container, (), build) is first
    cache.watch(Event("image", "tag", "sha256:y"))  # names no container: anything goes
    third = cache.document(container, (), build)
    assert third is not first
    cache.watch(Event("container", "exec_start: true", "b" * 64))  # another container
    assert cache.document(container, (), build) is third
    assert len(built) == 2


def test_the_record_an_event_about_it_and_the_moment_renew_it():
    cache, container = ShownCache(), _container()
    built, build = _counting()
    cache.document(container, (), build)
    changed = attrs.evolve(container, state=State(running=True))  # the store's new record
    cache.document(changed, (), build)
    cache.watch(Event("network", "connect", "n" * 64, {"container": container.id}))
    cache.document(changed, (), build)
    cache.document(changed, ("exec-id",), build)  # an exec now runs
    cache.watch(Event("container", "exec_die", container.id))
    cache.document(changed, ("exec-id",), build)
    assert len(built) == 5
    item = cache.item(changed, ("bb:1", "Up 2 seconds"), build)
    assert cache.item(changed, ("bb:1", "Up 2 seconds"), build) is item
    assert cache.item(changed, ("bb:1", "Up 3 seconds"), build) is not item


def test_destroy_forgets_the_container():
    cache, container = ShownCache(), _container()
    built, build = _counting()
    cache.item(container, (), build)
    cache.watch(Event("container", "destroy", container.id))
    cache.item(container, (), build)
    assert len(built) == 2


def test_encoded_views_work_on_a_copy_per_version():
    def view(document: dict[str, Any], version: str) -> dict[str, Any]:
        document["Version"] = version  # a view may change what it is given
        return document

    views = EncodedViews(view)
    document = {"Id": "x", "Name": "é"}
    body = views.encoded("x", document, "1.41")
    assert json.loads(body) == {"Id": "x", "Name": "é", "Version": "1.41"}
    assert body.endswith(b"}\n") and "é".encode() in body
    assert document == {"Id": "x", "Name": "é"}
    assert views.encoded("x", document, "1.41") is body
    assert json.loads(views.encoded("x", document, "1.56"))["Version"] == "1.56"
    assert views.encoded("x", dict(document), "1.41") is not body  # another object
    assert EncodedViews(view, suffix=b"").encoded("x", document, "1.41").endswith(b"}")


# -- against a daemon ------------------------------------------------------------------


def _get(daemon: Daemon, version: str, path: str) -> Any:
    assert daemon.socket is not None
    status, headers, body = api_request(daemon.socket, version, "GET", path)
    assert status == 200 and headers["Content-Type"] == "application/json", body
    assert body.endswith(b"\n")
    return json.loads(body)


def _listed(daemon: Daemon, version: str) -> dict[str, Any]:
    return {item["Names"][0]: item for item in _get(daemon, version, "/containers/json?all=1")}


def test_every_change_shows_at_once_in_inspect_and_list(module_daemon, module_containers):
    daemon = module_daemon
    module_containers += ["shown-a", "shown-b"]
    ok(daemon, "create", "--name", "shown-a", "--network", "none", "bb:1", "sleep", "300")
    for version in ("1.41", "1.56"):  # both versions' bodies kept at once
        assert _get(daemon, version, "/containers/shown-a/json")["State"]["Status"] == \
            "created"
        assert _listed(daemon, version)["/shown-a"]["State"] == "created"
    ok(daemon, "start", "shown-a")
    for version in ("1.41", "1.56"):
        assert _get(daemon, version, "/containers/shown-a/json")["State"]["Running"]
        assert _listed(daemon, version)["/shown-a"]["State"] == "running"
    exec_run = cli(daemon, "exec", "-d", "shown-a", "sleep", "5")
    assert exec_run.returncode == 0, exec_run.stderr
    assert _get(daemon, "1.56", "/containers/shown-a/json")["ExecIDs"]
    ok(daemon, "rename", "shown-a", "shown-b")
    assert "/shown-b" in _listed(daemon, "1.56")
    assert _get(daemon, "1.41", "/containers/shown-b/json")["Name"] == "/shown-b"
    ok(daemon, "pause", "shown-b")
    assert _listed(daemon, "1.56")["/shown-b"]["State"] == "paused"
    assert _get(daemon, "1.56", "/containers/shown-b/json")["State"]["Paused"]
    ok(daemon, "unpause", "shown-b")
    ok(daemon, "update", "--restart", "on-failure:3", "shown-b")
    shown = _get(daemon, "1.56", "/containers/shown-b/json")["HostConfig"]["RestartPolicy"]
    assert shown == {"Name": "on-failure", "MaximumRetryCount": 3}
    ok(daemon, "stop", "-t", "0", "shown-b")
    assert _listed(daemon, "1.41")["/shown-b"]["State"] == "exited"
    assert _get(daemon, "1.41", "/containers/shown-b/json")["State"]["Status"] == "exited"
    ok(daemon, "rm", "shown-b")
    assert "/shown-b" not in _listed(daemon, "1.56")
    assert daemon.socket is not None
    status, _, _ = api_request(daemon.socket, "1.56", "GET", "/containers/shown-b/json")
    assert status == 404

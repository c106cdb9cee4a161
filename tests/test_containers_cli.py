"""Acceptance: container records through the real ``docker`` CLI against a real daemon.

Nothing is started yet: containers are created, listed, inspected, renamed, removed
and pruned.  The image is a busybox root filesystem imported with ``docker import``.
(Docker refuses one-character container names, so the names here have two.)
"""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli import cli, import_image, inspect, ok
from tests.support import Daemon, _UnixConnection

pytestmark = pytest.mark.integration

CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def image(daemon: Daemon, busybox_tar: Path) -> str:
    import_image(daemon, busybox_tar, "bb:1")
    return "bb:1"


def create(daemon: Daemon, *args: str) -> str:
    container_id = ok(daemon, "create", *args).strip()
    assert CONTAINER_ID.fullmatch(container_id), container_id
    return container_id



def ps(daemon: Daemon, *args: str) -> list[str]:
    return ok(daemon, "ps", *args, "--format",
              "{{.Names}} {{.Status}} {{.Image}} {{.Command}}").splitlines()


def failed(daemon: Daemon, *args: str) -> str:
    done = cli(daemon, *args)
    assert done.returncode != 0, done.stdout
    return done.stderr


def post_json(daemon: Daemon, url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    assert daemon.socket
    connection = _UnixConnection(daemon.socket)
    try:
        connection.request("POST", url, body=body,
                           headers={"Host": "x", "Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_create_list_inspect_rename_remove(daemon: Daemon, image: str):
    container_id = create(daemon, "--name", "c1", image, "sh", "-c", "echo hi")
    assert ps(daemon) == []  # only running containers without -a
    assert ps(daemon, "-a") == ["c1 Created bb:1 \"sh -c 'echo hi'\""]
    shown = inspect(daemon, "c1")
    assert shown["Id"] == container_id and shown["Name"] == "/c1"
    assert shown["State"]["Status"] == "created"
    assert shown["State"]["StartedAt"] == "0001-01-01T00:00:00Z"
    assert shown["Config"]["Cmd"] == ["sh", "-c", "echo hi"]
    assert shown["Config"]["Hostname"] == container_id[:12]
    assert shown["HostConfig"]["ShmSize"] == 67108864
    assert inspect(daemon, container_id[:7])["Id"] == container_id
    ok(daemon, "rename", "c1", "d1")
    assert ps(daemon, "-a", "--no-trunc")[0].startswith("d1 Created")
    assert ok(daemon, "rm", "d1") == "d1\n"
    assert ps(daemon, "-a") == []
    assert "No such container: d1" in failed(daemon, "rm", "d1")


def test_generated_names_filters_and_prune(daemon: Daemon, image: str):
    create(daemon, "--label", "keep=1", "--name", "kept", image, "true")
    generated = create(daemon, image, "true")
    name = inspect(daemon, generated)["Name"]
    assert re.fullmatch(r"/[a-z]+_[a-z]+", name), name
    assert ps(daemon, "-a", "--filter", "label=keep")[0].startswith("kept ")
    assert len(ps(daemon, "-a", "--filter", "status=created")) == 2
    assert ps(daemon, "-a", "--filter", "status=exited") == []
    assert ps(daemon, "-a", "--filter", "ancestor=bb:1", "-n", "1")[0].startswith(
        name[1:] + " ")
    assert "Invalid filter 'status=bogus'" in failed(daemon, "ps", "--filter",
                                                       "status=bogus")
    pruned = ok(daemon, "container", "prune", "-f", "--filter", "label!=keep")
    assert generated in pruned and "kept" not in pruned
    assert [line.split()[0] for line in ps(daemon, "-a")] == ["kept"]


def test_errors_with_dockers_messages(daemon: Daemon, image: str):
    container_id = create(daemon, "--name", "c1", image, "true")
    assert (f'Conflict. The container name "/c1" is already in use by container '
            f'"{container_id}". You have to remove (or rename) that container to be '
            f"able to reuse that name.") in failed(daemon, "create", "--name", "c1",
                                                   image, "true")
    assert ("Invalid container name (bad/name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
            "allowed") in failed(daemon, "create", "--name", "bad/name", image, "true")
    assert "No command specified" in failed(daemon, "create", image)
    assert "Unable to find image 'nosuch:zz' locally" in failed(daemon, "create",
                                                                 "nosuch:zz", "true")
    create(daemon, "--name", "d1", image, "true")
    assert 'The container name "/d1" is already in use' in failed(daemon, "rename",
                                                                  "c1", "d1")
    assert "network nosuchnet not found" in failed(daemon, "run", "-d", "--network",
                                                   "nosuchnet", image, "true")
    assert ('conflict: unable to remove repository reference "bb:1" (must force) - '
            f"container {container_id[:12]} is using its referenced image") in failed(
        daemon, "rmi", image)


def test_raw_create_errors_are_never_500(daemon: Daemon, image: str):
    url = "/v1.41/containers/create"
    assert post_json(daemon, url, b"{}") == (
        400, {"message": "Config cannot be empty in order to create a container"})
    assert post_json(daemon, url, b"")[0] == 400
    assert post_json(daemon, url, b"{bad")[0] == 400
    assert post_json(daemon, url, b'{"Image":"nonexistent:zzz"}') == (
        404, {"message": "No such image: nonexistent:zzz"})
    status, answer = post_json(daemon, url, b'{"Image":"bb:1","Cmd":["true"]}')
    assert status == 201 and answer["Warnings"] == []


def test_records_survive_sigkill(daemon: Daemon, image: str):
    container_id = create(daemon, "--name", "kept", "-e", "X=1", image, "true")
    before = inspect(daemon, "kept")
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    again = Daemon(daemon.workdir).start()
    try:
        assert inspect(again, container_id) == before
        assert ok(again, "info", "--format",
                  "{{.Containers}} {{.ContainersStopped}} {{.ContainersRunning}}") == \
            "1 1 0\n"
    finally:
        again.stop()


def test_events_and_info(daemon: Daemon, image: str):
    assert ok(daemon, "info", "--format", "{{.Containers}}") == "0\n"
    since = int(time.time())
    container_id = create(daemon, "--name", "e1", image, "true")
    assert ok(daemon, "info", "--format", "{{.Containers}} {{.ContainersStopped}}") == \
        "1 1\n"
    ok(daemon, "rename", "e1", "e2")
    ok(daemon, "rm", "e2")
    time.sleep(1.1)  # the CLI sends --until as whole seconds
    shown = ok(daemon, "events", "--since", str(since), "--until", str(int(time.time())),
               "--filter", "type=container",
               "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}")
    assert shown.splitlines() == [f"create {container_id} e1", f"rename {container_id} e2",
                                  f"destroy {container_id} e2"]
    assert ok(daemon, "info", "--format", "{{.Containers}}") == "0\n"

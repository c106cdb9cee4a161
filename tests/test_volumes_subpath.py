"""``VolumeOptions.Subpath`` (API 1.45): part of a volume mounted, links resolved inside
the volume only, as moby's ``safepath``; what ``docker cp`` sees; nothing left mounted."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli import ok
from tests.support import Daemon, api_request

_SETUP = ("echo foo > /volume/bar.txt && mkdir /volume/subdir && "
          "echo world > /volume/subdir/hello.txt && mkdir /volume/hack && "
          "ln -s / /volume/hack/root && ln -s ../subdir /volume/hack/good && "
          "ln -s root /volume/hack/bad")


@pytest.fixture
def volume(running_daemon: Daemon) -> Iterator[str]:
    ok(running_daemon, "volume", "create", "sub")
    ok(running_daemon, "run", "--rm", "-v", "sub:/volume", "bb:1", "sh", "-c", _SETUP)
    yield "sub"
    ok(running_daemon, "volume", "rm", "-f", "sub")


def _create(daemon: Daemon, name: str, subpath: str, cmd: list[str]
            ) -> tuple[int, dict[str, Any]]:
    mount = {"Type": "volume", "Source": "sub", "Target": "/volume",
             "VolumeOptions": {"Subpath": subpath}}
    assert daemon.socket is not None
    status, _, body = api_request(daemon.socket, "1.45", "POST",
                                  f"/containers/create?name={name}",
                                  {"Image": "bb:1", "Cmd": cmd,
                                   "HostConfig": {"Mounts": [mount]}})
    return status, json.loads(body)


def _start(daemon: Daemon, name: str) -> tuple[int, bytes]:
    assert daemon.socket is not None
    status, _, body = api_request(daemon.socket, "1.45", "POST", f"/containers/{name}/start")
    return status, body


@pytest.mark.parametrize("subpath, cmd, expected", [
    ("subdir", ["ls", "/volume"], "hello.txt"),
    ("hack/good", ["ls", "/volume"], "hello.txt"),
    ("bar.txt", ["cat", "/volume"], "foo"),
])
def test_a_subpath_is_what_the_container_sees(running_daemon: Daemon, volume: str,
                                              subpath: str, cmd: list[str], expected: str):
    status, answer = _create(running_daemon, "subok", subpath, cmd)
    assert status == 201, answer
    try:
        assert _start(running_daemon, "subok")[0] == 204
        assert ok(running_daemon, "wait", "subok").strip() == "0"
        assert ok(running_daemon, "logs", "subok").strip() == expected
    finally:
        ok(running_daemon, "rm", "-f", "subok")


def test_docker_cp_sees_the_subpath(running_daemon: Daemon, volume: str):
    assert _create(running_daemon, "subcp", "subdir", ["sleep", "100"])[0] == 201
    try:
        assert _start(running_daemon, "subcp")[0] == 204
        copied = subprocess.run(
            ["docker", "-H", f"unix://{running_daemon.socket}", "cp",
             "subcp:/volume/hello.txt", "-"], capture_output=True, check=True)
        assert b"world\n" in copied.stdout
    finally:
        ok(running_daemon, "rm", "-f", "subcp")


def test_a_subpath_that_leaves_the_volume_is_refused_at_create(running_daemon: Daemon,
                                                                volume: str):
    for subpath in ("../../../../../../etc/passwd", "/etc/passwd"):
        status, answer = _create(running_daemon, "subbad", subpath, ["true"])
        assert (status, answer) == (400, {"message": 'invalid mount config for type '
                                          '"volume": subpath must be a relative path '
                                          'within the volume'})


@pytest.mark.parametrize("subpath, status, message", [
    ("not-existing-path", 404, "cannot access path "),
    ("hack/root", 400, "path concatenation escapes the base directory"),
    ("hack/bad", 400, "path concatenation escapes the base directory"),
])
def test_a_subpath_is_checked_when_the_container_starts(
        running_daemon: Daemon, volume: str, subpath: str, status: int, message: str):
    assert _create(running_daemon, "substart", subpath, ["true"])[0] == 201
    try:
        started, body = _start(running_daemon, "substart")
        assert started == status, body
        assert message in json.loads(body)["message"]
    finally:
        ok(running_daemon, "rm", "-f", "substart")

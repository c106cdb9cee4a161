"""Exec configuration without a daemon: the body, the environment, the process."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from dockertw.daemon.containers.records.record import Container, State
from dockertw.daemon.containers.running.execs import (
    ExecService,
    exec_env,
    exec_process,
    parse_exec_body,
)
from dockertw.errdefs import Conflict, InvalidParameter, NotFound
from dockertw.runtime.spec import ALL_CAPABILITIES, DEFAULT_PATH, ProcessUser, held_capabilities


@pytest.mark.parametrize("body", [None, {}, {"Cmd": []}, {"Cmd": None}])
def test_no_command(body: object) -> None:
    with pytest.raises(InvalidParameter, match="^No exec command specified$"):
        parse_exec_body(body)


def test_body_fields() -> None:
    request = parse_exec_body({"Cmd": ["sh", "-c", "x"], "User": "1:2", "Tty": True,
                               "AttachStdin": True, "Env": ["A=1"], "WorkingDir": "/w"})
    assert (request.cmd, request.user, request.tty, request.attach_stdin,
            request.attach_stdout, request.env, request.working_dir) == (
        ("sh", "-c", "x"), "1:2", True, True, False, ("A=1",), "/w")
    with pytest.raises(InvalidParameter):
        parse_exec_body({"Cmd": ["x"], "Env": "A=1"})


def test_env_in_dockers_order() -> None:
    env = exec_env(["PATH=/bin", "A=1", "B=2"], "host", True, ["B=3", "C=4", "A"])
    assert env == ["PATH=/bin", "HOSTNAME=host", "TERM=xterm", "B=3", "C=4"]
    assert exec_env([], "h", False, []) == [f"PATH={DEFAULT_PATH}", "HOSTNAME=h"]


def test_process_from_the_containers() -> None:
    base = {"terminal": False, "user": {"uid": 5, "gid": 5}, "args": ["init"],
            "env": ["X=1"], "cwd": "/", "consoleSize": {"height": 1, "width": 1},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                             "permitted": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 9, "soft": 9}],
            "noNewPrivileges": True}
    same_user = exec_process(base, ["ls", "-l"], env=["Y=2"], cwd="", tty=True,
                             user=None, privileged=False)
    assert same_user == {**{k: v for k, v in base.items() if k != "consoleSize"},
                         "args": ["ls", "-l"], "env": ["Y=2"], "cwd": "/",
                         "terminal": True}
    other = exec_process(base, ["id"], env=[], cwd="/tmp", tty=False,
                         user=ProcessUser(uid=1000, gid=1000), privileged=True)
    assert other["user"] == {"uid": 1000, "gid": 1000} and other["cwd"] == "/tmp"
    assert other["capabilities"] == {kind: list(ALL_CAPABILITIES)
                                     for kind in ("bounding", "effective", "permitted")}
    assert base["args"] == ["init"]  # the container's process is left alone


def test_held_capabilities_from_the_bounding_set() -> None:
    status = "Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n"
    held = held_capabilities(status)
    assert "CAP_SYS_RESOURCE" not in held and len(held) == len(ALL_CAPABILITIES) - 1
    assert held_capabilities("CapBnd:\t0000000000000021\n") == ("CAP_CHOWN", "CAP_KILL")


class _Store:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.root = Path("/nonexistent")

    def get(self, name: str) -> Container:
        if name not in (self.container.id, "c"):
            raise NotFound(f"No such container: {name}")
        return self.container


class _Runs:
    def __init__(self) -> None:
        self.running: object | None = object()

    def run_of(self, container_id: str) -> object | None:
        return self.running


def _service(state: State) -> tuple[ExecService, Clock, _Runs, list[str]]:
    container = Container(id="f" * 64, name="/c", created_ns=0, path="sleep", args=[],
                          config={"Hostname": "h", "User": "nobody"}, host_config={},
                          image_id="sha256:" + "0" * 64, state=state)
    clock, runs, events = Clock(), _Runs(), []
    service = ExecService(cast(Any, _Store(container)), cast(Any, runs),
                          emit=lambda c, action, **extra: events.append(action),
                          reader=lambda work: succeed(work()), reactor=clock, runc=None)
    return service, clock, runs, events


def _created(service: ExecService, body: dict[str, Any]) -> str:
    results: list[Any] = []
    service.create("c", body).addBoth(results.append)
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return str(results[0]["Id"])


def test_create_records_and_forgets_ended_execs_after_five_minutes() -> None:
    service, clock, _, events = _service(State(running=True))
    first = _created(service, {"Cmd": ["cat"], "AttachStdin": True})
    shown = service.inspect(first)
    assert shown["ProcessConfig"] == {"tty": False, "entrypoint": "cat", "arguments": [],
                                      "privileged": False, "user": "nobody"}
    assert (shown["ExitCode"], shown["Running"], shown["OpenStdin"]) == (None, False, True)
    assert events == ["exec_create: cat "]
    service._records[first].end(0, clock.seconds())
    clock.advance(299)
    _created(service, {"Cmd": ["true"]})
    assert service.inspect(first)["ExitCode"] == 0
    clock.advance(2)
    _created(service, {"Cmd": ["true"]})
    with pytest.raises(NotFound, match=f"^No such exec instance: {first}$"):
        service.inspect(first)
    service.forget("f" * 64)
    assert service._records == {}


@pytest.mark.parametrize("state, message", [
    (State(running=False), "is not running"),
    (State(running=True, paused=True), "is paused, unpause the container before exec"),
    (State(running=True, restarting=True), "is restarting, wait until the container is "
                                           "running"),
])
def test_create_refused_unless_running(state: State, message: str) -> None:
    service, _, runs, _ = _service(state)
    if state.restarting:
        runs.running = None
    with pytest.raises(Conflict, match=f"^Container {'f' * 64} {message}$"):
        _created(service, {"Cmd": ["true"]})
    with pytest.raises(InvalidParameter, match=r"^Invalid escape keys \(ctrl-1\) provided$"):
        _created(service, {"Cmd": ["true"], "DetachKeys": "ctrl-1"})


def test_exec_body_keys_match_whatever_their_case():
    """Go's decoder matches fields case-insensitively; docker-py sends ``detachKeys``."""
    request = parse_exec_body({"cmd": ["cat"], "detachKeys": "ctrl-p", "attachstdin": True,
                               "TTY": True})
    assert (request.cmd, request.detach_keys, request.attach_stdin, request.tty) == \
        (("cat",), "ctrl-p", True, True)

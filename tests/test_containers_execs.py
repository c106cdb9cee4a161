"""Exec configuration without a daemon: the body, the environment, the process."""

from __future__ import annotations

import pytest

from dockertw.daemon.containers.execs import (
    exec_env,
    exec_process,
    held_capabilities,
    parse_exec_body,
)
from dockertw.errdefs import InvalidParameter
from dockertw.runtime.spec import ALL_CAPABILITIES, DEFAULT_PATH, ProcessUser


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

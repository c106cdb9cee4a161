"""Acceptance: namespace modes, devices, isolation and OOM kills, with the real CLI.

``--pid host|container:X``, ``--ipc host|container:X|none``, ``--uts host``,
``--userns host``, ``--cgroupns``, ``--device`` (with permissions),
``--device-cgroup-rule``, ``--gpus`` refused, ``--isolation default`` and a memory
hog under ``-m 8m`` killed by the kernel (``OOMKilled``, the ``oom`` event).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from tests.cli import cli, inspect, ok
from tests.support import Daemon, post_json

pytestmark = pytest.mark.integration


def _post_json(daemon: Daemon, url: str, document: object) -> tuple[int, bytes]:
    return post_json(str(daemon.socket), url, document)


def _run(daemon: Daemon, *args: str) -> str:
    return ok(daemon, "run", "--rm", *args).strip()


def test_pid_modes(running_daemon: Daemon):
    daemon = running_daemon
    assert daemon.process is not None
    assert _run(daemon, "bb:1", "sh", "-c", "echo $$") == "1"
    # the host's processes, the daemon among them
    assert _run(daemon, "--pid", "host", "bb:1", "sh", "-c",
                f"test -d /proc/{daemon.process.pid} && echo seen") == "seen"
    ok(daemon, "run", "-d", "--name", "donor", "bb:1", "sleep", "1000")
    donor_id = inspect(daemon, "donor")["Id"]
    ok(daemon, "create", "--name", "joiner", "--pid", "container:donor", "bb:1", "ps", "-o",
       "args")
    assert inspect(daemon, "joiner")["HostConfig"]["PidMode"] == f"container:{donor_id}"
    ok(daemon, "start", "joiner")
    assert ok(daemon, "wait", "joiner").strip() == "0"
    assert "sleep 1000" in ok(daemon, "logs", "joiner")
    ok(daemon, "kill", "donor")
    refused = cli(daemon, "start", "joiner")
    assert refused.returncode != 0
    assert f"failed to join PID namespace: Container {donor_id} is not running" in \
        refused.stderr
    ok(daemon, "rm", "donor", "joiner")
    missing = cli(daemon, "run", "--rm", "--pid", "container:nosuch", "bb:1", "true")
    assert "failed to join PID namespace: No such container: nosuch" in missing.stderr
    # what the CLI checks itself, the daemon checks too
    for host, message in [({"PidMode": "bogus"}, "invalid PID mode: bogus"),
                          ({"PidMode": "container:"}, "invalid PID mode: container:"),
                          ({"IpcMode": "bogus"}, "invalid IPC mode: bogus"),
                          ({"UTSMode": "bogus"}, "invalid UTS mode: bogus"),
                          ({"CgroupnsMode": "bogus"}, "invalid cgroup namespace mode: bogus"),
                          ({"DeviceCgroupRules": ["x 1:2 r"]},
                           "invalid device cgroup rule format: 'x 1:2 r'")]:
        status, body = _post_json(daemon, "/v1.41/containers/create",
                                  {"Image": "bb:1", "Cmd": ["true"], "HostConfig": host})
        assert (status, json.loads(body)["message"]) == (400, message), body


def _namespace(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def test_ipc_modes(running_daemon: Daemon):
    daemon = running_daemon
    own = _run(daemon, "bb:1", "readlink", "/proc/self/ns/ipc")
    assert own != _namespace("ipc")
    assert _run(daemon, "--ipc", "host", "bb:1", "readlink", "/proc/self/ns/ipc") == \
        _namespace("ipc")
    assert _run(daemon, "--ipc", "none", "bb:1", "sh", "-c",
                "grep -c ' /dev/shm ' /proc/mounts || true") == "0"
    ok(daemon, "run", "-d", "--name", "shm", "--ipc", "shareable", "bb:1", "sh", "-c",
       "echo shared > /dev/shm/note; exec sleep 1000")
    donor = _namespace_of(daemon, "shm")
    assert _run(daemon, "--ipc", "container:shm", "bb:1", "sh", "-c",
                "readlink /proc/self/ns/ipc; cat /dev/shm/note").splitlines() == \
        [donor, "shared"]
    ok(daemon, "run", "-d", "--name", "private", "bb:1", "sleep", "1000")
    refused = cli(daemon, "run", "--rm", "--ipc", "container:private", "bb:1", "true")
    assert refused.returncode != 0
    assert "non-shareable IPC (hint: use IpcMode:shareable for the donor container)" in \
        refused.stderr
    ok(daemon, "rm", "-f", "shm", "private")


def _namespace_of(daemon: Daemon, name: str, kind: str = "ipc") -> str:
    return ok(daemon, "exec", name, "readlink", f"/proc/self/ns/{kind}").strip()


def test_uts_userns_and_cgroupns_modes(running_daemon: Daemon):
    daemon = running_daemon
    assert _run(daemon, "--uts", "host", "bb:1", "hostname") == socket.gethostname()
    conflict = cli(daemon, "create", "--uts", "host", "-h", "mine", "bb:1", "true")
    assert "conflicting options: hostname and the UTS mode" in conflict.stderr
    ok(daemon, "create", "--name", "uu", "--userns", "host", "--uts", "host", "bb:1", "true")
    host_config = inspect(daemon, "uu")["HostConfig"]
    assert (host_config["UsernsMode"], host_config["UTSMode"]) == ("host", "host")
    assert _run(daemon, "--cgroupns", "private", "bb:1", "readlink",
                "/proc/self/ns/cgroup") != _namespace("cgroup")
    assert _run(daemon, "--cgroupns", "host", "bb:1", "readlink",
                "/proc/self/ns/cgroup") == _namespace("cgroup")


def _unused_char_major() -> int:
    listed = Path("/proc/devices").read_text().split("Block devices:")[0]
    used = {int(line.split()[0]) for line in listed.splitlines()[1:] if line.strip()}
    return next(major for major in range(234, 255) if major not in used)


def test_devices_and_cgroup_rules(running_daemon: Daemon):
    daemon = running_daemon
    assert _run(daemon, "--device", "/dev/null:/dev/mynull", "bb:1", "sh", "-c",
                "echo x > /dev/mynull && ls -l /dev/mynull").startswith("crw")
    # kmsg is not among Docker's default devices: read-only, a write is refused
    read_only = cli(daemon, "run", "--rm", "--device", "/dev/kmsg:/dev/k:r", "bb:1", "sh",
                    "-c", "test -c /dev/k && echo there; echo x > /dev/k")
    assert read_only.stdout == "there\n" and "Operation not permitted" in read_only.stderr
    missing = cli(daemon, "run", "--rm", "--device", "/dev/nosuchdevice", "bb:1", "true")
    assert missing.returncode != 0
    assert ('error gathering device information while adding custom device '
            '"/dev/nosuchdevice": no such file or directory') in missing.stderr
    # the device cgroup: a node of a major no driver has is refused (EPERM) until a rule
    # allows it, then the kernel finds no device (ENXIO)
    major = _unused_char_major()
    script = f"mknod /tmp/n c {major} 0 && cat /tmp/n"
    denied = cli(daemon, "run", "--rm", "bb:1", "sh", "-c", script)
    assert "Operation not permitted" in denied.stderr
    allowed = cli(daemon, "run", "--rm", "--device-cgroup-rule", f"c {major}:* rwm", "bb:1",
                  "sh", "-c", script)
    assert "No such device or address" in allowed.stderr, allowed.stderr
    ok(daemon, "create", "--name", "rr", "--device-cgroup-rule", "c 7:128 rwm", "bb:1", "true")
    assert inspect(daemon, "rr")["HostConfig"]["DeviceCgroupRules"] == ["c 7:128 rwm"]
    bad = cli(daemon, "create", "--isolation", "hyperv", "bb:1", "true")
    assert "invalid isolation (hyperv): linux only supports 'default'" in bad.stderr
    ok(daemon, "create", "--name", "ii", "--isolation", "default", "bb:1", "true")
    assert inspect(daemon, "ii")["HostConfig"]["Isolation"] == "default"
    gpus = cli(daemon, "create", "--gpus", "all", "bb:1", "true")
    assert gpus.returncode != 0
    assert 'could not select device driver "" with capabilities: [[gpu]]' in gpus.stderr


def test_privileged_gets_the_host_devices(running_daemon: Daemon):
    daemon = running_daemon
    listed = _run(daemon, "--privileged", "bb:1", "ls", "/dev")
    assert {"null", "zero", "full"} <= set(listed.split())
    assert "loop-control" not in _run(daemon, "bb:1", "ls", "/dev").split()
    if Path("/dev/loop-control").exists():
        assert "loop-control" in listed.split()


def test_memory_hog_is_oom_killed(running_daemon: Daemon):
    daemon = running_daemon
    since = str(int(time.time()) - 1)
    done = cli(daemon, "run", "--name", "hog", "-m", "8m", "--memory-swap", "8m", "bb:1",
               "sh", "-c", "x=0123456789; while true; do x=$x$x; done")
    assert done.returncode == 137, done.stderr
    state = inspect(daemon, "hog")["State"]
    assert (state["OOMKilled"], state["ExitCode"], state["Status"]) == (True, 137, "exited")
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", "container=hog", "--format", "{{json .}}")
    actions = [json.loads(line)["Action"] for line in events.splitlines()]
    assert "oom" in actions and actions.index("oom") < actions.index("die"), actions
    ok(daemon, "create", "--name", "calm", "-m", "8m", "--oom-kill-disable", "bb:1", "true")
    assert inspect(daemon, "calm")["HostConfig"]["OomKillDisable"] is True
    ok(daemon, "start", "calm")
    assert ok(daemon, "wait", "calm").strip() == "0"
    assert inspect(daemon, "calm")["State"]["OOMKilled"] is False

"""Acceptance: containers run under runc, driven by the real ``docker`` CLI.

Start, exit codes, wait, logs (also followed), stop, kill, restart and forced
removal; afterwards no mount, cgroup or process of a container is left behind.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.cli import cli, inspect, ok
from tests.support import Daemon, _UnixConnection, docker, post_json, unix_get

pytestmark = pytest.mark.integration


def wait_status(daemon: Daemon, name: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if inspect(daemon, name)["State"]["Status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never became {status}")


def test_start_wait_exit_code_and_logs(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "create", "--name", "c1", "bb:1", "sh", "-c",
       "echo out1; echo err1 >&2; echo out2; exit 3")
    ok(daemon, "start", "c1")
    assert ok(daemon, "wait", "c1").strip() == "3"
    shown = inspect(daemon, "c1")
    state = shown["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 3
    assert state["Running"] is False and state["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert shown["LogPath"].endswith(f"{shown['Id']}/{shown['Id']}-json.log")
    logs = cli(daemon, "logs", "c1")
    assert logs.stdout == "out1\nout2\n" and logs.stderr == "err1\n"
    last = cli(daemon, "logs", "--tail", "1", "c1")
    assert (last.stdout + last.stderr) in ("out2\n", "err1\n")  # the pipes race
    stamped = ok(daemon, "logs", "-t", "c1").splitlines()
    assert stamped[0].endswith("Z out1") and len(stamped[0].split()[0]) == 30
    assert ok(daemon, "ps", "-a", "--format", "{{.Status}}").startswith("Exited (3) ")
    # a second start runs it again
    ok(daemon, "start", "c1")
    assert ok(daemon, "wait", "c1").strip() == "3"
    assert cli(daemon, "logs", "c1").stdout == "out1\nout2\n" * 2


def test_user_workdir_env_hostname_and_network(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "create", "--name", "c2", "-u", "1000:1000", "-w", "/tmp", "-e", "A=b",
       "--network", "none", "bb:1", "sh", "-c",
       'echo $(id -u):$(id -g) $(pwd) $A $(hostname); ls /sys/class/net')
    container_id = inspect(daemon, "c2")["Id"]
    ok(daemon, "start", "c2")
    assert ok(daemon, "wait", "c2").strip() == "0"
    assert ok(daemon, "logs", "c2") == f"1000:1000 /tmp b {container_id[:12]}\nlo\n"


def test_run_detached_ps_stop_kill_restart_rm(running_daemon: Daemon):
    daemon = running_daemon
    container_id = ok(daemon, "run", "-d", "--name", "r1", "bb:1", "sleep", "100").strip()
    assert ok(daemon, "ps", "--format", "{{.Names}} {{.Status}}").startswith("r1 Up ")
    assert inspect(daemon, "r1")["State"]["Pid"] > 0
    assert cli(daemon, "start", "r1").returncode == 0  # already running: 304
    ok(daemon, "stop", "-t", "1", "r1")
    assert inspect(daemon, "r1")["State"]["ExitCode"] in (137, 143)
    assert ok(daemon, "ps", "-q") == ""
    stopped = cli(daemon, "kill", "r1")
    assert stopped.returncode != 0
    assert f"Container {container_id} is not running" in stopped.stderr
    ok(daemon, "restart", "-t", "1", "r1")
    assert inspect(daemon, "r1")["State"]["Running"] is True
    ok(daemon, "kill", "-s", "KILL", "r1")
    assert ok(daemon, "wait", "r1").strip() == "137"
    assert "Invalid signal: BOGUS" in cli(daemon, "kill", "-s", "BOGUS", "r1").stderr
    ok(daemon, "start", "r1")
    refused = cli(daemon, "rm", "r1")
    assert refused.returncode != 0
    assert f"You cannot remove a running container {container_id}" in refused.stderr
    ok(daemon, "rm", "-f", "r1")
    assert ok(daemon, "ps", "-aq") == ""


def test_logs_follow_until_exit(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "f1", "bb:1", "sh", "-c",
       "for i in 1 2 3; do echo line$i; sleep 0.3; done")
    started = time.monotonic()
    done = docker("-H", f"unix://{daemon.socket}", "logs", "-f", "f1", timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "line1\nline2\nline3\n"
    assert time.monotonic() - started > 0.3


def test_missing_executable_fails_with_127(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "create", "--name", "m1", "bb:1", "/no/such/program")
    failed = cli(daemon, "start", "m1")
    assert failed.returncode != 0
    assert "no such file or directory" in failed.stderr
    state = inspect(daemon, "m1")["State"]
    assert state["ExitCode"] == 127 and "no such file or directory" in state["Error"]
    # with --rm the failed container is removed, and docker run does not hang
    failed = cli(daemon, "run", "--rm", "--name", "m2", "bb:1", "/no/such/program")
    assert failed.returncode == 127 and "no such file or directory" in failed.stderr
    assert "m2" not in ok(daemon, "ps", "-a", "--format", "{{.Names}}")
    assert state["Status"] == "created"
    ok(daemon, "rm", "m1")


def test_daemon_stop_kills_running_containers(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "s1", "bb:1", "sleep", "100")
    pid = inspect(daemon, "s1")["State"]["Pid"]
    daemon.stop()
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_run_rm_prints_output_and_exit_code(running_daemon: Daemon):
    daemon = running_daemon
    done = cli(daemon, "run", "--rm", "bb:1", "echo", "hi")
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr
    assert ok(daemon, "ps", "-aq") == ""  # AutoRemove
    failed = cli(daemon, "run", "--name", "e3", "bb:1", "sh", "-c", "echo oops >&2; exit 3")
    assert (failed.returncode, failed.stderr) == (3, "oops\n")
    assert inspect(daemon, "e3")["State"]["ExitCode"] == 3


def test_run_interactive_piped_stdin(running_daemon: Daemon):
    daemon = running_daemon
    done = subprocess.run(["docker", "-H", f"unix://{daemon.socket}", "run", "-i", "--rm",
                           "bb:1", "cat"], input="data\nmore\n", capture_output=True,
                          text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "data\nmore\n"), done.stderr


def test_wait_flushes_headers_first_and_events(running_daemon: Daemon):
    daemon = running_daemon
    assert daemon.socket
    container_id = ok(daemon, "create", "--name", "w1", "bb:1", "sh", "-c",
                      "exit 5").strip()
    since = str(int(time.time()) - 1)
    connection = _UnixConnection(daemon.socket)
    try:
        connection.request("POST", "/v1.41/containers/w1/wait?condition=next-exit",
                           headers={"Host": "x"})
        response = connection.getresponse()  # headers arrive before the exit
        assert response.status == 200
        assert response.getheader("Content-Type") == "application/json"
        ok(daemon, "start", "w1")
        assert json.loads(response.read()) == {"Error": None, "StatusCode": 5}
    finally:
        connection.close()
    status, _, body = unix_get(daemon.socket, "/containers/w1/logs")
    assert status == 400
    assert b"you must choose at least one stream" in body
    ok(daemon, "rm", "w1")
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", f"container={container_id}", "--format",
                "{{.Action}}").split()
    assert events[:2] == ["create", "start"]
    assert events[2].startswith("die") and events[-1] == "destroy"


def test_info_counts_and_disk_usage_sizes(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "run", "-d", "--name", "big", "bb:1", "sh", "-c",
       "head -c 100000 /dev/zero > /big; sleep 100")
    ok(daemon, "create", "--name", "idle", "bb:1", "true")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sizes = json.loads(ok(daemon, "ps", "-s", "--format", "{{json .}}"))["Size"]
        if sizes.startswith("100kB"):
            break
        time.sleep(0.05)
    assert sizes.startswith("100kB (virtual "), sizes
    info = json.loads(unix_get(daemon.socket, "/v1.41/info")[2])
    assert (info["Containers"], info["ContainersRunning"], info["ContainersStopped"]) \
        == (2, 1, 1)
    usage = json.loads(unix_get(daemon.socket, "/v1.41/system/df")[2])
    by_name = {c["Names"][0]: c for c in usage["Containers"]}
    assert by_name["/big"]["SizeRw"] == 100_000
    assert by_name["/big"]["SizeRootFs"] > 100_000 and "SizeRw" not in by_name["/idle"]
    assert inspect(daemon, "idle")["State"]["Status"] == "created"
    ok(daemon, "rm", "-f", "big")


def test_pause_and_unpause(running_daemon: Daemon):
    daemon = running_daemon
    container_id = ok(daemon, "run", "-d", "--name", "pz", "bb:1", "sh", "-c",
                      "while :; do date +%s%N > /tick; sleep 0.05; done").strip()
    since = str(int(time.time()) - 1)
    ok(daemon, "pause", "pz")
    assert inspect(daemon, "pz")["State"]["Status"] == "paused"
    assert ok(daemon, "ps", "--format", "{{.Status}}").strip().endswith("(Paused)")
    info = json.loads(unix_get(daemon.socket, "/v1.41/info")[2])
    assert (info["ContainersRunning"], info["ContainersPaused"]) == (0, 1)
    again = cli(daemon, "pause", "pz")
    assert f"Container {container_id} is already paused" in again.stderr
    ok(daemon, "unpause", "pz")
    assert inspect(daemon, "pz")["State"]["Status"] == "running"
    assert f"Container {container_id} is not paused" in cli(daemon, "unpause", "pz").stderr
    ok(daemon, "pause", "pz")
    ok(daemon, "stop", "-t", "1", "pz")  # a paused container still stops
    assert inspect(daemon, "pz")["State"]["Paused"] is False
    assert f"Container {container_id} is not running" in cli(daemon, "pause", "pz").stderr
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", "event=pause", "--filter", "event=unpause",
                "--format", "{{.Action}}").split()
    assert events == ["pause", "unpause", "pause"]
    ok(daemon, "start", "pz")
    ok(daemon, "pause", "pz")
    ok(daemon, "rm", "-f", "pz")  # and a paused container is removed by force


def test_diff_lists_added_changed_and_deleted_paths(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "create", "--name", "df", "bb:1", "sh", "-c",
       "touch /tmp/x; rm /bin/ls; mkdir -p /new/dir; echo a > /new/dir/f")
    assert ok(daemon, "diff", "df") == ""  # never started: no changes
    status, _, body = unix_get(daemon.socket, "/v1.41/containers/df/changes")
    assert (status, json.loads(body)) == (200, None)
    ok(daemon, "start", "df")
    assert ok(daemon, "wait", "df").strip() == "0"
    assert ok(daemon, "diff", "df").splitlines() == [
        "C /bin", "D /bin/ls", "A /new", "A /new/dir", "A /new/dir/f", "C /tmp", "A /tmp/x"]
    missing = cli(daemon, "diff", "nothere")
    assert "No such container: nothere" in missing.stderr


def test_commit_makes_an_image_of_the_changes(running_daemon: Daemon):
    daemon = running_daemon
    since = str(int(time.time()) - 1)
    ok(daemon, "run", "--name", "cm", "bb:1", "sh", "-c",
       "echo made > /made; rm /bin/ls; mkdir -p /d/e; ln /made /d/e/link")
    image_id = ok(daemon, "commit", "-a", "me", "-m", "a note", "-c", "CMD [\"cat\", \"/made\"]",
                  "-c", "ENV A=b", "cm", "mine:1").strip()
    shown = json.loads(ok(daemon, "image", "inspect", "mine:1"))[0]
    assert shown["Id"] == image_id and shown["Author"] == "me"
    assert shown["Comment"] == "a note"
    legacy = json.loads(unix_get(str(daemon.socket), "/v1.44/images/mine:1/json")[2])
    assert legacy["Container"] == inspect(daemon, "cm")["Id"]  # until API 1.44
    assert shown["Config"]["Cmd"] == ["cat", "/made"] and "A=b" in shown["Config"]["Env"]
    assert len(shown["RootFS"]["Layers"]) == 2
    parent = json.loads(ok(daemon, "image", "inspect", "bb:1"))[0]
    assert shown["Parent"] == parent["Id"]
    history = ok(daemon, "history", "--no-trunc", "--format", "{{.Comment}}", "mine:1")
    assert history.splitlines()[0] == "a note"
    # the new image runs with its changes: the whiteout hides ls, the link is kept
    assert ok(daemon, "run", "--rm", "mine:1") == "made\n"
    assert cli(daemon, "run", "--rm", "mine:1", "ls").returncode != 0
    assert ok(daemon, "run", "--rm", "mine:1", "cat", "/d/e/link") == "made\n"
    # a running container is paused while committed, then runs on
    ok(daemon, "run", "-d", "--name", "live", "bb:1", "sleep", "100")
    ok(daemon, "commit", "live", "live:1")
    assert inspect(daemon, "live")["State"]["Status"] == "running"
    no_change = json.loads(ok(daemon, "image", "inspect", "live:1"))[0]
    assert no_change["RootFS"]["Layers"] == parent["RootFS"]["Layers"]
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", "event=commit", "--filter", "event=pause",
                "--filter", "event=unpause", "--format", "{{.Action}}").split()
    assert events == ["commit", "pause", "unpause", "commit"]
    assert "No such container: nope" in cli(daemon, "commit", "nope", "x:1").stderr
    assert cli(daemon, "commit", "-c", "BOGUS x", "cm").returncode != 0
    ok(daemon, "rm", "-f", "live", "cm")
    ok(daemon, "rmi", "mine:1", "live:1")


def test_process_and_resource_settings_reach_the_container(running_daemon: Daemon):
    daemon = running_daemon
    script = ("ulimit -n; cat /proc/sys/kernel/shmmax /proc/self/oom_score_adj; "
              "grep NoNewPrivs /proc/self/status; id -G; grep ' /dev/shm ' /proc/mounts"
              " | grep -o 'size=[0-9]*k'; grep Cpus_allowed_list /proc/self/status; "
              "tr '\\0' ' ' < /proc/1/cmdline")
    ok(daemon, "run", "--name", "tuned", "--ulimit", "nofile=100:200", "--sysctl",
       "kernel.shmmax=1048576", "--oom-score-adj", "500", "--security-opt",
       "no-new-privileges", "--group-add", "nogroup", "--group-add", "1234",
       "--shm-size", "2m", "--cpuset-cpus", "0", "--init", "bb:1", "sh", "-c", script)
    lines = ok(daemon, "logs", "tuned").splitlines()
    assert lines[:4] == ["100", "1048576", "500", "NoNewPrivs:\t1"]
    assert sorted(lines[4].split()) == ["0", "1234", "65534"] and lines[5] == "size=2048k"
    assert lines[6].split() == ["Cpus_allowed_list:", "0"]
    assert lines[7].startswith("/sbin/docker-init -- sh -c")
    for args, message in [
        (("--network", "container:tuned", "--dns", "127.0.0.1"),
         "conflicting options: dns and the network mode"),
        (("--network", "host", "--sysctl", "net.ipv4.ip_forward=1"),
         "sysctl 'net.ipv4.ip_forward' not allowed in host network namespace"),
        (("--cpus", "1", "--cpu-quota", "5000"),
         "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
        (("--memory-reservation", "1m"), "Minimum memory reservation allowed is 6MB"),
        (("--security-opt", "bogus=1"), 'invalid --security-opt 2: "bogus=1"'),
        (("--oom-score-adj", "2000"), "range for oom score adj is [-1000, 1000]"),
    ]:
        refused = cli(daemon, "create", *args, "bb:1", "true")
        assert refused.returncode != 0 and message in refused.stderr, (args, refused.stderr)
    # what the CLI checks itself, the daemon checks too
    for host, message in [({"Sysctls": {"kernel.hostname": "x"}},
                           "sysctl 'kernel.hostname' is not whitelisted"),
                          ({"Ulimits": [{"Name": "nofile", "Soft": 9, "Hard": 1}]},
                           "invalid ulimit nofile: soft limit must be less than or equal "
                           "to hard limit")]:
        status, body = _post_json(daemon, "/v1.41/containers/create",
                                  {"Image": "bb:1", "Cmd": ["true"], "HostConfig": host})
        assert (status, json.loads(body)["message"]) == (400, message), body


def _post_json(daemon: Daemon, url: str, document: object) -> tuple[int, bytes]:
    return post_json(str(daemon.socket), url, document)


def test_export_streams_the_root_filesystem(running_daemon: Daemon, workdir: Path):
    daemon = running_daemon
    ok(daemon, "run", "--name", "ex", "bb:1", "sh", "-c",
       "echo mine > /mine; rm /bin/ls; mkdir /d; ln -s /mine /d/link")
    archive = workdir / "ex.tar"
    ok(daemon, "export", "-o", str(archive), "ex")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("mine").read() == b"mine\n"  # type: ignore[union-attr]
        assert tar.getmember("d/link").linkname == "/mine"
    assert {"bin/sh", "etc/passwd", "mine", "d"} <= names and "bin/ls" not in names
    # a running container too, and through a pipe: docker export C | tar t
    ok(daemon, "run", "-d", "--name", "exr", "bb:1", "sh", "-c", "echo r > /r; sleep 100")
    listing = subprocess.run(
        f"docker -H unix://{daemon.socket} export exr | tar t", shell=True,
        capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0 and "bin/busybox" in listing.stdout.split()
    assert "No such container: nope" in cli(daemon, "export", "nope").stderr
    scratch = daemon.root / "tmp" / "export"
    assert [path.name for path in scratch.iterdir()] in ([], ["empty"])  # mounts gone
    ok(daemon, "rm", "-f", "exr")


def test_privileged_gets_every_capability_the_daemon_holds(running_daemon: Daemon):
    daemon = running_daemon
    shown = ok(daemon, "run", "--rm", "--privileged", "bb:1", "grep", "CapEff",
               "/proc/self/status").split()[1]
    with open(f"/proc/{daemon.process.pid}/status") as status:  # type: ignore[union-attr]
        held = next(line.split()[1] for line in status if line.startswith("CapBnd:"))
    assert int(shown, 16) == int(held, 16)
    added = ok(daemon, "run", "--rm", "--cap-add", "ALL", "bb:1", "grep", "CapEff",
               "/proc/self/status").split()[1]
    assert int(added, 16) == int(held, 16)


def test_sigkill_answers_after_the_exit(running_daemon: Daemon):
    """As moby: ``kill`` (SIGKILL) returns once the container is down, so an inspect or
    a plain ``rm`` right after sees it stopped; ``stop`` too."""
    daemon = running_daemon
    for round_ in range(3):
        ok(daemon, "run", "-d", "--name", f"k{round_}", "bb:1", "sleep", "100")
        ok(daemon, "kill", f"k{round_}")
        state = inspect(daemon, f"k{round_}")["State"]
        assert (state["Running"], state["Status"], state["ExitCode"]) == \
            (False, "exited", 137)
        ok(daemon, "rm", f"k{round_}")
    ok(daemon, "run", "-d", "--name", "s9", "bb:1", "sleep", "100")
    ok(daemon, "stop", "-t", "0", "s9")
    ok(daemon, "rm", "s9")


def test_commit_of_a_container_that_just_ended(running_daemon: Daemon):
    """docker-py commits (pause=true) right after starting ``touch /test``: whether the
    container still runs, is ending or is down, the commit is made."""
    daemon = running_daemon
    for _ in range(10):
        status, body = _post_json(daemon, "/v1.41/containers/create",
                                  {"Image": "bb:1", "Cmd": ["touch", "/test"]})
        container_id = json.loads(body)["Id"]
        assert _post_json(daemon, f"/v1.41/containers/{container_id}/start", None)[0] == 204
        status, body = _post_json(daemon, f"/v1.41/commit?container={container_id}"
                                  "&pause=True", None)
        assert status == 201, body
        ok(daemon, "wait", container_id)
        ok(daemon, "rm", container_id)
        ok(daemon, "rmi", json.loads(body)["Id"])

"""``--live-restore``: containers outlive a stopped, killed or upgraded daemon, and the
next daemon takes them back (real daemons, runc containers and the docker CLI)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockertw.daemon.jsonlog import parse_time
from dockertw.runtime.mounts import mounts_under
from tests.cli import cli, import_image, inspect, ok
from tests.support import REPO, Daemon, process_alive, wait_for

TICKER = "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"


@pytest.fixture
def live(start_daemon: Callable[..., Daemon], busybox_tar: Path) -> Iterator[Daemon]:
    """A ``--live-restore`` daemon with ``bb:1``; whatever it leaves running is killed
    afterwards."""
    daemon = start_daemon("--live-restore")
    try:
        import_image(daemon, busybox_tar, "bb:1")
        yield daemon
    finally:
        daemon.kill_leftovers()


def state(daemon: Daemon, name: str) -> dict[str, Any]:
    return dict(inspect(daemon, name)["State"])


def ticks(daemon: Daemon, name: str) -> list[int]:
    return [int(line) for line in ok(daemon, "logs", name).split()]


def test_a_killed_daemon_finds_its_containers_running_and_their_output_whole(live: Daemon):
    daemon = live
    ok(daemon, "run", "-d", "--name", "ticker", "bb:1", "sh", "-c", TICKER)
    ok(daemon, "run", "-d", "-t", "--name", "tty", "bb:1", "sh", "-c", TICKER)
    pids = {name: state(daemon, name)["Pid"] for name in ("ticker", "tty")}
    wait_for(lambda: len(ticks(daemon, "ticker")) >= 3, "the first ticks")
    [holder] = daemon.holders()
    assert os.getsid(holder) != os.getsid(daemon.process.pid)  # type: ignore[union-attr]
    daemon.stop(signal.SIGKILL)
    time.sleep(1.0)  # about 20 lines each, written while no daemon runs
    daemon.start()
    for name, pid in pids.items():
        shown = state(daemon, name)
        assert (shown["Running"], shown["Pid"], shown["Status"]) == (True, pid, "running")
    assert daemon.holders() == [holder]
    for name in pids:
        seen = wait_for(lambda name=name: (lambda t: t if len(t) > 40 else None)(
            ticks(daemon, name)), "the ticks of the absence")
        assert seen == list(range(len(seen))), f"{name}: lines lost or repeated"
    assert ok(daemon, "exec", "ticker", "echo", "from exec") == "from exec\n"
    stats = ok(daemon, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "ticker")
    assert stats.split()[0] == "ticker" and int(stats.split()[1]) >= 1
    _follows_new_output(daemon, "ticker")
    waiting = subprocess.Popen(["docker", "-H", f"unix://{daemon.socket}", "wait", "ticker"],
                               stdout=subprocess.PIPE, text=True)
    ok(daemon, "stop", "-t", "0", "ticker")
    assert waiting.communicate(timeout=20)[0].strip() == "137"
    assert state(daemon, "ticker")["Status"] == "exited"
    assert not process_alive(pids["ticker"])
    assert state(daemon, "tty")["Running"]
    ok(daemon, "rm", "-f", "ticker", "tty")
    assert mounts_under(daemon.root) == [] and daemon.container_cgroups() == []


def _follows_new_output(daemon: Daemon, name: str) -> None:
    follow = subprocess.Popen(["docker", "-H", f"unix://{daemon.socket}", "logs", "-f",
                               "--tail", "1", name], stdout=subprocess.PIPE, text=True)
    try:
        assert follow.stdout is not None
        first = int(follow.stdout.readline())
        assert int(follow.stdout.readline()) == first + 1  # written after the restart
    finally:
        follow.kill()
        follow.wait()


def test_containers_that_ended_while_the_daemon_was_away_have_their_exit_code(live: Daemon):
    daemon = live
    ok(daemon, "run", "-d", "--name", "quits", "bb:1", "sh", "-c", "sleep 1; exit 42")
    ok(daemon, "run", "-d", "--name", "back", "--restart", "on-failure", "bb:1",
       "sh", "-c", "sleep 1; exit 3")
    ok(daemon, "run", "-d", "--rm", "--name", "gone", "bb:1", "sh", "-c", "sleep 1")
    quits = inspect(daemon, "quits")["Id"]
    daemon.stop(signal.SIGKILL)
    killed_at = time.time()
    time.sleep(2.0)
    daemon.start()
    shown = state(daemon, "quits")
    assert (shown["Status"], shown["ExitCode"]) == ("exited", 42)
    assert killed_at < parse_time(shown["FinishedAt"]) / 1e9 < killed_at + 2.0  # its own
    assert not (daemon.exec_root / "runc" / quits).exists()
    assert all(quits not in str(path) for path in mounts_under(daemon.root))
    wait_for(lambda: inspect(daemon, "back")["RestartCount"] >= 1, "the policy's restart")
    wait_for(lambda: "gone" not in ok(daemon, "ps", "-a", "--format", "{{.Names}}"),
             "the --rm container to go")
    ok(daemon, "rm", "-f", "quits", "back")


def test_a_stopped_daemon_leaves_them_running_with_their_input(live: Daemon):
    daemon = live
    ok(daemon, "run", "-d", "-i", "--name", "cat", "bb:1", "sh", "-c", "printf partial; cat")
    ok(daemon, "run", "-d", "--name", "frozen", "bb:1", "sleep", "1000")
    ok(daemon, "pause", "frozen")
    pid = state(daemon, "cat")["Pid"]
    ok(daemon, "exec", "-d", "cat", "sh", "-c", "sleep 1.5; touch /exec-done")
    time.sleep(0.5)  # "partial" is read, and held: a line is logged once it ends
    assert "partial" not in ok(daemon, "logs", "cat")
    assert daemon.stop() == -signal.SIGTERM  # a clean stop (twistd exits by the signal)
    assert process_alive(pid)
    daemon.start()
    assert state(daemon, "cat")["Pid"] == pid
    assert state(daemon, "frozen")["Status"] == "paused"
    ok(daemon, "unpause", "frozen")
    assert state(daemon, "frozen")["Status"] == "running"
    attach = subprocess.Popen(["docker", "-H", f"unix://{daemon.socket}", "attach", "cat"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert attach.stdin is not None and attach.stdout is not None
        attach.stdin.write("typed after the restart\n")
        attach.stdin.flush()
        assert attach.stdout.readline() == "typed after the restart\n"  # cat's echo
    finally:
        attach.kill()
        attach.wait()
    assert ok(daemon, "logs", "cat").startswith("partial")
    # the exec started before the restart was left to finish
    wait_for(lambda: cli(daemon, "exec", "cat", "test", "-e", "/exec-done").returncode == 0,
             "the exec of the earlier daemon to finish")
    ok(daemon, "rm", "-f", "cat", "frozen")


def test_a_daemon_without_the_option_stops_what_the_holder_kept(live: Daemon):
    daemon = live
    ok(daemon, "run", "-d", "--name", "runs", "bb:1", "sleep", "1000")
    ok(daemon, "run", "-d", "--name", "ends", "bb:1", "sh", "-c", "sleep 0.5; exit 5")
    pid = state(daemon, "runs")["Pid"]
    daemon.stop(signal.SIGKILL)
    time.sleep(1.0)
    daemon.args.remove("--live-restore")
    daemon.start()
    assert not process_alive(pid) and daemon.holders() == []
    assert (state(daemon, "runs")["ExitCode"], state(daemon, "ends")["ExitCode"]) == (137, 5)
    assert mounts_under(daemon.root) == [] and daemon.container_cgroups() == []
    assert list((daemon.exec_root / "runc").iterdir()) == []
    ok(daemon, "start", "runs")  # and it runs them as before, without a holder
    assert daemon.holders() == []
    ok(daemon, "rm", "-f", "runs", "ends")


def test_an_upgraded_daemon_takes_back_what_the_old_one_started(live: Daemon,
                                                                workdir: Path):
    daemon = live
    old = workdir / "old-release"
    shutil.copytree(REPO / "dockertw", old / "dockertw")
    shutil.copytree(REPO / "twisted", old / "twisted")
    daemon.stop()
    daemon.pythonpath = str(old)
    daemon.start()
    ok(daemon, "run", "-d", "--name", "ticker", "bb:1", "sh", "-c", TICKER)
    [holder] = daemon.holders()
    daemon.stop()
    shutil.rmtree(old)  # the old release is gone from disk
    daemon.pythonpath = str(REPO)
    daemon.start()
    assert daemon.holders() == [holder]
    assert state(daemon, "ticker")["Running"]
    assert ok(daemon, "exec", "ticker", "echo", "new") == "new\n"
    ok(daemon, "run", "--rm", "bb:1", "true")  # a new run through the old holder
    ok(daemon, "rm", "-f", "ticker")


def test_one_holder_for_all_containers(live: Daemon):
    daemon = live
    for index in range(5):
        ok(daemon, "run", "-d", "--name", f"c{index}", "bb:1", "sleep", "1000")
    [holder] = daemon.holders()
    children = Path(f"/proc/{holder}/task/{holder}/children").read_text().split()
    pids = {str(state(daemon, f"c{index}")["Pid"]) for index in range(5)}
    assert pids <= set(children)  # the inits are the holder's, not the daemon's
    ok(daemon, "rm", "-f", *(f"c{index}" for index in range(5)))
    daemon.stop()
    wait_for(lambda: daemon.holders() == [], "the holder to leave once it holds nothing")


def test_a_holder_that_dies_leaves_the_daemon_in_charge(live: Daemon):
    daemon = live
    ok(daemon, "run", "-d", "--name", "orphan", "bb:1", "sleep", "1000")
    [holder] = daemon.holders()
    os.kill(holder, signal.SIGKILL)
    wait_for(lambda: daemon.holders() == [], "the daemon to reap its holder")
    ok(daemon, "stop", "-t", "0", "orphan")  # re-parented to the daemon, a subreaper
    assert state(daemon, "orphan")["ExitCode"] == 137
    assert ok(daemon, "run", "--rm", "bb:1", "echo", "again") == "again\n"
    assert len(daemon.holders()) == 1 and daemon.holders() != [holder]  # a new one
    ok(daemon, "rm", "orphan")


def test_a_second_daemon_on_the_same_root_refuses_to_start(live: Daemon, workdir: Path):
    home = workdir / "second"
    home.mkdir()
    second = Daemon(home, ["--live-restore", "--root", str(live.root)])
    try:
        second.start(wait=False)
        assert second.wait(30) != 0
        assert "another daemon is using the state root" in second.output()
    finally:
        second.stop()
    assert ok(live, "run", "--rm", "bb:1", "echo", "unharmed") == "unharmed\n"

"""Acceptance: log options, rotation and reading with the real ``docker`` CLI."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockertw.streams.stdcopy import StdcopyDecoder
from tests.cli import cli, import_image, inspect, ok
from tests.support import Daemon, unix_get

pytestmark = pytest.mark.integration

# numbered lines of 100 bytes: "00001 xxx…"
_NUMBERED = ("i=1; while [ $i -le {count} ]; do printf '%05d %094d\\n' $i 0; "
             "i=$((i+1)); done")


@pytest.fixture
def logs_daemon(daemon: Daemon, busybox_tar: Path) -> Iterator[Daemon]:
    import_image(daemon, busybox_tar, "bb:1")
    try:
        yield daemon
    finally:
        cli(daemon, "rm", "-f", *ok(daemon, "ps", "-aq").split())
        daemon.stop()
        assert "Traceback" not in daemon.output(), daemon.output()


def _numbers(text: str) -> list[int]:
    return [int(line.split()[0]) for line in text.splitlines()]


def test_rotation_keeps_max_file_files_and_logs_span_them(logs_daemon: Daemon):
    daemon = logs_daemon
    ok(daemon, "run", "--name", "rot", "--log-opt", "max-size=10k", "--log-opt",
       "max-file=3", "bb:1", "sh", "-c", _NUMBERED.format(count=1000))
    log_path = Path(inspect(daemon, "rot")["LogPath"])
    files = sorted(p.name for p in log_path.parent.glob(log_path.name + "*"))
    assert files == [log_path.name, log_path.name + ".1", log_path.name + ".2"]
    assert all((log_path.parent / name).stat().st_size <= 10_000 for name in files)
    shown = _numbers(ok(daemon, "logs", "rot"))
    assert shown == list(range(shown[0], 1001)) and len(shown) > 2 * 55  # 58 a file
    assert _numbers(ok(daemon, "logs", "--tail", "120", "rot")) == list(range(881, 1001))
    stamped = ok(daemon, "logs", "-t", "--tail", "2", "rot").splitlines()
    assert [line.split()[1] for line in stamped] == ["00999", "01000"]


def test_bad_log_options_answer_400_at_create(logs_daemon: Daemon):
    daemon = logs_daemon
    for options, message in [
        (["--log-opt", "bogus=1"], "unknown log opt 'bogus' for json-file log driver"),
        (["--log-opt", "max-size=ten"], "invalid size: 'ten'"),
        (["--log-opt", "max-size=1k", "--log-opt", "max-file=0"],
         "max-file cannot be less than 1"),
        (["--log-opt", "compress=true"], "compress cannot be true"),
        (["--log-driver", "syslog"], "logging driver 'syslog' is not supported"),
    ]:
        refused = cli(daemon, "create", *options, "bb:1", "true")
        assert refused.returncode != 0 and message in refused.stderr, (options, refused)
    assert ok(daemon, "ps", "-aq") == ""


def test_log_driver_none_keeps_no_log(logs_daemon: Daemon):
    daemon = logs_daemon
    done = cli(daemon, "run", "--name", "quiet", "--log-driver", "none", "bb:1",
               "echo", "hello")
    assert (done.returncode, done.stdout) == (0, "hello\n"), done.stderr  # attached
    shown = inspect(daemon, "quiet")
    assert shown["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    assert not Path(shown["LogPath"]).exists()
    refused = cli(daemon, "logs", "quiet")
    assert refused.returncode != 0
    assert "configured logging driver does not support reading" in refused.stderr
    assert daemon.socket
    status, _, body = unix_get(daemon.socket, "/containers/quiet/logs?stdout=1")
    assert status == 501 and b"does not support reading" in body


def _follow(daemon: Daemon, name: str, *options: str) -> subprocess.Popen[str]:
    """``docker logs -f`` running in the background."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    return subprocess.Popen(["docker", "-H", f"unix://{daemon.socket}", "logs", "-f",
                             *options, name], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_followers_see_every_line_once_across_rotations(logs_daemon: Daemon):
    daemon = logs_daemon
    script = "sleep 0.5; " + _NUMBERED.format(count=3000).replace(
        "i=$((i+1))", "i=$((i+1)); [ $((i % 100)) -eq 0 ] && sleep 0.05")
    ok(daemon, "run", "-d", "--name", "fol", "--log-opt", "max-size=20k",
       "--log-opt", "max-file=2", "bb:1", "sh", "-c", script)
    early = _follow(daemon, "fol")
    deadline = time.monotonic() + 20
    while _numbers(cli(daemon, "logs", "--tail", "1", "fol").stdout or "0") < [400]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    late = _follow(daemon, "fol")  # joins while the files rotate under it
    for follower, first in ((early, 1), (late, None)):
        out, err = follower.communicate(timeout=120)
        assert follower.returncode == 0, err
        numbers = _numbers(out)
        assert numbers == list(range(first or numbers[0], 3001))


def test_follow_with_tail_from_a_running_container(logs_daemon: Daemon):
    daemon = logs_daemon
    ok(daemon, "run", "-d", "--name", "tf", "--log-opt", "max-size=5k", "--log-opt",
       "max-file=4", "bb:1", "sh", "-c",
       _NUMBERED.format(count=200) + "; sleep 1; echo end")
    deadline = time.monotonic() + 10
    while "00200" not in cli(daemon, "logs", "--tail", "1", "tf").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    out, _ = _follow(daemon, "tf", "--tail", "3").communicate(timeout=30)
    assert out.splitlines()[-1] == "end"
    assert _numbers("\n".join(out.splitlines()[:-1])) == [198, 199, 200]


def test_a_follower_going_away_and_a_big_log(logs_daemon: Daemon):
    daemon = logs_daemon
    ok(daemon, "run", "-d", "--name", "big", "bb:1", "sh", "-c",
       _NUMBERED.format(count=30000) + "; sleep 100")
    deadline = time.monotonic() + 60
    while "30000" not in cli(daemon, "logs", "--tail", "1", "big").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    follower = _follow(daemon, "big")
    assert follower.stdout is not None
    assert follower.stdout.readline().startswith("00001 ")
    follower.kill()  # gone in the middle of 3 MB, paused by backpressure
    follower.communicate()
    assert _numbers(ok(daemon, "logs", "big")) == list(range(1, 30001))
    assert "Traceback" not in daemon.output() and "failed" not in daemon.output()
    ok(daemon, "rm", "-f", "big")


def test_a_follower_gets_a_frame_per_line_a_reader_blocks(logs_daemon: Daemon):
    """Clients that iterate a followed stream (docker-py's ``logs(stream=True)``) take
    each frame as a line, as Docker sends them; a plain read comes in blocks."""
    daemon = logs_daemon
    ok(daemon, "run", "--name", "fl", "bb:1", "sh", "-c", "echo hello; echo world")
    frames = {}
    for follow in ("0", "1"):
        status, _, body = unix_get(daemon.socket or "",
                                   f"/containers/fl/logs?stdout=1&follow={follow}")
        assert status == 200
        frames[follow] = [chunk.data for chunk in StdcopyDecoder().feed(body)]
    assert frames == {"0": [b"hello\nworld\n"], "1": [b"hello\n", b"world\n"]}
    ok(daemon, "rm", "fl")

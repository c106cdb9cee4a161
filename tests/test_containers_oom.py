"""OOM kills read from a cgroup's files, v2 and v1 (a real run is in test_policy_cli)."""

from __future__ import annotations

from pathlib import Path

from dockertw.daemon.containers.running.oom import oom_kills


def test_cgroup_v2_memory_events(tmp_path: Path) -> None:
    directory = tmp_path / "dockertw" / "abc"
    directory.mkdir(parents=True)
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n")
    assert oom_kills("/dockertw/abc", tmp_path) == 1


def test_cgroup_v1_oom_control(tmp_path: Path) -> None:
    directory = tmp_path / "memory" / "dockertw" / "abc"
    directory.mkdir(parents=True)
    (directory / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert oom_kills("dockertw/abc", tmp_path) == 3


def test_no_cgroup_no_kills(tmp_path: Path) -> None:
    assert oom_kills("/dockertw/gone", tmp_path) == 0
    directory = tmp_path / "memory" / "old"
    directory.mkdir(parents=True)
    (directory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    assert oom_kills("/old", tmp_path) == 0

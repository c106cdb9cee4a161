"""Waiting for runtime commands a killed daemon left on its state directory."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from dockertw.runtime.inflight import await_commands, commands_on
from tests.support import wait_for

_SLEEPER = "import time; time.sleep(float(__import__('sys').argv[1]))"


def _command(seconds: float, root: Path) -> subprocess.Popen[bytes]:
    """A process whose command line names ``--root root``, as a runc command's does;
    answered once /proc shows that command line (Popen may return before the kernel
    has set it up)."""
    command = subprocess.Popen([sys.executable, "-c", _SLEEPER, str(seconds), "--root",
                                str(root)])
    wait_for(lambda: command.pid in commands_on(root), "the command line to show", 10)
    return command


def test_a_command_on_the_root_is_waited_for(tmp_path: Path):
    command = _command(0.5, tmp_path)
    try:
        started = time.monotonic()
        assert await_commands(tmp_path) == []
        assert time.monotonic() - started >= 0.3
        assert command.poll() is not None or commands_on(tmp_path) == []
    finally:
        command.kill()
        command.wait()


def test_a_command_on_another_root_is_not(tmp_path: Path):
    command = _command(30, tmp_path / "other")
    try:
        started = time.monotonic()
        assert await_commands(tmp_path) == []
        assert time.monotonic() - started < 1
    finally:
        command.kill()
        command.wait()


def test_the_wait_is_bounded_and_names_what_still_runs(tmp_path: Path):
    command = _command(30, tmp_path)
    try:
        assert await_commands(tmp_path, timeout=0.2) == [command.pid]
    finally:
        command.kill()
        command.wait()

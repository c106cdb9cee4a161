"""bootstrap.sh and what it installs: systemd units, the first image, pinned packages."""

from __future__ import annotations

import configparser
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli import ok
from tests.support import REPO, Daemon

pytestmark = pytest.mark.integration

StartDaemon = Callable[..., Daemon]


def _bootstrap(*args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "bootstrap.sh"), *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                          check=False)


@pytest.fixture
def units(workdir: Path) -> Path:
    """The units for the virtual environment running the tests."""
    venv = Path(sys.executable).parent.parent
    done = _bootstrap("units", str(workdir / "units"), env={"DOCKERTW_VENV": str(venv)})
    assert done.returncode == 0, done.stderr
    return workdir / "units"


def test_the_systemd_units_verify(units: Path):
    service, socket = units / "dockertw.service", units / "dockertw.socket"
    done = subprocess.run(["systemd-analyze", "verify", str(socket), str(service)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    ours = [line for line in done.stderr.splitlines() if "dockertw" in line]
    assert ours == [], ours


def test_the_service_runs_the_venv_twistd_on_fd(units: Path):
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(units / "dockertw.service")
    command = service["Service"]["ExecStart"].split()
    assert command[0] == str(Path(sys.executable).with_name("twistd"))
    assert Path(command[0]).exists()
    assert command[-2:] == ["-H", "fd://"]
    assert service["Service"]["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    socket = configparser.ConfigParser(strict=False, interpolation=None)
    socket.read(units / "dockertw.socket")
    assert socket["Socket"]["ListenStream"] == "/run/dockertw.sock"
    assert (socket["Socket"]["SocketMode"], socket["Socket"]["SocketGroup"]) == ("0660",
                                                                                 "docker")


def test_the_first_image_command_imports_busybox(daemon: Daemon):
    done = _bootstrap("image", "first:1", env={"DOCKER_HOST": f"unix://{daemon.socket}"})
    assert done.returncode == 0, done.stderr
    assert f"try: docker -H unix://{daemon.socket} run --rm first:1 echo hello" in done.stdout
    assert ok(daemon, "run", "--rm", "first:1", "echo", "hello") == "hello\n"
    assert ok(daemon, "image", "inspect", "--format", "{{json .Config.Cmd}}",
              "first:1").strip() == '["sh"]'


def test_the_daemon_says_which_docker_command_reaches_it(daemon: Daemon):
    assert f"try: docker -H unix://{daemon.socket} version" in daemon.output()


def _requirements() -> list[str]:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    lines = setup["options"]["install_requires"].splitlines()
    lines += setup["options.extras_require"]["test"].splitlines()
    return [re.split(r"[\s\[<>=]", line.strip(), maxsplit=1)[0]
            for line in lines if line.strip()]


def test_every_requirement_is_pinned_in_the_constraints():
    pinned = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    for requirement in _requirements():
        assert re.sub(r"[-_.]+", "-", requirement).lower() in pinned, requirement
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+-]*", version) for version in pinned.values())

"""Debian's docker-compose (1.x, docker-py underneath): ``build`` then ``run`` of a
service with ``build: .``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import Daemon

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("docker-compose") is None,
                       reason="docker-compose is not installed (./bootstrap.sh test installs it)"),
]

_SERVICE = """\
version: "3"
services:
  app:
    build: .
    image: composed:1
{network}"""


def compose(daemon: Daemon, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    env["DOCKER_HOST"] = f"unix://{daemon.socket}"
    return subprocess.run(["docker-compose", "-p", "dtwbuild", *args], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _project(directory: Path, network: str) -> Path:
    (directory / "Dockerfile").write_text('FROM bb:1\nCOPY msg /msg\nCMD ["cat", "/msg"]\n')
    (directory / "msg").write_text("hello from compose\n")
    (directory / "docker-compose.yml").write_text(_SERVICE.format(network=network))
    return directory


def _build_and_run(daemon: Daemon, project: Path) -> None:
    try:
        built = compose(daemon, project, "build")
        assert built.returncode == 0, built.stdout + built.stderr
        assert "Successfully tagged composed:1" in built.stdout
        ran = compose(daemon, project, "run", "--rm", "app")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert ran.stdout.splitlines()[-1] == "hello from compose"
    finally:
        compose(daemon, project, "down")


def test_compose_builds_and_runs_a_service(running_daemon: Daemon, tmp_path: Path) -> None:
    project = _project(tmp_path, "    network_mode: none\n")
    _build_and_run(running_daemon, project)


def test_compose_on_its_default_network(running_daemon: Daemon, tmp_path: Path) -> None:
    _build_and_run(running_daemon, _project(tmp_path, ""))


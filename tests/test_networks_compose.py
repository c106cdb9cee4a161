"""docker-compose (Debian's, 1.29) against the daemon: a two-service project whose
client fetches a page from the web service by its service name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import ok
from tests.support import Daemon

pytestmark = pytest.mark.integration

_WEB = ("mkdir -p /www && echo hello-from-web > /www/index.html && "
        "httpd -f -p 8080 -h /www")
_CLIENT = ("for i in $$(seq 20); do printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' "
           "| nc web 8080 && break; sleep 0.25; done")
_PROJECT = f"""\
version: "3"
services:
  web:
    image: bb:1
    command: {json.dumps(["sh", "-c", _WEB])}
  client:
    image: bb:1
    depends_on: [web]
    command: {json.dumps(["sh", "-c", _CLIENT])}
"""


def _compose(daemon: Daemon, project: Path, *args: str) -> str:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (./bootstrap.sh test installs it)"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DOCKER_", "COMPOSE_"))}
    env.update(DOCKER_HOST=f"unix://{daemon.socket}", DOCKER_CONFIG=str(project / ".docker"))
    done = subprocess.run([binary, "-p", "proj", *args], cwd=project, env=env, text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, f"docker-compose {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_a_service_fetches_a_page_from_another_by_name(net_daemon: Daemon, workdir: Path):
    daemon = net_daemon
    project = workdir / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(_PROJECT)
    _compose(daemon, project, "up", "-d")
    assert ok(daemon, "wait", "proj_client_1").strip() == "0"
    listed = _compose(daemon, project, "ps")
    assert "proj_web_1" in listed and "Up" in listed and "proj_client_1" in listed
    assert "hello-from-web" in _compose(daemon, project, "logs", "client")
    networks = ok(daemon, "network", "ls", "--format", "{{.Name}}").split()
    assert "proj_default" in networks
    _compose(daemon, project, "down")
    assert "proj_default" not in ok(daemon, "network", "ls", "--format", "{{.Name}}").split()
    assert ok(daemon, "ps", "-aq") == ""

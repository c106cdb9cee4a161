"""The scripts in docs/examples run against a real daemon (and a real SOCKS5 proxy)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.proxies import ProxyProcess
from tests.support import REPO, Daemon, docker, free_port

pytestmark = pytest.mark.integration

EXAMPLES = REPO / "docs" / "examples"


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=60, check=False,
                          env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_version_via_socks5(start_daemon, microsocks: ProxyProcess):
    port = free_port()
    start_daemon("--listen", f"tcp:{port}:interface=127.0.0.1")
    out = _run("version_via_socks5.py", f"tcp://0.0.0.0:{port}",
               f"socks5h://127.0.0.1:{microsocks.port}")
    assert "API 1.56" in out
    assert "route: socks5 socks5h" in out


def test_system_summary(daemon: Daemon):
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    time.sleep(0.2)
    out = _run("system_summary.py", env={"DOCKER_HOST": f"unix://{daemon.socket}"})
    assert f"kernel {os.uname().release}" in out
    assert "API 1.56" in out
    assert "event: daemon reload" in out


def test_list_containers(daemon: Daemon, busybox_tar):
    host = f"unix://{daemon.socket}"
    assert docker("-H", host, "import", str(busybox_tar), "bb:ex").returncode == 0
    for name in ("ex-one", "ex-two", "other"):
        done = docker("-H", host, "create", "--name", name, "bb:ex", "true")
        assert done.returncode == 0, done.stderr
    out = _run("list_containers.py", "ex-", env={"DOCKER_HOST": host})
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "STATUS", "NAMES"]
    assert sorted(line.split()[-1] for line in lines[1:]) == ["ex-one", "ex-two"]
    assert all("bb:ex" in line and "Created" in line for line in lines[1:])


def test_stream_logs_follows_until_the_container_stops(daemon: Daemon, busybox_tar):
    host = f"unix://{daemon.socket}"
    assert docker("-H", host, "import", str(busybox_tar), "bb:logs").returncode == 0
    started = docker("-H", host, "run", "-d", "--name", "talker", "bb:logs", "sh", "-c",
                     "echo one; sleep 1; echo two >&2; sleep 1; echo three")
    assert started.returncode == 0, started.stderr
    out = _run("stream_logs.py", "talker", env={"DOCKER_HOST": host})
    lines = [line.split(" ", 3) for line in out.splitlines()]
    assert [(line[0], line[3]) for line in lines] == [
        ("out", "one"), ("err", "two"), ("out", "three")]
    assert all(line[2].endswith("Z") for line in lines)  # each line has its timestamp
    docker("-H", host, "rm", "-f", "talker")

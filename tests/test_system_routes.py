"""System routes over a real daemon's UNIX socket: headers, shapes, versions, events."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from typing import Any

import pytest

from tests.support import Daemon, docker, unix_get

pytestmark = pytest.mark.integration

MIDDLEWARE_HEADERS = ("Api-Version", "Ostype", "Server", "Docker-Experimental")


@pytest.mark.parametrize("prefix", ["", "/v1.56", "/v1.41", "/v1.24", "/v1.41.0"])
@pytest.mark.parametrize("path", ["/_ping", "/version", "/info", "/system/df", "/events"])
def test_system_routes_answer_bare_and_versioned(daemon: Daemon, prefix: str, path: str):
    query = "?since=0&until=1" if path == "/events" else ""
    status, headers, body = unix_get(daemon.socket, prefix + path + query)
    assert status == 200
    for name in MIDDLEWARE_HEADERS:
        assert name in headers
    assert headers["Api-Version"] == "1.56"
    if path == "/_ping":
        assert body == b"OK"
        assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
        assert headers["Pragma"] == "no-cache"
    elif path == "/events":
        assert body == b""
    else:
        assert headers["Content-Type"] == "application/json"
        assert isinstance(json.loads(body), dict)


def test_head_ping_has_empty_body_and_api_version(daemon: Daemon):
    status, headers, body = unix_get(daemon.socket, "/_ping", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Api-Version"] == "1.56"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_options_answers_any_path_with_an_empty_200(daemon: Daemon):
    status, headers, body = unix_get(daemon.socket, "/v1.41/containers/json", "OPTIONS")
    assert (status, body, headers["Content-Length"]) == (200, b"", "0")
    assert headers["Api-Version"] == "1.56"


@pytest.mark.parametrize("version, message", [
    ("1.12", "client version 1.12 is too old. Minimum supported API version is 1.24, "
             "please upgrade your client to a newer version"),
    ("9.99", "client version 9.99 is too new. Maximum supported API version is 1.56"),
])
def test_out_of_range_versions_get_dockers_400(daemon: Daemon, version: str, message: str):
    status, headers, body = unix_get(daemon.socket, f"/v{version}/version")
    assert status == 400
    if version == "1.12":  # older than 1.24: plain text, as moby
        assert headers["Content-Type"] == "text/plain; charset=utf-8"
        assert body == message.encode() + b"\n"
    else:
        assert headers["Content-Type"] == "application/json"
        assert json.loads(body) == {"message": message}
    assert "Docker-Experimental" not in headers
    assert headers["Api-Version"] == "1.56"


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1.41/nonexistent/path"), ("GET", "/nonexistent"), ("DELETE", "/v1.41/_ping"),
    ("HEAD", "/v1.41/version"), ("POST", "/version"),
])
def test_unknown_paths_and_methods_are_page_not_found(daemon: Daemon, method: str, path: str):
    status, headers, body = unix_get(daemon.socket, path, method=method)
    assert status == 404
    if method != "HEAD":
        assert body == b'{"message":"page not found"}\n'
    assert headers["Content-Type"] == "application/json"
    assert "Api-Version" not in headers


@pytest.mark.parametrize("query, message", [
    ("filters=%7Bbad", "invalid filter"),
    ("filters=%7B%22foo%22%3A%5B%22x%22%5D%7D", "Invalid filter 'foo'"),
    ("since=yesterday", "invalid value for since"),
    ("since=20&until=10", "`since` time (20.000000000) cannot be after `until` time"),
])
def test_bad_event_parameters_are_400(daemon: Daemon, query: str, message: str):
    status, _, body = unix_get(daemon.socket, f"/v1.41/events?{query}")
    assert status == 400
    assert message in json.loads(body)["message"]
    assert unix_get(daemon.socket, "/_ping")[0] == 200


def test_swarm_groups_answer_docker_shaped_errors(daemon: Daemon):
    status, headers, body = unix_get(daemon.socket, "/v1.41/services")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert "not a swarm manager" in json.loads(body)["message"]
    status, _, body = unix_get(daemon.socket, "/v1.41/plugins/x/json")
    assert (status, json.loads(body)) == (404, {"message": 'plugin "x" not found'})
    status, _, body = unix_get(daemon.socket, "/v1.41/containers/x/checkpoints",
                               method="POST")
    assert status == 501
    assert "experimental" in json.loads(body)["message"]


def test_docker_cli_shows_swarm_error(daemon: Daemon):
    done = docker("-H", f"unix://{daemon.socket}", "service", "ls")
    assert done.returncode != 0
    assert "This node is not a swarm manager" in done.stderr


def _reload_events(daemon: Daemon, *args: str) -> list[dict]:
    done = docker("-H", f"unix://{daemon.socket}", "events", *args,
                  "--filter", "type=daemon", "--format", "{{json .}}")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_docker_events_replays_a_reload_and_ends_at_until(daemon: Daemon):
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    # The CLI sends `--until 0s` as whole seconds: wait for the next one.
    time.sleep(1.1)
    events = _reload_events(daemon, "--since", "60s", "--until", "0s")
    assert [event["Action"] for event in events] == ["reload"]
    assert events[0]["Type"] == "daemon"
    assert _reload_events(daemon, "--since", "60s", "--until", "0s",
                          "--filter", "event=start") == []


def test_docker_events_streams_live_events(daemon: Daemon):
    assert daemon.process is not None
    watcher = subprocess.Popen(
        ["docker", "-H", f"unix://{daemon.socket}", "events", "--format", "{{.Action}}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})
    try:
        deadline = time.monotonic() + 10
        while "NEventsListener\":1" not in _info_text(daemon):
            assert time.monotonic() < deadline, "docker events never subscribed"
            time.sleep(0.05)
        daemon.process.send_signal(signal.SIGHUP)
        assert watcher.stdout is not None
        assert _line_within(watcher.stdout, 10) == "reload"
    finally:
        watcher.kill()
        watcher.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while "NEventsListener\":0" not in _info_text(daemon):
        assert time.monotonic() < deadline, "the subscription outlived its client"
        time.sleep(0.05)


def _line_within(stream: Any, seconds: float) -> str:
    """The next line of ``stream``, or a failure instead of a hang."""
    ready, _, _ = select.select([stream], [], [], seconds)
    assert ready, f"no line in {seconds} s"
    return str(stream.readline()).strip()


def _info_text(daemon: Daemon) -> str:
    return unix_get(daemon.socket, "/info")[2].decode()


INFO_KEYS = {
    "ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
    "Images", "Driver", "DriverStatus", "Plugins", "MemoryLimit", "SwapLimit",
    "KernelMemory", "KernelMemoryTCP", "CpuCfsPeriod", "CpuCfsQuota", "CPUShares", "CPUSet",
    "PidsLimit", "IPv4Forwarding", "BridgeNfIptables", "BridgeNfIp6tables", "Debug", "NFd",
    "OomKillDisable", "NGoroutines", "SystemTime", "LoggingDriver", "CgroupDriver",
    "CgroupVersion", "NEventsListener", "KernelVersion", "OperatingSystem", "OSVersion",
    "OSType", "Architecture", "IndexServerAddress", "RegistryConfig", "NCPU", "MemTotal",
    "GenericResources", "DockerRootDir", "HttpProxy", "HttpsProxy", "NoProxy", "Name",
    "Labels", "ExperimentalBuild", "ServerVersion", "Runtimes", "DefaultRuntime", "Swarm",
    "LiveRestoreEnabled", "Isolation", "InitBinary", "ContainerdCommit", "RuncCommit",
    "InitCommit", "SecurityOptions", "Warnings",
}


def test_info_has_every_key_docker_sends_with_true_host_values(daemon: Daemon):
    info = json.loads(unix_get(daemon.socket, "/v1.41/info")[2])
    assert set(info) >= INFO_KEYS
    assert info["OSType"] == "linux"
    assert info["Architecture"] == os.uname().machine
    assert info["Name"] == os.uname().nodename
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    assert info["MemTotal"] == total_kib * 1024
    assert info["DefaultRuntime"] == "runc"
    assert info["RuncCommit"]["ID"], "runc is installed by bootstrap.sh and must be found"
    assert json.loads(unix_get(daemon.socket, "/info")[2])["ID"] == info["ID"]


def test_engine_id_survives_a_restart(start_daemon):
    first = start_daemon()
    engine_id = json.loads(unix_get(first.socket, "/info")[2])["ID"]
    first.stop()
    again = Daemon(first.workdir).start()
    try:
        assert json.loads(unix_get(again.socket, "/info")[2])["ID"] == engine_id
    finally:
        again.stop()


def test_version_reports_this_daemon(daemon: Daemon):
    version = json.loads(unix_get(daemon.socket, "/v1.41/version")[2])
    assert version["ApiVersion"] == "1.56"
    assert version["MinAPIVersion"] == "1.24"
    assert version["KernelVersion"] == os.uname().release
    assert [c["Name"] for c in version["Components"]] == ["Engine", "runc"]


def test_disk_usage_shape(daemon: Daemon):
    usage = json.loads(unix_get(daemon.socket, "/v1.41/system/df")[2])
    assert set(usage) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache",
                          "BuilderSize"}
    done = docker("-H", f"unix://{daemon.socket}", "system", "df")
    assert done.returncode == 0, done.stderr
    assert "Images" in done.stdout


def test_plain_tcp_on_all_addresses_logs_a_warning(start_daemon):
    from tests.support import free_port
    port = free_port()
    daemon = start_daemon("--listen", f"tcp:{port}")
    assert "without TLS is insecure" in daemon.output()
    quiet = start_daemon("--listen", f"tcp:{free_port()}:interface=127.0.0.1")
    assert "insecure" not in quiet.output()

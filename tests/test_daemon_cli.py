"""Acceptance: a real daemon process, its listeners, and the real ``docker`` CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.certs import Authority
from tests.cli import cli, import_image, ok
from tests.support import Daemon, docker, free_port, twistd_command, unix_get

pytestmark = pytest.mark.integration

StartDaemon = Callable[..., Daemon]


def test_docker_version_over_unix_and_info_over_tcp_at_once(start_daemon: StartDaemon):
    port = free_port()
    daemon = start_daemon("--listen", f"tcp:{port}:interface=127.0.0.1")

    version = subprocess.Popen(
        ["docker", "-H", f"unix://{daemon.socket}", "version", "--format", "{{json .}}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")})
    info = docker("-H", f"tcp://127.0.0.1:{port}", "info", "--format", "{{json .}}")
    version_out, version_err = version.communicate(timeout=30)

    assert version.returncode == 0, version_err
    server = json.loads(version_out)["Server"]
    assert server["ApiVersion"] == "1.56"
    assert server["Os"] == "linux"
    assert server["KernelVersion"] == os.uname().release
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["NCPU"] == os.cpu_count()
    assert facts["DockerRootDir"] == str(daemon.root)
    assert facts["KernelVersion"] == os.uname().release
    assert facts["MemTotal"] > 0


def test_every_request_is_logged_with_listener_method_path_status(daemon: Daemon):
    status, _, _ = unix_get(daemon.socket, "/v1.41/version")
    assert status == 200
    deadline = time.monotonic() + 5
    while "GET /v1.41/version 200" not in daemon.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(line for line in daemon.output().splitlines()
                if "GET /v1.41/version 200" in line)
    assert f"unix:{daemon.socket}" in line
    assert line.rstrip().endswith("ms")


class TestTLS:
    @pytest.fixture
    def pki(self, workdir: Path) -> dict[str, Path]:
        authority = Authority(workdir)
        server = authority.issue("server", "localhost", server=True,
                                 hosts=("127.0.0.1", "localhost"))
        client = authority.issue("client", "client", server=False)
        stranger_ca = Authority(workdir, "other CA")
        stranger = stranger_ca.issue("stranger", "client", server=False)
        return {"ca": authority.files.cert, "server_cert": server.cert,
                "server_key": server.key, "client_cert": client.cert,
                "client_key": client.key, "stranger_cert": stranger.cert,
                "stranger_key": stranger.key}

    @pytest.fixture
    def tls_daemon(self, start_daemon: StartDaemon, pki: dict[str, Path]) -> tuple[Daemon, int]:
        port = free_port()
        daemon = start_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                              "--tlscacert", str(pki["ca"]),
                              "--tlscert", str(pki["server_cert"]),
                              "--tlskey", str(pki["server_key"]))
        return daemon, port

    def _version(self, port: int, ca: Path, cert: Path | None, key: Path | None):
        args = ["--tlsverify", "--tlscacert", str(ca)]
        if cert is not None and key is not None:
            args += ["--tlscert", str(cert), "--tlskey", str(key)]
        return docker(*args, "-H", f"tcp://127.0.0.1:{port}", "version",
                      "--format", "{{.Server.APIVersion}}")

    def test_client_certificate_signed_by_the_ca_is_accepted(self, tls_daemon, pki):
        _, port = tls_daemon
        done = self._version(port, pki["ca"], pki["client_cert"], pki["client_key"])
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1.56"

    def test_no_client_certificate_is_refused(self, tls_daemon, pki):
        _, port = tls_daemon
        done = self._version(port, pki["ca"], None, None)
        assert done.returncode != 0
        assert "certificate required" in done.stderr

    def test_client_certificate_of_another_ca_is_refused(self, tls_daemon, pki):
        _, port = tls_daemon
        done = self._version(port, pki["ca"], pki["stranger_cert"], pki["stranger_key"])
        assert done.returncode != 0
        assert "unknown certificate authority" in done.stderr

    def test_unix_listener_stays_plain_beside_tls(self, tls_daemon):
        daemon, _ = tls_daemon
        assert unix_get(daemon.socket, "/_ping")[2] == b"OK"

    def test_docker_cp_streams_over_tls_both_ways(self, tls_daemon, pki, busybox_tar,
                                                  workdir: Path):
        daemon, port = tls_daemon
        import_image(daemon, busybox_tar, "bb:1")
        tls = ["--tlsverify", "--tlscacert", str(pki["ca"]), "--tlscert",
               str(pki["client_cert"]), "--tlskey", str(pki["client_key"]),
               "-H", f"tcp://127.0.0.1:{port}"]
        payload = workdir / "payload.bin"
        payload.write_bytes(os.urandom(1 << 20) * 12)
        ok(daemon, "create", "--name", "cptls", "bb:1", "true")
        try:
            done = docker(*tls, "cp", str(payload), "cptls:/tmp/")
            assert done.returncode == 0, done.stderr
            done = docker(*tls, "cp", "cptls:/tmp/payload.bin", str(workdir / "back.bin"))
            assert done.returncode == 0, done.stderr
        finally:
            cli(daemon, "rm", "-f", "cptls")
        assert (workdir / "back.bin").read_bytes() == payload.read_bytes()

    def test_tls_without_verify_needs_no_client_certificate(self, start_daemon, pki):
        port = free_port()
        start_daemon("-H", f"tcp://127.0.0.1:{port}", "--tls",
                     "--tlscert", str(pki["server_cert"]), "--tlskey", str(pki["server_key"]))
        done = self._version(port, pki["ca"], None, None)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1.56"


def test_second_listener_taken_exits_non_zero_and_closes_the_first(
        start_daemon: StartDaemon):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        listener = f"tcp:{port}:interface=127.0.0.1"
        daemon = start_daemon("--listen", listener, wait=False)
        started = time.monotonic()
        code = daemon.wait(timeout=10)
        elapsed = time.monotonic() - started
    assert code != 0
    assert elapsed < 5
    assert listener in daemon.output()
    assert "Address already in use" in daemon.output()
    assert not os.path.exists(daemon.socket)


def test_bad_description_exits_non_zero_naming_it(start_daemon: StartDaemon):
    daemon = start_daemon("--listen", "bogus:thing", wait=False)
    assert daemon.wait(timeout=10) != 0
    assert "bogus:thing" in daemon.output()
    assert not os.path.exists(daemon.socket)


def test_unix_socket_in_missing_directory_exits_naming_it(start_daemon: StartDaemon,
                                                          workdir: Path):
    bad = f"unix:{workdir}/missing/x.sock"
    daemon = start_daemon("--listen", bad, wait=False)
    assert daemon.wait(timeout=10) != 0
    assert bad in daemon.output()
    assert not os.path.exists(daemon.socket)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly_and_remove_the_socket(daemon: Daemon, sig: int):
    code = daemon.stop(sig)
    # twistd shuts down in order, then re-raises the signal it stopped for.
    assert code in (0, -sig)
    assert "Server Shut Down." in daemon.output()
    assert not os.path.exists(daemon.socket)
    assert not os.path.exists(daemon.socket + ".lock")


def test_stale_socket_of_a_killed_daemon_is_replaced(start_daemon: StartDaemon):
    first = start_daemon()
    first.stop(signal.SIGKILL)
    assert os.path.exists(first.socket)
    again = Daemon(first.workdir)
    try:
        again.start()
        assert unix_get(again.socket, "/_ping")[0] == 200
    finally:
        again.stop()


def test_twistd_help_lists_the_plugin_from_the_installed_package():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(twistd_command() + ["--help"], capture_output=True, text=True,
                          cwd="/", env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert any(line.split()[:1] == ["dockertw"] for line in done.stdout.splitlines())
    installed = subprocess.run(
        [sys.executable, "-c", "import dockertw, sys; sys.stdout.write(dockertw.__file__)"],
        capture_output=True, text=True, cwd="/", env=env, timeout=60, check=True)
    assert "site-packages" in installed.stdout


def test_usage_errors_exit_non_zero(start_daemon: StartDaemon):
    daemon = start_daemon("-H", "ssh://example", wait=False)
    assert daemon.wait(timeout=10) != 0
    assert "ssh://example" in daemon.output()

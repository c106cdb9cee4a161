"""A real daemon configured by daemon.json and dockerd's flags, driven by the docker CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dockertw.versions import MAX_API_VERSION
from tests.cli import cli, import_image, inspect, ok
from tests.support import REPO, Daemon, default_signals

pytestmark = pytest.mark.integration

StartDaemon = Callable[..., Daemon]


def _info(daemon: Daemon) -> dict:
    return json.loads(ok(daemon, "info", "--format", "{{json .}}"))


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _refused(start_daemon: StartDaemon, *args: str, config: dict | None = None) -> str:
    daemon = start_daemon(*args, config=config, wait=False)
    assert daemon.wait(timeout=20) != 0
    assert not os.path.exists(daemon.socket)
    return daemon.output()


def test_the_file_configures_the_daemon(start_daemon: StartDaemon, workdir: Path):
    daemon = start_daemon(config={"data-root": str(workdir / "elsewhere"),
                                  "labels": ["site=lab", "tier=1"], "debug": True,
                                  "log-driver": "none"})
    info = _info(daemon)
    assert info["DockerRootDir"] == str(workdir / "elsewhere")
    assert info["Labels"] == ["site=lab", "tier=1"]
    assert info["Debug"] is True
    assert info["LoggingDriver"] == "none"
    assert (workdir / "elsewhere" / "containers").is_dir()


def test_a_flag_and_the_same_key_in_the_file_are_refused(start_daemon: StartDaemon):
    output = _refused(start_daemon, "-D", "--label", "a=b",
                      config={"debug": False, "labels": ["c=d"]})
    assert "the following directives are specified both as a flag and in the " \
           "configuration file:" in output
    assert "debug: (from flag: 1, from file: false)" in output
    assert "labels: (from flag: [a=b], from file: [c=d])" in output


def test_unknown_and_unsupported_keys_are_refused_by_name(start_daemon: StartDaemon):
    output = _refused(start_daemon, config={"debugg": True})
    assert "the following directives don't match any configuration option: debugg" in output
    output = _refused(start_daemon, config={"userns-remap": "default"})
    assert "dockerd's, but dockertw does not have them yet: userns-remap" in output


def test_live_restore_from_the_file(start_daemon: StartDaemon):
    daemon = start_daemon(config={"live-restore": True})
    try:
        assert _info(daemon)["LiveRestoreEnabled"] is True
        assert len(daemon.holders()) == 1
    finally:
        daemon.kill_leftovers()
    assert daemon.holders() == []


def test_a_missing_file_asked_for_is_an_error(start_daemon: StartDaemon, workdir: Path):
    output = _refused(start_daemon, "--config-file", str(workdir / "nope.json"))
    assert "nope.json: no such file or directory" in output


def test_sighup_reloads_what_docker_reloads(start_daemon: StartDaemon, workdir: Path):
    daemon = start_daemon(config={"labels": ["v=1"], "cgroup-parent": "dtw-reload-test"})
    since = str(int(time.time()) - 1)
    daemon.config_file.write_text(json.dumps({
        "labels": ["v=2"], "debug": True, "cgroup-parent": "dtw-reload-test",
        "runtimes": {"other": {"path": "runc"}}, "default-runtime": "other",
        "registry-mirrors": ["http://127.0.0.1:9"], "insecure-registries": ["10.9.0.0/16"]}))
    daemon.process.send_signal(signal.SIGHUP)
    assert _wait_for(lambda: _info(daemon)["Labels"] == ["v=2"])
    info = _info(daemon)
    assert info["Debug"] is True
    assert info["DefaultRuntime"] == "other"
    assert set(info["Runtimes"]) == {"runc", "other"}
    assert info["RegistryConfig"]["Mirrors"] == ["http://127.0.0.1:9/"]
    assert "10.9.0.0/16" in info["RegistryConfig"]["InsecureRegistryCIDRs"]
    events = ok(daemon, "events", "--since", since, "--until", str(int(time.time()) + 1),
                "--filter", "type=daemon", "--format", "{{json .Actor.Attributes}}")
    attributes = json.loads(events.splitlines()[-1])
    assert attributes["labels"] == '["v=2"]'
    assert attributes["debug"] == "true"
    assert attributes["default-runtime"] == "other"
    assert attributes["registry-mirrors"] == '["http://127.0.0.1:9/"]'


def test_a_bad_file_on_reload_changes_nothing(start_daemon: StartDaemon):
    daemon = start_daemon(config={"labels": ["v=1"]})
    daemon.config_file.write_text('{"labels": ["v=2"], "nonsense": 1}')
    daemon.process.send_signal(signal.SIGHUP)
    assert _wait_for(lambda: "Error reloading configuration" in daemon.output())
    assert "nonsense" in daemon.output()
    assert _info(daemon)["Labels"] == ["v=1"]
    assert daemon.process.poll() is None


def test_added_runtimes_run_containers_that_name_them(start_daemon: StartDaemon,
                                                      workdir: Path, busybox_tar: Path):
    calls = workdir / "calls"
    wrapper = workdir / "traced-runc"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec runc "$@"\n')
    wrapper.chmod(0o755)
    daemon = start_daemon("--add-runtime", f"traced={wrapper}",
                          config={"runtimes": {"chatty": {"path": str(wrapper),
                                                          "runtimeArgs": ["--debug"]}}})
    import_image(daemon, busybox_tar, "bb:1")
    assert ok(daemon, "run", "--rm", "--runtime", "traced", "bb:1", "echo", "hi") == "hi\n"
    assert " run --detach " in calls.read_text()
    calls.unlink()
    ok(daemon, "run", "--name", "c1", "--runtime", "chatty", "bb:1", "true")
    assert calls.read_text().startswith("--debug --root ")
    assert inspect(daemon, "c1")["HostConfig"]["Runtime"] == "chatty"
    ok(daemon, "rm", "c1")
    done = cli(daemon, "create", "--runtime", "nope", "bb:1", "true")
    assert done.returncode != 0
    assert "Unknown runtime specified nope" in done.stderr


def test_default_ulimits_join_the_containers_own(start_daemon: StartDaemon,
                                                 busybox_tar: Path):
    daemon = start_daemon("--default-ulimit", "nofile=321:654",
                          "--default-ulimit", "nproc=777")
    import_image(daemon, busybox_tar, "bb:1")
    out = ok(daemon, "run", "--rm", "--ulimit", "nproc=555", "bb:1", "sh", "-c",
             "ulimit -n; ulimit -Hn; ulimit -u")
    assert out.split() == ["321", "654", "555"]


def test_exec_root_holds_the_runtime_state(start_daemon: StartDaemon, workdir: Path,
                                           busybox_tar: Path):
    daemon = start_daemon("--exec-root", str(workdir / "exec-here"))
    import_image(daemon, busybox_tar, "bb:1")
    container = ok(daemon, "run", "-d", "bb:1", "sleep", "60").strip()
    try:
        assert (workdir / "exec-here" / "runc" / container / "state.json").exists()
    finally:
        ok(daemon, "rm", "-f", container)


def test_pidfile_is_written_guards_and_goes(start_daemon: StartDaemon):
    first = start_daemon()
    assert first.pidfile.read_text() == str(first.process.pid)
    output = _refused(start_daemon, "--pidfile", str(first.pidfile))
    assert f"pid file found, ensure dockertw is not running or delete {first.pidfile}" \
        in output
    first.stop()
    assert not first.pidfile.exists()


def test_log_level_and_debug(start_daemon: StartDaemon, busybox_tar: Path):
    quiet = start_daemon("--log-level", "error")
    ok(quiet, "version")
    chatty = start_daemon("-D")
    import_image(chatty, busybox_tar, "bb:1")
    ok(chatty, "run", "--rm", "bb:1", "true")
    assert "GET /v1.41/version 200" not in quiet.output()
    assert "runtime: runc --root" in chatty.output()
    assert "runtime: runc" not in quiet.output()


def test_sigint_stops_a_daemon_started_with_it_ignored(workdir: Path):
    def ignore_sigint() -> None:
        default_signals()
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    daemon = Daemon(workdir)
    daemon.start(preexec_fn=ignore_sigint)
    try:
        code = daemon.stop(signal.SIGINT, timeout=10)
        assert "Received SIGINT" in daemon.output()
        assert code in (0, -signal.SIGINT)
    finally:
        daemon.stop(signal.SIGKILL)


def test_socket_activation_through_fd(workdir: Path):
    """systemd-socket-activate passes a listening socket as systemd does (LISTEN_FDS,
    LISTEN_PID, LISTEN_FDNAMES); ``-H fd://`` serves on it."""
    socket_path = workdir / "activated.sock"
    daemon = Daemon(workdir, ["-H", "fd://"], unix=False)
    daemon.socket = str(socket_path)
    daemon.command_prefix = ["systemd-socket-activate", "-l", str(socket_path),
                             "--fdname=dockertw", "-E", f"PYTHONPATH={REPO}"]
    daemon.start()
    try:
        assert ok(daemon, "version", "--format", "{{.Server.APIVersion}}").strip() == \
            MAX_API_VERSION
        assert "Listening on fd://" in daemon.output()
    finally:
        daemon.stop()


class TestSocketGroup:
    @pytest.fixture
    def member(self, workdir: Path):
        """A group and a user in it (not root); both removed afterwards."""
        tag = os.urandom(3).hex()
        group, user = f"dtwg{tag}", f"dtwu{tag}"
        subprocess.run(["groupadd", group], check=True)
        try:
            subprocess.run(["useradd", "--no-create-home", "--gid", group,
                            "--shell", "/usr/sbin/nologin", user], check=True)
            try:
                yield group, user
            finally:
                subprocess.run(["userdel", user], check=False)
        finally:
            subprocess.run(["groupdel", group], check=False)

    def _as_user(self, member: tuple[str, str], daemon: Daemon, workdir: Path, *args: str):
        group, user = member
        config = workdir / f"cli-{user}"
        config.mkdir(exist_ok=True)
        subprocess.run(["chown", user, str(config)], check=True)
        env = {"PATH": os.environ["PATH"], "HOME": str(config), "DOCKER_CONFIG": str(config)}
        return subprocess.run(["setpriv", "--reuid", user, "--regid", group,
                               "--init-groups", "docker", "-H", f"unix://{daemon.socket}",
                               *args], capture_output=True, text=True, env=env,
                              timeout=30, check=False)

    def test_a_member_of_the_socket_group_runs_docker_ps(self, start_daemon: StartDaemon,
                                                         workdir: Path, member):
        group, _ = member
        daemon = start_daemon("-G", group)
        for directory in (workdir, Path(daemon.socket).parent):
            directory.chmod(0o711)
        stat = os.stat(daemon.socket)
        assert oct(stat.st_mode & 0o777) == oct(0o660)
        assert stat.st_gid == int(subprocess.run(["getent", "group", group],
                                                 capture_output=True, text=True,
                                                 check=True).stdout.split(":")[2])
        done = self._as_user(member, daemon, workdir, "ps")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split()[:2] == ["CONTAINER", "ID"]

    def test_a_user_outside_the_group_is_refused(self, start_daemon: StartDaemon,
                                                 workdir: Path, member):
        daemon = start_daemon("-G", "root")
        for directory in (workdir, Path(daemon.socket).parent):
            directory.chmod(0o711)
        done = self._as_user(member, daemon, workdir, "ps")
        assert done.returncode != 0
        assert "permission denied" in done.stderr

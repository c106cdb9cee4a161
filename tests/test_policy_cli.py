"""Acceptance: access policies per listener and the metrics listener, with the real
``docker`` CLI.

One daemon with a full UNIX listener, a read-only TCP listener, a UNIX listener whose
policy goes by the peer's uid, and a metrics listener; one with mTLS identities
(a team limited to its labelled containers, a CI identity limited in what it
creates); one whose policy file is tried in log-only mode and then enforced by a
reload (SIGHUP) while connections stay open.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dockertw.runtime.mounts import mounts_under
from tests.certs import Authority
from tests.cli import cli, import_image, ok
from tests.registries import Registry, needs_registry
from tests.support import Daemon, _UnixConnection, docker, free_port

pytestmark = pytest.mark.integration

READONLY_CREATE = ("access denied by policy readonly: containers.create is not allowed "
                   "(this listener is read-only)")
NOBODY = 65534


# -- helpers -------------------------------------------------------------------------


@contextlib.contextmanager
def daemon_in(busybox_tar: Path | None, *args: str,
              prepare: Callable[[Path], list[str]] | None = None) -> Iterator[Daemon]:
    """A daemon in a fresh directory (with ``bb:1`` when a tar is given); afterwards
    its containers are gone and nothing of it is left."""
    workdir = Path(tempfile.mkdtemp(prefix="dtw-pol-"))
    daemon = Daemon(workdir, [*args, *(prepare(workdir) if prepare else [])])
    try:
        daemon.start()
        if busybox_tar is not None:
            import_image(daemon, busybox_tar, "bb:1")
        yield daemon
    finally:
        daemon.stop()
        left = mounts_under(daemon.root)
        output = daemon.output()
        shutil.rmtree(workdir, ignore_errors=True)
        assert left == []
        assert "Traceback" not in output, output


def over_tcp(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return docker("-H", f"tcp://127.0.0.1:{port}", *args)


def refused(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode != 0, done.stdout
    assert "Error response from daemon: access denied by policy " in done.stderr, done.stderr
    assert message in done.stderr, done.stderr


def request(connection: http.client.HTTPConnection, method: str, path: str,
            body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    return response.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw


def scrape(port: int) -> dict[str, float]:
    """The metrics listener's samples (``curl``), by their full name with labels."""
    done = subprocess.run(["curl", "-sS", "--fail", "-D", "-",
                           f"http://127.0.0.1:{port}/metrics"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    head, _, text = done.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert "content-type: text/plain" in head.lower()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def sample(samples: dict[str, float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(value for key, value in samples.items()
               if key.split("{", 1)[0] == name and all(w in key for w in wanted))


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        data = sock.recv(65536)
        assert data, f"the connection closed before {marker!r}: {received!r}"
        received += data
    return received


def wait_for(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- a full UNIX listener, a read-only TCP listener, uids, metrics --------------------

PEERS_POLICY = """
message = "nobody may only look"
[[rules]]
action = "allow"
identities = ["uid:0"]
[[rules]]
action = "allow"
identities = ["user:nobody"]
methods = ["GET", "HEAD"]
"""


class Listeners:
    def __init__(self, daemon: Daemon, tcp: int, peers: str, metrics: int) -> None:
        self.daemon, self.tcp, self.peers, self.metrics = daemon, tcp, peers, metrics


@pytest.fixture(scope="module")
def listeners(busybox_tar: Path) -> Iterator[Listeners]:
    tcp, metrics = free_port(), free_port()
    tcp_listener = f"tcp:{tcp}:interface=127.0.0.1"
    peers_box = Path(tempfile.mkdtemp(prefix="dtw-peers-"))
    peers_box.chmod(0o755)  # nobody reaches the socket inside
    peers = f"unix:{peers_box}/p.sock:mode=666"
    policy = peers_box / "peers.toml"
    policy.write_text(PEERS_POLICY)
    try:
        with daemon_in(busybox_tar, "--listen", tcp_listener, "--listen", peers,
                       "--policy", f"{tcp_listener}=readonly",
                       "--policy", f"{peers}={policy}",
                       "--metrics-listen", f"tcp://127.0.0.1:{metrics}") as daemon:
            yield Listeners(daemon, tcp, f"{peers_box}/p.sock", metrics)
    finally:
        shutil.rmtree(peers_box, ignore_errors=True)


@pytest.fixture
def sleeper(listeners: Listeners) -> Iterator[str]:
    ok(listeners.daemon, "run", "-d", "--name", "sleeper", "bb:1", "sleep", "600")
    try:
        yield "sleeper"
    finally:
        cli(listeners.daemon, "rm", "-f", "sleeper")


def test_ps_works_on_both_listeners(listeners: Listeners, sleeper: str) -> None:
    over_unix = ok(listeners.daemon, "ps", "--format", "{{.Names}}")
    done = over_tcp(listeners.tcp, "ps", "--format", "{{.Names}}")
    assert done.returncode == 0, done.stderr
    assert over_unix.split() == done.stdout.split() == ["sleeper"]


def test_run_and_exec_are_refused_on_the_readonly_listener(listeners: Listeners,
                                                          sleeper: str) -> None:
    refused(over_tcp(listeners.tcp, "run", "--rm", "bb:1", "true"), READONLY_CREATE)
    refused(over_tcp(listeners.tcp, "exec", sleeper, "true"),
            "access denied by policy readonly: exec.create is not allowed "
            "(this listener is read-only)")
    connection = http.client.HTTPConnection("127.0.0.1", listeners.tcp, timeout=10)
    status, body = request(connection, "POST", "/containers/create", {"Image": "bb:1"})
    assert (status, body) == (403, {"message": READONLY_CREATE})
    status, _ = request(connection, "GET", "/containers/json")  # the same connection
    assert status == 200
    assert ok(listeners.daemon, "ps", "-a", "--format", "{{.Names}}").split() == [sleeper]


def test_run_and_exec_work_on_unix(listeners: Listeners, sleeper: str) -> None:
    assert ok(listeners.daemon, "run", "--rm", "bb:1", "echo", "ran").strip() == "ran"
    assert ok(listeners.daemon, "exec", sleeper, "echo", "execd").strip() == "execd"


def test_the_readonly_listener_reads_no_files(listeners: Listeners, sleeper: str,
                                               tmp_path: Path) -> None:
    refused(over_tcp(listeners.tcp, "export", sleeper),
            "access denied by policy readonly: containers.export is denied by rule 1")
    refused(over_tcp(listeners.tcp, "cp", f"{sleeper}:/etc/passwd", str(tmp_path)),
            "containers.archive_")


def as_nobody(socket_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI run as uid and gid 65534 (its own config directory)."""
    config = Path(tempfile.mkdtemp(prefix="dtw-nobody-"))
    os.chown(config, NOBODY, NOBODY)
    try:
        return subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
             "docker", "-H", f"unix://{socket_path}", *args],
            capture_output=True, text=True, timeout=30, check=False,
            env={"PATH": os.environ["PATH"], "HOME": str(config),
                 "DOCKER_CONFIG": str(config)})
    finally:
        shutil.rmtree(config, ignore_errors=True)


def test_unix_peers_are_told_apart_by_uid(listeners: Listeners, sleeper: str) -> None:
    done = as_nobody(listeners.peers, "ps", "--format", "{{.Names}}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [sleeper]
    refused(as_nobody(listeners.peers, "run", "--rm", "bb:1", "true"),
            f"access denied by policy {listeners.peers.rsplit('/', 1)[0]}/peers.toml: "
            "containers.create is not allowed (nobody may only look)")
    as_root = docker("-H", f"unix://{listeners.peers}", "run", "--rm", "bb:1", "echo", "root")
    assert as_root.returncode == 0, as_root.stderr
    assert as_root.stdout.strip() == "root"
    assert re.search(r"policy deny: listener=unix:\S+/p\.sock:mode=666 identity=uid=65534,"
                     r"gid=65534 route=containers\.create method=POST .* rule=0",
                     listeners.daemon.output())


def test_metrics_move_after_cli_calls(listeners: Listeners) -> None:
    before = scrape(listeners.metrics)
    tcp = f"tcp:{listeners.tcp}:interface=127.0.0.1"
    ok(listeners.daemon, "run", "--rm", "bb:1", "true")
    over_tcp(listeners.tcp, "ps")
    over_tcp(listeners.tcp, "create", "bb:1")
    after = scrape(listeners.metrics)

    def grew(name: str, **labels: str) -> bool:
        return sample(after, name, **labels) > sample(before, name, **labels)

    assert grew("dockertw_http_requests_total", listener=tcp, route="containers.list",
                method="GET", status="200")
    assert grew("dockertw_http_requests_total", listener=tcp, route="containers.create",
                status="403")
    assert grew("dockertw_http_requests_total", route="containers.attach", status="101")
    assert grew("dockertw_http_request_duration_seconds_count", route="containers.start")
    assert grew("dockertw_policy_decisions_total", listener=tcp, route="containers.create",
                decision="deny")
    assert grew("dockertw_policy_decisions_total", listener=tcp, decision="allow")
    assert grew("dockertw_container_starts_total")
    assert grew("dockertw_container_stops_total")
    assert grew("dockertw_events_total", type="container", action="destroy")
    assert grew("dockertw_runtime_call_duration_seconds_count", command="create")
    assert grew("dockertw_runtime_call_duration_seconds_count", command="delete")
    assert "dockertw_image_pull_bytes_total" in after
    assert "process_open_fds" in after
    assert sample(after, "dockertw_containers", state="running") == 0


def test_an_oom_kill_is_an_event_and_a_count(listeners: Listeners) -> None:
    before = scrape(listeners.metrics)
    since = time.time()
    done = cli(listeners.daemon, "run", "--rm", "--name", "oomer", "--memory", "16m", "bb:1",
               "sh", "-c",
               "x=$(yes | head -c 200000000); echo survived")
    assert "survived" not in done.stdout
    assert done.returncode == 137, done.stderr
    after = scrape(listeners.metrics)
    assert sample(after, "dockertw_container_oom_kills_total") == sample(
        before, "dockertw_container_oom_kills_total") + 1
    events = ok(listeners.daemon, "events", "--since", f"{int(since)}", "--until",
                f"{time.time():.3f}", "--filter", "container=oomer", "--format",
                "{{.Action}}").split()
    assert events.index("oom") == events.index("die") - 1


@needs_registry
def test_metrics_count_pulls_and_their_bytes(start_daemon: Callable[..., Daemon],
                                             start_registry: Callable[..., Registry],
                                             busybox_tar: Path) -> None:
    port = free_port()
    daemon = start_daemon("--metrics-listen", f"tcp:{port}:interface=127.0.0.1")
    registry = start_registry()
    name = f"{registry.address}/bb:1"
    import_image(daemon, busybox_tar, name)
    ok(daemon, "push", name)
    ok(daemon, "rmi", name)
    before = scrape(port)
    ok(daemon, "pull", name)
    after = scrape(port)
    assert sample(after, "dockertw_image_pulls_total") == sample(
        before, "dockertw_image_pulls_total") + 1
    assert sample(after, "dockertw_image_pull_bytes_total") >= sample(
        before, "dockertw_image_pull_bytes_total") + 100_000  # the compressed busybox


def test_metrics_count_open_connections_and_hijacked_streams(listeners: Listeners,
                                                              sleeper: str) -> None:
    unix = f"unix:{listeners.daemon.socket}:mode=660"
    base = scrape(listeners.metrics)
    streams = sample(base, "dockertw_http_hijacked_streams", listener=unix)
    connections = sample(base, "dockertw_http_open_connections", listener=unix)
    config = tempfile.mkdtemp(prefix="dtw-cli-")
    session = subprocess.Popen(
        ["docker", "-H", f"unix://{listeners.daemon.socket}", "exec", "-i", sleeper, "cat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "DOCKER_CONFIG": config})
    try:
        wait_for(lambda: sample(scrape(listeners.metrics), "dockertw_http_hijacked_streams",
                                listener=unix) == streams + 1, "the exec's stream")
        during = scrape(listeners.metrics)
        assert sample(during, "dockertw_http_open_connections", listener=unix) >= connections + 1
        assert sample(during, "dockertw_containers", state="running") == 1
        assert session.communicate(b"bye\n", timeout=20)[0] == b"bye\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            session.kill()
        session.wait()
        shutil.rmtree(config, ignore_errors=True)
    wait_for(lambda: sample(scrape(listeners.metrics), "dockertw_http_hijacked_streams",
                            listener=unix) == streams, "the stream's end")
    wait_for(lambda: sample(scrape(listeners.metrics), "dockertw_http_open_connections",
                            listener=unix) == connections, "the connections' end")


# -- mTLS identities: a team limited to its labelled containers, a CI identity --------

TEAMS_POLICY = """
message = "the teams' listener"

[[rules]]
action = "allow"
routes = ["system.ping", "system.ping_head", "system.version"]

[[rules]]
action = "allow"
identities = ["cn:team-a"]
routes = ["containers.list", "containers.inspect", "system.events", "exec.*",
          "containers.attach"]
labels = { team = "a" }

[[rules]]
action = "allow"
identities = ["cn:ci"]
routes = ["containers.create", "containers.remove"]
labels = { ci = "yes" }
[rules.create]
bind_prefixes = ["{allowed}"]
images = ["bb:*"]
"""


class Teams:
    def __init__(self, daemon: Daemon, port: int, pki: dict[str, Path],
                 since: float) -> None:
        self.daemon, self.port, self.pki, self.since = daemon, port, pki, since

    def tls_args(self, who: str) -> list[str]:
        return ["--tlsverify", "--tlscacert", str(self.pki["ca"]),
                "--tlscert", str(self.pki[f"{who}-cert"]),
                "--tlskey", str(self.pki[f"{who}-key"]), "-H", f"tcp://127.0.0.1:{self.port}"]

    def docker_as(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return docker(*self.tls_args(who), *args)

    def connection(self, who: str) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=str(self.pki["ca"]))
        context.load_cert_chain(str(self.pki[f"{who}-cert"]), str(self.pki[f"{who}-key"]))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=context,
                                           timeout=10)


@pytest.fixture(scope="module")
def teams(busybox_tar: Path) -> Iterator[Teams]:
    port = free_port()
    pki: dict[str, Path] = {}

    def prepare(workdir: Path) -> list[str]:
        authority = Authority(workdir)
        server = authority.issue("server", "localhost", server=True,
                                 hosts=("127.0.0.1", "localhost"))
        pki.update(ca=authority.files.cert, allowed=workdir / "ci")
        for who in ("team-a", "ci"):
            issued = authority.issue(who, who, server=False)
            pki[f"{who}-cert"], pki[f"{who}-key"] = issued.cert, issued.key
        policy = workdir / "teams.toml"
        policy.write_text(TEAMS_POLICY.replace("{allowed}", str(workdir / "ci")))
        address = f"tcp://127.0.0.1:{port}"
        return ["-H", address, "--tlsverify", "--tlscacert", str(authority.files.cert),
                "--tlscert", str(server.cert), "--tlskey", str(server.key),
                "--policy", f"{address}={policy}"]

    since = time.time()
    with daemon_in(busybox_tar, prepare=prepare) as daemon:
        import_image(daemon, busybox_tar, "evil:1")
        for name, team in (("a1", "a"), ("a2", "a"), ("b1", "b")):
            ok(daemon, "run", "-d", "--name", name, "--label", f"team={team}",
               "bb:1", "sleep", "600")
        try:
            yield Teams(daemon, port, pki, since)
        finally:
            cli(daemon, "rm", "-f", "a1", "a2", "b1")


def test_a_team_execs_into_its_containers_and_no_others(teams: Teams) -> None:
    done = teams.docker_as("team-a", "exec", "a1", "echo", "in a1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "in a1\n"
    done = teams.docker_as("team-a", "exec", "-d", "a1", "sh", "-c", "echo in-a1 > /tmp/mark")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: ok(teams.daemon, "exec", "a1", "cat", "/tmp/mark") == "in-a1\n",
             "the exec's mark")
    # docker 28 inspects the container first, docker 20.10 creates the exec at once
    policy = teams.daemon.workdir / "teams.toml"
    for detached in ([], ["-d"]):
        refused(teams.docker_as("team-a", "exec", *detached, "b1", "echo", "in b1"),
                f"access denied by policy {policy}: ")
        refused(teams.docker_as("team-a", "exec", *detached, "b1", "echo", "in b1"),
                "needs a container labelled team=a (the teams' listener)")
    assert "mark" not in ok(teams.daemon, "exec", "b1", "ls", "/tmp")


def test_a_team_attaches_to_its_exec_over_tls(teams: Teams) -> None:
    """The hijacked exec start by hand, read to its end."""
    connection = teams.connection("team-a")
    status, created = request(connection, "POST", "/containers/a1/exec",
                              {"Cmd": ["echo", "hello a1"], "AttachStdout": True,
                               "Tty": True})
    assert status == 201
    status, output = request(connection, "POST", f"/exec/{created['Id']}/start",
                             {"Detach": False, "Tty": True})
    assert (status, output.strip()) == (200, b"hello a1")
    connection = teams.connection("team-a")
    status, body = request(connection, "POST", "/containers/b1/exec",
                           {"Cmd": ["echo", "hello b1"], "AttachStdout": True})
    assert status == 403
    assert body["message"].endswith("exec.create needs a container labelled team=a "
                                    "(the teams' listener)")


def test_a_team_sees_only_its_containers(teams: Teams) -> None:
    done = teams.docker_as("team-a", "ps", "-a", "--format", "{{.Names}}")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == ["a1", "a2"]
    done = teams.docker_as("team-a", "ps", "--filter", "label=team=b", "--format",
                           "{{.Names}}")
    assert (done.returncode, done.stdout) == (0, "")
    assert teams.docker_as("team-a", "inspect", "a1").returncode == 0
    refused(teams.docker_as("team-a", "inspect", "--type", "container", "b1"),
            "containers.inspect needs a container labelled team=a")
    assert sorted(ok(teams.daemon, "ps", "--format", "{{.Names}}").split()) == [
        "a1", "a2", "b1"]


def test_a_team_sees_only_its_containers_events(teams: Teams) -> None:
    done = teams.docker_as("team-a", "events", "--since", f"{int(teams.since)}", "--until",
                           f"{time.time():.3f}", "--format",
                           "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "container create a1" in lines and "container start a2" in lines
    assert all(line.split()[-1] in ("a1", "a2") for line in lines), lines
    everything = ok(teams.daemon, "events", "--since", f"{int(teams.since)}", "--until",
                    f"{time.time():.3f}", "--format", "{{.Actor.Attributes.name}}")
    assert "b1" in everything.split()


def test_hijacked_routes_are_covered(teams: Teams) -> None:
    direct = _UnixConnection(str(teams.daemon.socket))
    status, created = request(direct, "POST", "/containers/b1/exec",
                              {"Cmd": ["echo", "hi"], "AttachStdout": True})
    assert status == 201
    direct.close()
    connection = teams.connection("team-a")
    status, body = request(connection, "POST", f"/exec/{created['Id']}/start", {})
    assert status == 403
    assert "exec.start needs a container labelled team=a" in body["message"]
    status, body = request(connection, "POST", "/containers/b1/attach?stream=1&stdout=1")
    assert status == 403
    assert "containers.attach needs a container labelled team=a" in body["message"]
    status, _ = request(connection, "GET", "/_ping")  # still in step
    assert status == 200


def test_ci_creates_only_what_its_limits_allow(teams: Teams) -> None:
    (teams.daemon.workdir / "ci").mkdir(exist_ok=True)
    label = ["--label", "ci=yes"]
    refused(teams.docker_as("ci", "create", *label, "--privileged", "bb:1"),
            "privileged containers are not allowed")
    refused(teams.docker_as("ci", "create", *label, "-v", "/:/host", "bb:1"),
            "bind mount of / is not allowed: host paths must be under "
            f"{teams.daemon.workdir / 'ci'}")
    refused(teams.docker_as("ci", "create", *label, "--pid", "host", "bb:1"),
            "the host's namespaces are not allowed (HostConfig.PidMode=host)")
    refused(teams.docker_as("ci", "create", "bb:1"),
            "containers.create needs a create labelled ci=yes")
    done = teams.docker_as("ci", "create", *label, "--name", "ci1", "-v",
                           f"{teams.daemon.workdir / 'ci'}:/ci", "bb:1", "true")
    assert done.returncode == 0, done.stderr
    done = teams.docker_as("ci", "rm", "ci1")
    assert done.returncode == 0, done.stderr
    refused(teams.docker_as("ci", "create", *label, "evil:1", "true"),
            "the image evil:1 is not allowed: images must match bb:*")
    image_id = ok(teams.daemon, "image", "inspect", "--format", "{{.Id}}", "bb:1").strip()
    done = teams.docker_as("ci", "create", *label, "--name", "ci2", image_id, "true")
    assert done.returncode == 0, done.stderr  # the image is bb:1 by another name
    assert teams.docker_as("ci", "rm", "ci2").returncode == 0


def test_a_client_without_a_rule_is_refused(teams: Teams) -> None:
    refused(teams.docker_as("ci", "ps"), "containers.list is not allowed "
                                         "(the teams' listener)")
    assert teams.docker_as("ci", "version").returncode == 0


# -- log-only, then enforced by a reload that drops no connection --------------------

TRIAL = """
mode = "{mode}"
message = "nothing but pings and events"
[[rules]]
action = "allow"
routes = ["system.*"]
"""


def test_log_only_then_enforced_on_sighup_without_dropping_connections(
        busybox_tar: Path) -> None:
    port = free_port()
    listener = f"tcp:{port}:interface=127.0.0.1"
    box = Path(tempfile.mkdtemp(prefix="dtw-trial-"))
    policy = box / "trial.toml"
    policy.write_text(TRIAL.replace("{mode}", "log-only"))
    try:
        with daemon_in(busybox_tar, "--listen", listener,
                       "--policy", f"{listener}={policy}") as daemon:
            _trial_then_enforce(daemon, port, policy)
    finally:
        shutil.rmtree(box, ignore_errors=True)


def _trial_then_enforce(daemon: Daemon, port: int, policy: Path) -> None:
    done = over_tcp(port, "create", "--name", "tried", "bb:1", "true")
    assert done.returncode == 0, done.stderr  # only logged
    assert re.search(r"policy would-deny: listener=tcp:\d+:interface=127\.0\.0\.1 "
                     r"identity=anonymous route=containers\.create method=POST", daemon.output())
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert request(kept, "GET", "/_ping")[0] == 200
    events = socket.create_connection(("127.0.0.1", port), timeout=10)
    events.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
    assert read_until(events, b"\r\n\r\n").startswith(b"HTTP/1.1 200")
    try:
        policy.write_text(TRIAL.replace("{mode}", "enforce"))
        os.kill(daemon.process.pid, signal.SIGHUP)  # type: ignore[union-attr]
        wait_for(lambda: "reloaded from" in daemon.output(), "the reload")
        read_until(events, b'"Action":"reload"')  # the stream lives on
        status, body = request(kept, "POST", "/containers/create", {"Image": "bb:1"})
        assert status == 403
        assert body["message"] == (f"access denied by policy {policy}: containers.create is "
                                   "not allowed (nothing but pings and events)")
        policy.write_text("mode = [")  # a broken file keeps the policy in force
        os.kill(daemon.process.pid, signal.SIGHUP)  # type: ignore[union-attr]
        wait_for(lambda: "not reloaded" in daemon.output(), "the failed reload")
        assert request(kept, "POST", "/containers/create", {"Image": "bb:1"})[0] == 403
        assert request(kept, "GET", "/_ping")[0] == 200
    finally:
        events.close()
        kept.close()
        cli(daemon, "rm", "-f", "tried")


# -- mistakes at start ---------------------------------------------------------------


def _fails_to_start(workdir: Path, *args: str) -> str:
    daemon = Daemon(workdir, args)
    daemon.start(wait=False)
    try:
        assert daemon.wait(timeout=30) != 0
    finally:
        daemon.stop()
    return daemon.output()


def test_a_policy_for_no_listener_is_a_usage_error(workdir: Path) -> None:
    output = _fails_to_start(workdir, "--policy", "tcp://127.0.0.1:2375=readonly")
    assert "invalid --policy 'tcp://127.0.0.1:2375=readonly': no listener " \
           "'tcp://127.0.0.1:2375'" in output


def test_a_wrong_policy_file_stops_the_daemon(workdir: Path) -> None:
    policy = workdir / "wrong.toml"
    policy.write_text('[[rules]]\naction = "allow"\nroutes = ["container.list"]\n')
    output = _fails_to_start(workdir, "--policy",
                             f"unix:{workdir}/d.sock:mode=660={policy}")
    assert f"dockertw: {policy}: rule 1: the route pattern 'container.list' names no " \
           "route" in output
    assert not (workdir / "d.sock").exists()


def test_metrics_listener_over_tls(start_daemon: Callable[..., Daemon],
                                   workdir: Path) -> None:
    authority = Authority(workdir)
    server = authority.issue("server", "localhost", server=True, hosts=("127.0.0.1",))
    client = authority.issue("scraper", "prometheus", server=False)
    port = free_port()
    start_daemon("--tlsverify", "--tlscacert", str(authority.files.cert), "--tlscert",
                 str(server.cert), "--tlskey", str(server.key),
                 "--metrics-listen", f"tcp://127.0.0.1:{port}")
    curl = ["curl", "-sS", "--cacert", str(authority.files.cert),
            f"https://127.0.0.1:{port}/metrics"]
    without = subprocess.run(curl, capture_output=True, text=True, timeout=30, check=False)
    assert without.returncode != 0
    done = subprocess.run([*curl, "--cert", str(client.cert), "--key", str(client.key)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "dockertw_http_requests_total" in done.stdout

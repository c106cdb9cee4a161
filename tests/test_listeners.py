"""Listener descriptions and the fail-all group, with in-memory endpoints."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from twisted.internet.defer import fail
from twisted.python.failure import Failure
from twisted.python.systemd import ListenFDs

from dockertw.api.site import ApiSite
from dockertw.listeners import (
    ListenerGroup,
    ListenerService,
    ListenerSpec,
    parse_listener,
    with_backlog,
)
from dockertw.tap import Options


@pytest.mark.parametrize("text, description, is_tcp", [
    ("unix:/run/d.sock:mode=660", "unix:/run/d.sock:mode=660", False),
    ("tcp:2375:interface=127.0.0.1", "tcp:2375:interface=127.0.0.1", True),
    ("tcp6:2375", "tcp6:2375", True),
    ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0", True),
    ("systemd:domain=UNIX:index=0", "systemd:domain=UNIX:index=0", False),
    ("unix:///var/run/x.sock", "unix:/var/run/x.sock:mode=660", False),
    ("unix://", "unix:/run/dockertw.sock:mode=660", False),
    ("tcp://127.0.0.1:2375", r"tcp:2375:interface=127.0.0.1", True),
    ("tcp://0.0.0.0", "tcp:2375:interface=0.0.0.0", True),
    ("tcp://[::1]:2376", r"tcp6:2376:interface=\:\:1", True),
])
def test_descriptions_and_docker_addresses(text, description, is_tcp):
    assert parse_listener(text) == [ListenerSpec(text, description, is_tcp)]


def test_tls_changes_the_default_docker_port():
    assert parse_listener("tcp://127.0.0.1", tls=True)[0].description.startswith("tcp:2376:")


@pytest.mark.parametrize("text", ["ssh://host", "npipe:////./pipe/x", "tcp://h:99999",
                                  "tcp://h:1/path", "plain"])
def test_bad_addresses_are_refused_with_their_name(text):
    with pytest.raises(ValueError, match="invalid listener"):
        parse_listener(text)


def test_fd_names_every_socket_systemd_passed():
    unix = socket.socket(socket.AF_UNIX)
    inet = socket.socket(socket.AF_INET)
    try:
        fds = ListenFDs([unix.fileno(), inet.fileno()], ["api", "web"])
        specs = parse_listener("fd://", fds=fds)
        assert [s.description for s in specs] == ["systemd:domain=UNIX:index=0",
                                                  "systemd:domain=INET:index=1"]
        assert [s.is_tcp for s in specs] == [False, True]
        assert parse_listener("fd://web", fds=fds)[0].description.endswith("index=1")
        assert parse_listener(f"fd://{inet.fileno()}", fds=fds)[0].is_tcp
        with pytest.raises(ValueError):
            parse_listener("fd://", fds=ListenFDs([]))
    finally:
        unix.close()
        inet.close()


def test_options_default_to_the_docker_like_socket_and_check_versions():
    options = Options()
    options.parseOptions([])
    assert [s.description for s in options["listeners"]] == [
        "unix:/run/dockertw.sock:mode=660"]
    for bad in ("1.11", "1.57", "one"):
        with pytest.raises(Exception, match="min-api-version"):
            Options().parseOptions(["--min-api-version", bad])


def test_tls_options_need_readable_files(tmp_path):
    with pytest.raises(Exception, match="tlscert"):
        Options().parseOptions(["--tlsverify", "--tlscert", str(tmp_path / "none.pem")])


class _FakePort:
    def __init__(self) -> None:
        self.stopped = False

    def stopListening(self) -> None:
        self.stopped = True

    def getHost(self) -> object:
        return object()


def _group_of_two() -> tuple[ListenerGroup, list[str], list[ListenerService]]:
    fatal: list[str] = []
    group = ListenerGroup(fatal.append)
    services = []
    for name in ("first", "second"):
        site = ApiSite(None, name)  # type: ignore[arg-type]
        service = ListenerService(ListenerSpec(name, f"{name}:x", False), site, False)
        site.on_stop = service.factory_stopped
        service.setServiceParent(group)
        services.append(service)
    return group, fatal, services


def test_a_listener_failing_at_start_is_reported_once(monkeypatch):
    group, fatal, _ = _group_of_two()

    class _Refusing:
        def listen(self, factory):
            return fail(OSError("Address already in use"))

    monkeypatch.setattr("dockertw.listeners.serverFromString", lambda r, d: _Refusing())
    group.startService()
    assert fatal == ["listener 'first' failed: Address already in use"]


def test_a_listener_dying_after_start_is_fatal_but_a_requested_stop_is_not(monkeypatch):
    group, fatal, services = _group_of_two()
    ports = []

    class _Accepting:
        def listen(self, factory):
            from twisted.internet.defer import succeed
            factory.doStart()
            ports.append(_FakePort())
            return succeed(ports[-1])

    monkeypatch.setattr("dockertw.listeners.serverFromString", lambda r, d: _Accepting())
    group.startService()
    assert fatal == []
    services[1]._factory.doStop()  # the second port died under us
    assert fatal == ["listener 'second' failed: the listening socket was closed"]
    group.stopService()
    assert all(port.stopped for port in ports)


def test_group_reports_only_the_first_failure():
    fatal: list[str] = []
    group = ListenerGroup(fatal.append)
    service = ListenerService(ListenerSpec("a", "a:x", False), None, False)  # type: ignore
    group.listener_failed(service, Failure(OSError("one")))
    group.listener_failed(service, Failure(OSError("two")))
    assert fatal == ["listener 'a' failed: one"]


@pytest.mark.parametrize("description", ["tcp:2375:interface=127.0.0.1",
                                         "unix:/run/d.sock:mode=660",
                                         r"tcp6:2375:interface=\:\:1"])
def test_listeners_get_the_kernels_backlog_as_gos_do(description):
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert with_backlog(description) == f"{description}:backlog={min(somaxconn, 65535)}"


@pytest.mark.parametrize("description", ["tcp:2375:backlog=10", "systemd:domain=UNIX:index=0"])
def test_a_named_backlog_or_an_inherited_socket_is_left_alone(description):
    assert with_backlog(description) == description

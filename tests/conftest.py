"""Fixtures: short-pathed work directories and real daemons that always stop."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import cli, import_image
from tests.netsupport import (  # noqa: F401 - fixtures for every test module
    net_daemon,
    start_net_daemon,
)
from tests.proxies import (  # noqa: F401 - fixtures for every test module
    config_dir,
    microsocks,
    microsocks_auth,
    start_proxy,
    tinyproxy,
    tinyproxy_auth,
)
from tests.registries import (  # noqa: F401 - fixtures for every module
    start_registry,
    start_relay,
)
from tests.rootfs import make_busybox_tar
from tests.support import Daemon, RawHttp
from tests.terminal import terminals  # noqa: F401 - a fixture for every test module


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh directory with a short path (UNIX socket paths are limited to 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="dtw-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_daemon(workdir: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons in sub-directories of ``workdir``; every one is stopped afterwards."""
    started: list[Daemon] = []

    def start(*extra_args: str, unix: bool = True, wait: bool = True,
              config: dict[str, Any] | None = None) -> Daemon:
        home = workdir / f"d{len(started)}"
        home.mkdir()
        daemon = Daemon(home, extra_args, unix=unix, config=config)
        started.append(daemon)
        return daemon.start(wait=wait)

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


# Modules whose every test runs twice, its daemon pinned to API 1.41 and to 1.56: the
# everyday CLI commands and system routes (run, ps, logs, exec, images, volumes, events).
# Elsewhere a test opts in with @pytest.mark.both_api_versions (cp has a few); the rest
# runs once with the CLI negotiating (28.x: 1.50), so slow modules are not doubled.
_BOTH_VERSIONS_MODULES = frozenset({
    "test_containers_cli", "test_containers_logs", "test_containers_exec", "test_images_cli",
    "test_volumes_cli", "test_events", "test_system_routes",
})
BOTH_API_VERSIONS = ("1.41", "1.56")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    wanted = module in _BOTH_VERSIONS_MODULES \
        or metafunc.definition.get_closest_marker("both_api_versions") is not None
    if wanted and "daemon" in metafunc.fixturenames:
        metafunc.parametrize("api_version", BOTH_API_VERSIONS, indirect=True)


@pytest.fixture
def api_version(request: pytest.FixtureRequest) -> str | None:
    """The API version a parametrised test pins its daemon to (``None``: not pinned)."""
    return getattr(request, "param", None)


@pytest.fixture
def daemon(start_daemon: Callable[..., Daemon], api_version: str | None) -> Iterator[Daemon]:
    """A daemon listening on a UNIX socket only (pinned to ``api_version`` if set)."""
    started = start_daemon()
    started.api_version = api_version
    try:
        yield started
    finally:
        started.api_version = None


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tar of a busybox-static root filesystem, for ``docker import``; made once."""
    return make_busybox_tar(tmp_path_factory.mktemp("busybox"))


@pytest.fixture(scope="module")
def module_daemon(busybox_tar: Path) -> Iterator[Daemon]:
    """One daemon for a whole module, with the busybox image as ``bb:1``; nothing of
    it may be left afterwards (its tests remove what they make)."""
    home = Path(tempfile.mkdtemp(prefix="dtw-m-"))
    daemon = Daemon(home)
    try:
        daemon.start()
        import_image(daemon, busybox_tar, "bb:1")
        yield daemon
    finally:
        try:
            daemon.stop_and_check_clean()
        finally:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def module_containers(module_daemon: Daemon) -> Iterator[list[str]]:
    """Names of containers a test makes on ``module_daemon``; removed afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        cli(module_daemon, "rm", "-f", name)


@pytest.fixture
def running_daemon(daemon: Daemon, busybox_tar: Path) -> Iterator[Daemon]:
    """A daemon with the busybox image as ``bb:1``; afterwards (the daemon stopped) no
    mount, cgroup or traceback of it may be left."""
    import_image(daemon, busybox_tar, "bb:1")
    try:
        yield daemon
    finally:
        daemon.stop_and_check_clean()


@pytest.fixture(scope="module")
def busybox_daemon(busybox_tar: Path) -> Iterator[Daemon]:
    """One daemon for a whole module, with the busybox image as ``bb:1``; afterwards
    no mount, cgroup or traceback of it may be left."""
    home = Path(tempfile.mkdtemp(prefix="dtw-m-"))
    daemon = Daemon(home)
    try:
        daemon.start()
        import_image(daemon, busybox_tar, "bb:1")
        yield daemon
        daemon.stop_and_check_clean()
    finally:
        daemon.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def raw_http(daemon: Daemon) -> Iterator[RawHttp]:
    """HTTP/1.1 by hand on one connection to the daemon's UNIX socket."""
    connection = RawHttp(daemon)
    try:
        yield connection
    finally:
        connection.close()

"""Real proxies on loopback (tinyproxy, microsocks) for client tests.

The binaries come from Debian packages that ``bootstrap.sh test`` installs; outside CI a
missing binary skips the test, in CI (``CI`` set) it fails it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from tests.support import default_signals, free_port

TINYPROXY = "/usr/bin/tinyproxy"
MICROSOCKS = "/usr/bin/microsocks"

@attrs.define
class ProxyProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def endpoint(self) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _spawn(name: str, command: Callable[[int], list[str]], directory: Path) -> ProxyProcess:
    """Start the proxy on a free port (retrying if the port was taken meanwhile)."""
    for attempt in range(3):
        port = free_port()
        log = directory / f"{name}-{attempt}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(command(port), stdout=sink, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=default_signals)
        proxy = ProxyProcess(name, port, process, log)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            if _accepts(port):
                return proxy
            time.sleep(0.05)
        proxy.stop()
    raise RuntimeError(f"{name} did not start: {proxy.output()}")


@pytest.fixture
def start_proxy() -> Iterator[Callable[..., ProxyProcess]]:
    """Start proxies in a temporary directory; all are stopped and removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="dtw-proxy-"))
    started: list[ProxyProcess] = []

    def start(name: str, binary: str, command: Callable[[int], list[str]]) -> ProxyProcess:
        if shutil.which(binary) is None:
            if os.environ.get("CI"):
                pytest.fail(f"{binary} is not installed: bootstrap.sh should have done it")
            pytest.skip(f"{binary} is not installed (see bootstrap.sh)")
        proxy = _spawn(name, command, directory)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in started:
            proxy.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _tinyproxy(start: Callable[..., ProxyProcess], tmp: Path, auth: bool) -> ProxyProcess:
    def command(port: int) -> list[str]:
        config = tmp / f"tinyproxy-{port}.conf"
        lines = [f"Port {port}", "Listen 127.0.0.1", "Allow 127.0.0.1", "Timeout 60"]
        lines += ["BasicAuth alice s3cret"] if auth else []
        config.write_text("\n".join(lines) + "\n")
        return [TINYPROXY, "-d", "-c", str(config)]
    return start("tinyproxy", TINYPROXY, command)


def _microsocks(start: Callable[..., ProxyProcess], auth: bool) -> ProxyProcess:
    def command(port: int) -> list[str]:
        credentials = ["-u", "alice", "-P", "s3cret"] if auth else []
        return [MICROSOCKS, "-i", "127.0.0.1", "-p", str(port), *credentials]
    return start("microsocks", MICROSOCKS, command)


@pytest.fixture
def config_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="dtw-conf-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def tinyproxy(start_proxy, config_dir) -> ProxyProcess:
    return _tinyproxy(start_proxy, config_dir, auth=False)


@pytest.fixture
def tinyproxy_auth(start_proxy, config_dir) -> ProxyProcess:
    return _tinyproxy(start_proxy, config_dir, auth=True)


@pytest.fixture
def microsocks(start_proxy) -> ProxyProcess:
    return _microsocks(start_proxy, auth=False)


@pytest.fixture
def microsocks_auth(start_proxy) -> ProxyProcess:
    return _microsocks(start_proxy, auth=True)

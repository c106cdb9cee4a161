"""The client reaching a real daemon through real proxies on loopback.

Go's proxy rules never proxy loopback names or addresses, so the daemon is addressed
as ``0.0.0.0`` (not loopback to those rules; the kernel delivers it to 127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted

from dockertw.client.docker import DockerClient
from dockertw.client.errors import ConnectionFailed
from dockertw.client.proxyenv import ProxyEnvironment
from dockertw.client.tls import TLSSettings
from tests.certs import Authority
from tests.proxies import ProxyProcess
from tests.support import Daemon, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def tcp_daemon(start_daemon: Callable[..., Daemon]) -> int:
    port = free_port()
    start_daemon("--listen", f"tcp:{port}:interface=127.0.0.1")
    return port


@pytest.fixture
def tls_daemon(start_daemon: Callable[..., Daemon], workdir: Path) -> tuple[int, TLSSettings]:
    authority = Authority(workdir)
    server = authority.issue("server", "daemon", server=True, hosts=("0.0.0.0",))
    client = authority.issue("client", "client", server=False)
    port = free_port()
    start_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                 "--tlscacert", str(authority.files.cert),
                 "--tlscert", str(server.cert), "--tlskey", str(server.key))
    return port, TLSSettings(ca=authority.files.cert, cert=client.cert, key=client.key)


async def _version_through(port: int, env: dict[str, str],
                           tls: TLSSettings | None = None) -> tuple[str, str]:
    client = DockerClient(f"tcp://0.0.0.0:{port}", proxies=ProxyEnvironment.from_env(env),
                          tls=tls)
    try:
        return (await client.version())["ApiVersion"], client.transport.route
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_plain_http_target_goes_through_tinyproxy(tcp_daemon, tinyproxy: ProxyProcess):
    env = {"HTTP_PROXY": f"http://127.0.0.1:{tinyproxy.port}"}
    assert await _version_through(tcp_daemon, env) == ("1.56", "proxy http")
    assert f"0.0.0.0:{tcp_daemon}/v1.56/version" in tinyproxy.output()


@pytest_twisted.ensureDeferred
async def test_proxy_credentials_are_sent(tcp_daemon, tinyproxy_auth: ProxyProcess):
    good = {"HTTP_PROXY": f"http://alice:s3cret@127.0.0.1:{tinyproxy_auth.port}"}
    assert (await _version_through(tcp_daemon, good))[0] == "1.56"
    bad = {"HTTP_PROXY": f"http://127.0.0.1:{tinyproxy_auth.port}"}
    with pytest.raises(Exception, match="407|Proxy Authentication"):
        await _version_through(tcp_daemon, bad)


@pytest_twisted.ensureDeferred
async def test_tls_daemon_through_a_connect_tunnel(tls_daemon, tinyproxy: ProxyProcess):
    port, tls = tls_daemon
    env = {"HTTPS_PROXY": f"http://127.0.0.1:{tinyproxy.port}"}
    assert await _version_through(port, env, tls) == ("1.56", "connect http")
    assert "CONNECT" in tinyproxy.output()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
@pytest.mark.parametrize("variable", ["ALL_PROXY", "HTTP_PROXY"])
async def test_socks5_without_credentials(tcp_daemon, microsocks: ProxyProcess, scheme,
                                          variable):
    env = {variable: f"{scheme}://127.0.0.1:{microsocks.port}"}
    assert await _version_through(tcp_daemon, env) == ("1.56", f"socks5 {scheme}")


@pytest_twisted.ensureDeferred
async def test_socks5_with_credentials(tcp_daemon, microsocks_auth: ProxyProcess):
    proxy = f"127.0.0.1:{microsocks_auth.port}"
    good = {"ALL_PROXY": f"socks5://alice:s3cret@{proxy}"}
    assert (await _version_through(tcp_daemon, good))[0] == "1.56"
    with pytest.raises(ConnectionFailed):
        await _version_through(tcp_daemon, {"ALL_PROXY": f"socks5://alice:nope@{proxy}"})


@pytest_twisted.ensureDeferred
async def test_tls_daemon_through_socks5(tls_daemon, microsocks: ProxyProcess):
    port, tls = tls_daemon
    env = {"ALL_PROXY": f"socks5h://127.0.0.1:{microsocks.port}"}
    assert await _version_through(port, env, tls) == ("1.56", "socks5 socks5h")


@pytest_twisted.ensureDeferred
async def test_no_proxy_sends_the_same_call_direct(tcp_daemon, tinyproxy: ProxyProcess,
                                                   microsocks_auth: ProxyProcess):
    env = {"HTTP_PROXY": f"http://127.0.0.1:{tinyproxy.port}", "NO_PROXY": "0.0.0.0",
           "ALL_PROXY": f"socks5://alice:wrong@127.0.0.1:{microsocks_auth.port}"}
    assert await _version_through(tcp_daemon, env) == ("1.56", "direct")
    assert "/v1.56/version" not in tinyproxy.output()


@pytest_twisted.ensureDeferred
async def test_unix_daemon_is_never_proxied(daemon: Daemon, tinyproxy: ProxyProcess):
    client = DockerClient.from_env({"DOCKER_HOST": f"unix://{daemon.socket}",
                                    "HTTP_PROXY": f"http://127.0.0.1:{tinyproxy.port}",
                                    "ALL_PROXY": "socks5://127.0.0.1:1"})
    try:
        assert (await client.version())["ApiVersion"] == "1.56"
        assert client.transport.route == "unix"
    finally:
        await client.close()
    assert "version" not in tinyproxy.output()

"""The client against a real dockertw daemon: UNIX and TCP, negotiation, TLS, errors."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater

from dockertw.client._base import TLSFailure
from dockertw.client.docker import DockerClient
from dockertw.client.errors import InvalidParameterError, NotFoundError
from dockertw.client.tls import TLSSettings
from tests.certs import Authority
from tests.support import Daemon, free_port

pytestmark = pytest.mark.integration

VOLATILE_INFO = {"SystemTime", "NFd", "NGoroutines", "NEventsListener"}


@pytest.fixture
def two_way_daemon(start_daemon: Callable[..., Daemon]) -> tuple[Daemon, int]:
    port = free_port()
    return start_daemon("--listen", f"tcp:{port}:interface=127.0.0.1"), port


def _requests_logged(daemon: Daemon, marker: str, wait: float = 2.0) -> list[str]:
    """The access log's lines with ``marker``, once some are there (it is written in
    batches, a tenth of a second apart) or after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        lines = [line for line in daemon.output().splitlines() if marker in line]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest_twisted.ensureDeferred
async def test_same_calls_over_unix_and_tcp_give_equal_results(two_way_daemon):
    daemon, port = two_way_daemon
    over_unix = DockerClient(f"unix://{daemon.socket}")
    over_tcp = DockerClient(f"tcp://127.0.0.1:{port}")
    try:
        for call in ("version", "disk_usage"):
            assert await getattr(over_unix, call)() == await getattr(over_tcp, call)()
        unix_info, tcp_info = await over_unix.info(), await over_tcp.info()
        for key in VOLATILE_INFO:
            unix_info.pop(key), tcp_info.pop(key)
        assert unix_info == tcp_info
        unix_ping, tcp_ping = await over_unix.ping(), await over_tcp.ping()
        assert unix_ping == tcp_ping
        assert unix_ping.api_version == "1.56"
    finally:
        await over_unix.close()
        await over_tcp.close()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("maximum, settled", [("1.60", "1.56"), ("1.45", "1.45"), ("1.30", "1.30")])
async def test_negotiation_settles_on_the_lower_maximum(daemon, maximum, settled):
    client = DockerClient(f"unix://{daemon.socket}", max_version=maximum)
    try:
        assert client.api_version is None
        await client.version()
        assert client.api_version == settled
        assert _requests_logged(daemon, f"GET /v{settled}/version 200")
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_concurrent_first_calls_share_one_ping(daemon):
    client = DockerClient(f"unix://{daemon.socket}")
    try:
        await defer.gatherResults([
            defer.Deferred.fromCoroutine(client.version()) for _ in range(5)])
        await client.info()
        assert _requests_logged(daemon, "/info 200")  # the last request's line is in
        assert len(_requests_logged(daemon, "HEAD /_ping", wait=0)) == 1
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_pinned_version_never_pings(daemon):
    client = DockerClient.from_env({"DOCKER_HOST": f"unix://{daemon.socket}",
                                    "DOCKER_API_VERSION": "v1.35"})
    try:
        await client.version()
        assert client.api_version == "1.35"
        assert _requests_logged(daemon, "GET /v1.35/version 200")
        assert not _requests_logged(daemon, "HEAD /_ping", wait=0)  # GET: the fixture's probe
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_errors_are_typed_with_status_and_message(daemon):
    client = DockerClient(f"unix://{daemon.socket}")
    try:
        with pytest.raises(InvalidParameterError) as raised:
            async for _ in client.events(filters={"foo": ["bar"]}):
                pass
        assert (raised.value.status, raised.value.message) == (400, "Invalid filter 'foo'")
        with pytest.raises(NotFoundError) as missing:
            await client.inspect_volume("nothing-here")
        assert missing.value.status == 404
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_events_stream_decodes_replayed_events(daemon):
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGHUP)
    await _sleep(0.3)
    client = DockerClient(f"unix://{daemon.socket}")
    try:
        seen = [event async for event in client.events(
            since="0", until=str(int(time.time()) + 1), filters={"type": "daemon"})]
        assert [event["Action"] for event in seen] == ["reload"]
    finally:
        await client.close()


async def _sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


class TestTLS:
    @pytest.fixture
    def pki(self, workdir: Path) -> dict[str, Any]:
        authority = Authority(workdir)
        return {
            "authority": authority,
            "server": authority.issue("server", "daemon", server=True,
                                      hosts=("127.0.0.1", "localhost")),
            "named": authority.issue("named", "daemon", server=True, hosts=("daemon.test",)),
            "client": authority.issue("client", "client", server=False),
            "other": Authority(workdir, "other CA"),
        }

    def _daemon(self, start_daemon, pki, server_cert: str) -> int:
        port = free_port()
        issued = pki[server_cert]
        start_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                     "--tlscacert", str(pki["authority"].files.cert),
                     "--tlscert", str(issued.cert), "--tlskey", str(issued.key))
        return port

    def _client(self, host: str, pki, ca: Path) -> DockerClient:
        tls = TLSSettings(ca=ca, cert=pki["client"].cert, key=pki["client"].key)
        return DockerClient(host, tls=tls)

    @pytest_twisted.ensureDeferred
    @pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
    async def test_verifies_the_daemon_by_ip_and_name(self, start_daemon, pki, host):
        port = self._daemon(start_daemon, pki, "server")
        client = self._client(f"tcp://{host}:{port}", pki, pki["authority"].files.cert)
        try:
            assert (await client.version())["ApiVersion"] == "1.56"
            assert client.transport.base_url.startswith("https://")
        finally:
            await client.close()

    @pytest_twisted.ensureDeferred
    @pytest.mark.parametrize("server_cert, trusted", [
        ("server", "other"),        # the daemon's CA is not the one the client trusts
        ("named", "authority"),     # the certificate names daemon.test, not 127.0.0.1
    ])
    async def test_wrong_ca_or_name_mismatch_fails_clearly(self, start_daemon, pki,
                                                           server_cert, trusted):
        port = self._daemon(start_daemon, pki, server_cert)
        client = self._client(f"tcp://127.0.0.1:{port}", pki, pki[trusted].files.cert)
        try:
            with pytest.raises(TLSFailure, match="TLS handshake failed"):
                await client.version()
        finally:
            await client.close()

    @pytest_twisted.ensureDeferred
    async def test_from_env_reads_the_cert_path(self, start_daemon, pki, workdir):
        port = self._daemon(start_daemon, pki, "server")
        certs = workdir / "certs"
        certs.mkdir()
        (certs / "ca.pem").write_bytes(pki["authority"].files.cert.read_bytes())
        (certs / "cert.pem").write_bytes(pki["client"].cert.read_bytes())
        (certs / "key.pem").write_bytes(pki["client"].key.read_bytes())
        client = DockerClient.from_env({"DOCKER_HOST": f"tcp://127.0.0.1:{port}",
                                        "DOCKER_CERT_PATH": str(certs),
                                        "DOCKER_TLS_VERIFY": "1"})
        try:
            assert (await client.ping()).api_version == "1.56"
        finally:
            await client.close()

"""Server-side hijack through the real HTTP stack, over UNIX, TCP and TLS listeners."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS

from dockertw.api import ApiCall, ApiConfig, Route, build_resource
from dockertw.api.hijack import hijack, upgrade_head
from dockertw.api.site import ApiSite
from dockertw.client.hijack import build_upgrade_request
from dockertw.client.hijack import hijack as client_hijack
from dockertw.listeners import wrap_tls
from dockertw.streams.stdcopy import Stream, encode_frame
from dockertw.tlshalfclose import wrap_client_tls
from tests.certs import Authority

RAW = b"application/vnd.docker.raw-stream"


class _EchoRouter:
    """Echoes stdin back framed as stdout; says bye on stderr at end of input."""

    def routes(self) -> Sequence[Route]:
        return [Route("POST", "/echo/<path:name>", self.echo),
                Route("GET", "/plain", lambda call: {"still": "http"})]

    def echo(self, call: ApiCall) -> Deferred[None]:
        upgrade = call.request.getHeader(b"upgrade") is not None
        stream = hijack(call.request, upgrade_head(RAW, upgrade))
        done: Deferred[None] = Deferred()
        stream.on_data = lambda data: stream.write(encode_frame(Stream.STDOUT, data))

        def eof() -> None:
            stream.write(encode_frame(Stream.STDERR, call.params["name"].encode()))
            stream.close_write()

        stream.on_eof = eof
        stream.on_lost = lambda reason: done.callback(None)
        stream.start()
        return done


def _site() -> ApiSite:
    return ApiSite(build_resource([_EchoRouter()], ApiConfig()), "test")


@pytest_twisted.async_yield_fixture
async def listeners(workdir: Path):
    authority = Authority(workdir)
    server = authority.issue("server", "localhost", server=True, hosts=("127.0.0.1",))
    key_and_cert = server.key.read_bytes() + server.cert.read_bytes()
    tls = PrivateCertificate.loadPEM(key_and_cert).options()
    ports = {
        "unix": reactor.listenUNIX(str(workdir / "h.sock"), _site()),
        "tcp": reactor.listenTCP(0, _site(), interface="127.0.0.1"),
        "tls": reactor.listenTCP(0, wrap_tls(_site(), tls), interface="127.0.0.1"),
    }
    trust = Certificate.loadPEM(authority.files.cert.read_bytes())
    endpoints = {
        "unix": UNIXClientEndpoint(reactor, str(workdir / "h.sock")),
        "tcp": TCP4ClientEndpoint(reactor, "127.0.0.1", ports["tcp"].getHost().port),
        "tls": wrap_client_tls(optionsForClientTLS("127.0.0.1", trust),
                               TCP4ClientEndpoint(reactor, "127.0.0.1",
                                                  ports["tls"].getHost().port)),
    }
    yield endpoints, ports
    for port in ports.values():
        await port.stopListening()


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("kind", ["unix", "tcp", "tls"])
async def test_upgrade_echo_and_half_close(listeners, kind):
    endpoints, _ = listeners
    request = build_upgrade_request("POST", "/v1.41/echo/bye", "h", {}, b"")
    stream = await client_hijack(endpoints[kind], request, tty=False)
    stream.write(b"ping\n")
    stream.close_write()
    assert await stream.read_all() == (b"ping\n", b"bye")


@pytest_twisted.ensureDeferred
async def test_input_sent_with_the_request_is_not_lost(listeners):
    _, ports = listeners
    port = ports["tcp"].getHost().port
    received = await _raw_exchange(
        port, b"POST /echo/x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n"
              b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
    assert b"Api-Version" not in head  # attach's 101 carries no other headers
    assert body == encode_frame(Stream.STDOUT, b"early\n") + encode_frame(Stream.STDERR, b"x")


@pytest_twisted.ensureDeferred
async def test_without_upgrade_the_answer_is_a_bare_200(listeners):
    _, ports = listeners
    port = ports["tcp"].getHost().port
    received = await _raw_exchange(
        port, b"POST /echo/y HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: " + RAW + b"\r\n\r\n")


def _raw_exchange(port: int, data: bytes) -> Deferred[bytes]:
    from twisted.internet.threads import deferToThread

    def exchange() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    return deferToThread(exchange)

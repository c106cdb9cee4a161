"""Acceptance: who a ``--tlsverify`` listener lets in (issue 14, item 6).

A client certificate from an unknown CA, no certificate, an expired one, and one
whose extended key usage leaves out clientAuth are each refused during the TLS
handshake, before any request, and logged with the peer's address; so are TLS
versions below 1.2 and TLS 1.2 cipher suites Docker does not accept.  The real docker
CLI where a client is involved, Python's ``ssl`` for the protocol details;
certificates made here.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from dockertw.versions import MAX_API_VERSION
from tests.certs import Authority, Issued
from tests.support import Daemon, docker, free_port

pytestmark = pytest.mark.integration


@attrs.frozen
class Listener:
    daemon: Daemon
    port: int
    ca: Path
    clients: dict[str, Issued]

    def docker(self, client: str | None, *args: str) -> subprocess.CompletedProcess[str]:
        tls = ["--tlsverify", "--tlscacert", str(self.ca)]
        if client is not None:
            tls += ["--tlscert", str(self.clients[client].cert),
                    "--tlskey", str(self.clients[client].key)]
        return docker(*tls, "-H", f"tcp://127.0.0.1:{self.port}", *args)

    def refusal(self, peer: str = r"127\.0\.0\.1:\d+", timeout: float = 10.0) -> str:
        """Why the daemon logged it refused the handshake of ``peer`` (a pattern)."""
        wanted = re.compile(rf"TLS handshake from {peer} to 127\.0\.0\.1:{self.port} "
                            r"refused: (.*)$", re.MULTILINE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = wanted.search(self.daemon.output())
            if found is not None:
                return found.group(1)
            time.sleep(0.1)
        raise AssertionError(f"no {wanted.pattern!r} in:\n{self.daemon.output()[-3000:]}")

    def requests(self, wait: float = 2.0) -> list[str]:
        """The access log's GET lines of this listener, once there are some (the log
        is written every tenth of a second) or after ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            lines = [line for line in self.daemon.output().splitlines()
                     if f"tcp://127.0.0.1:{self.port} " in line and " GET " in line]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


@pytest.fixture
def listener(start_daemon: Callable[..., Daemon], workdir: Path) -> Listener:
    authority = Authority(workdir)
    server = authority.issue("server", "localhost", server=True,
                             hosts=("127.0.0.1", "localhost"))
    stranger = Authority(workdir, "other CA")
    clients = {
        "good": authority.issue("good", "good", server=False),
        "stranger": stranger.issue("stranger", "stranger", server=False),
        "expired": authority.issue("expired", "expired", server=False, expired=True),
        "server-only": authority.issue("server-only", "server-only", server=False,
                                       usages=(ExtendedKeyUsageOID.SERVER_AUTH,)),
    }
    port = free_port()
    daemon = start_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                          "--tlscacert", str(authority.files.cert),
                          "--tlscert", str(server.cert), "--tlskey", str(server.key))
    return Listener(daemon, port, authority.files.cert, clients)


def test_a_certificate_of_the_ca_with_client_auth_is_let_in(listener: Listener):
    done = listener.docker("good", "version", "--format", "{{.Server.APIVersion}}")
    assert (done.returncode, done.stdout.strip()) == (0, MAX_API_VERSION), done.stderr
    assert listener.requests()


@pytest.mark.parametrize("client, cli_says, logged", [
    ("stranger", ("unknown certificate authority", "bad certificate"),
     "unable to get local issuer certificate (client certificate CN=stranger)"),
    (None, ("certificate required", "bad certificate", "handshake failure"),
     "peer did not return a certificate"),
    ("expired", ("expired certificate", "bad certificate"),
     "certificate has expired (client certificate CN=expired)"),
    ("server-only", ("unsupported certificate", "bad certificate"),
     "unsupported certificate purpose (client certificate CN=server-only)"),
])
def test_each_untrusted_client_is_refused_at_the_handshake_and_logged(
        listener: Listener, client: str | None, cli_says: tuple[str, ...], logged: str):
    done = listener.docker(client, "version", "--format", "{{.Server.APIVersion}}")
    assert done.returncode != 0
    assert any(words in done.stderr for words in cli_says), done.stderr
    assert listener.refusal() == logged
    assert listener.requests(wait=0.3) == []  # not one request got through


def _handshake(port: int, context: ssl.SSLContext) -> tuple[str, str | None]:
    """Our address, and the TLS version agreed (``None``: refused)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        me = re.escape("{}:{}".format(*sock.getsockname()))
        try:
            with context.wrap_socket(sock, server_hostname="localhost") as tls:
                tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                return me, tls.version() if tls.recv(100).startswith(b"HTTP/1.1 200") else None
        except (ssl.SSLError, ConnectionError):
            return me, None


def _client_context(listener: Listener, client: str = "good") -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(listener.ca)
    issued = listener.clients[client]
    context.load_cert_chain(issued.cert, issued.key)
    return context


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_2_and_1_3_are_served_and_older_versions_refused(listener: Listener):
    context = _client_context(listener)
    assert _handshake(listener.port, context)[1] == "TLSv1.3"
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    assert _handshake(listener.port, context)[1] == "TLSv1.2"
    old = _client_context(listener)
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer what it may
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    me, agreed = _handshake(listener.port, old)
    assert agreed is None
    assert "protocol" in listener.refusal(me)  # "unsupported protocol"


def test_tls_1_2_ciphers_other_than_dockers_are_refused(listener: Listener):
    context = _client_context(listener)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # CBC: not in Docker's list
    me, agreed = _handshake(listener.port, context)
    assert agreed is None
    assert "no shared cipher" in listener.refusal(me)


def test_plain_http_on_the_tls_port_is_refused_and_logged(listener: Listener):
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        me = re.escape("{}:{}".format(*sock.getsockname()))
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" not in sock.recv(100)
    assert listener.refusal(me)


def test_the_cli_with_the_right_certificates_in_docker_cert_path(listener: Listener,
                                                                 workdir: Path):
    certs = workdir / "certs"
    certs.mkdir()
    shutil.copyfile(listener.ca, certs / "ca.pem")
    shutil.copyfile(listener.clients["good"].cert, certs / "cert.pem")
    shutil.copyfile(listener.clients["good"].key, certs / "key.pem")
    done = docker("version", "--format", "{{.Server.APIVersion}}", env_extra={
        "DOCKER_HOST": f"tcp://127.0.0.1:{listener.port}", "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(certs)})
    assert (done.returncode, done.stdout.strip()) == (0, MAX_API_VERSION), done.stderr

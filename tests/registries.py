"""Real registries on loopback for the tests: Debian's ``docker-registry`` (distribution
2.8) over plain HTTP, TLS, TLS with htpasswd Basic auth, or token auth served by a
small token server the test runs (JWTs signed with a key it makes)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.certs import Authority, Issued
from tests.support import free_port

REGISTRY = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")
HTPASSWD = shutil.which("htpasswd")
needs_registry = pytest.mark.skipif(REGISTRY is None,
                                    reason="docker-registry is not installed")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """distribution's ``auth: token`` realm: grants what a user asks for, refuses a
    wrong password, and records every scope it was asked for."""

    def __init__(self, workdir: Path, users: dict[str, str], service: str = "dtw-test",
                 issuer: str = "dtw-token-issuer", anonymous_pull: tuple[str, ...] = ()
                 ) -> None:
        self.authority = Authority(workdir, "dtw token signer")
        self.users = users
        self.service = service
        self.issuer = issuer
        self.anonymous_pull = anonymous_pull
        self.scopes: list[str] = []
        self.refresh_tokens: dict[str, str] = {}
        self.port = free_port()
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> TokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def sign(self, subject: str, access: list[dict[str, Any]], lifetime: int = 300) -> str:
        der = self.authority.certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + lifetime,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = (_b64(json.dumps(header).encode()) + "." +
                         _b64(json.dumps(claims).encode()))
        der_signature = self.authority.key.sign(signing_input.encode(),
                                                ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der_signature)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing_input + "." + _b64(signature)

    def _grant(self, user: str, scopes: list[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            self.scopes.append(scope)
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            allowed = actions.split(",") if user else [
                a for a in actions.split(",") if a == "pull" and name in self.anonymous_pull]
            if kind == "repository" and allowed:
                access.append({"type": kind, "name": name, "actions": allowed})
        return access

    def answer(self, user: str, scopes: list[str], offline: bool) -> dict[str, Any]:
        token = self.sign(user, self._grant(user, scopes))
        answer: dict[str, Any] = {"token": token, "access_token": token, "expires_in": 300}
        if offline and user:
            refresh = uuid.uuid4().hex
            self.refresh_tokens[refresh] = user
            answer["refresh_token"] = refresh
        return answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _denied(self) -> None:
                self._reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                              "message": "incorrect username or password"}]})

            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlsplit(self.path).query)
                user = ""
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if server.users.get(name) != password:
                        return self._denied()
                    user = name
                self._reply(200, server.answer(user, query.get("scope", []), False))

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if form.get("grant_type") == "refresh_token":
                    user = server.refresh_tokens.get(form.get("refresh_token", ""), "")
                else:
                    user = form.get("username", "")
                    if server.users.get(user) != form.get("password"):
                        user = ""
                if not user:
                    return self._denied()
                scopes = form.get("scope", "").split()
                self._reply(200, server.answer(user, scopes, offline=True))

        return Handler


class Registry:
    """A ``docker-registry`` process with its own storage on a loopback port."""

    def __init__(self, workdir: Path, *, tls: Issued | None = None,
                 client_ca: Path | None = None, htpasswd: dict[str, str] | None = None,
                 token: TokenServer | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.storage = workdir / "storage"
        self.port = free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "registry.log"
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{self.port}", "secret": uuid.uuid4().hex},
        }
        if tls is not None:
            config["http"]["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
            if client_ca is not None:  # clients must show a certificate of this CA
                config["http"]["tls"]["clientcas"] = [str(client_ca)]
        if htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "dtw-basic", "path": str(
                self._htpasswd(htpasswd))}}
        if token is not None:
            config["auth"] = {"token": {"realm": token.realm, "service": token.service,
                                        "issuer": token.issuer,
                                        "rootcertbundle": str(token.authority.files.cert)}}
        self.config = workdir / "config.yml"
        self.config.write_text(json.dumps(config))  # JSON is YAML

    def _htpasswd(self, users: dict[str, str]) -> Path:
        path = self.workdir / "htpasswd"
        lines = []
        for user, password in users.items():
            done = subprocess.run([HTPASSWD or "htpasswd", "-nbB", user, password],
                                  capture_output=True, text=True, check=True)
            lines.append(done.stdout.strip())
        path.write_text("\n".join(lines) + "\n")
        return path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([REGISTRY or "docker-registry", "serve",
                                             str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"registry exited: {self.log.read_text()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"registry did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """A request straight to the registry (plain HTTP or unverified TLS)."""
        scheme = "https" if self.tls is not None else "http"
        request = urllib.request.Request(f"{scheme}://{self.address}{path}",
                                         headers=headers or {})
        context = ssl._create_unverified_context()  # noqa: S323 - our own test registry
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def blob_path(self, digest: str) -> Path:
        hexdigits = digest.removeprefix("sha256:")
        return (self.storage / "docker/registry/v2/blobs/sha256" / hexdigits[:2] / hexdigits
                / "data")


@pytest.fixture
def start_registry(workdir: Path) -> Iterator[Any]:
    """Start registries (and token servers) under ``workdir``; all stopped afterwards."""
    started: list[Registry | TokenServer] = []

    def start(**options: Any) -> Registry:
        registry = Registry(workdir / f"registry{len(started)}", **options)
        started.append(registry)
        return registry.start()

    def token_server(users: dict[str, str], **options: Any) -> TokenServer:
        directory = workdir / f"token{len(started)}"
        directory.mkdir()
        server = TokenServer(directory, users, **options).start()
        started.append(server)
        return server

    start.token_server = token_server  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for item in reversed(started):
            item.stop()


_REQUEST_LINE = re.compile(rb"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1\r\n")


class SlowRelay:
    """A TCP relay on loopback to a registry that sends its answers at
    ``bytes_per_second`` (0: full speed) and records the requests it passes on; with
    ``cut_after``, the first answer stream to pass that many bytes is cut there."""

    def __init__(self, target_port: int, bytes_per_second: int = 0,
                 cut_after: int = 0) -> None:
        self.target_port = target_port
        self.bytes_per_second = bytes_per_second
        self.cut_after = cut_after
        self.cuts = 0
        self.relayed = 0
        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    def start(self) -> SlowRelay:
        self._spawn(self._accept)
        return self

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            self._spawn(self._pipe, client, upstream, False)
            self._spawn(self._pipe, upstream, client, True)

    def _pipe(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        passed = 0
        try:
            while not self._stopped.is_set():
                data = source.recv(65536)
                if not data:
                    break
                passed += len(data)
                if answers and self.cut_after and not self.cuts and passed > self.cut_after:
                    self.cuts += 1
                    break
                if answers:
                    self.relayed += len(data)
                    if self.bytes_per_second:
                        time.sleep(len(data) / self.bytes_per_second)
                else:
                    self.requests += [f"{m.decode()} {p.decode()}"
                                      for m, p in _REQUEST_LINE.findall(data)]
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def count(self, fragment: str) -> int:
        return sum(1 for request in self.requests if fragment in request)

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def start_relay() -> Iterator[Any]:
    """Start :class:`SlowRelay` relays; every one is stopped afterwards."""
    started: list[SlowRelay] = []

    def start(target_port: int, **options: Any) -> SlowRelay:
        relay = SlowRelay(target_port, **options).start()
        started.append(relay)
        return relay

    try:
        yield start
    finally:
        for relay in started:
            relay.stop()

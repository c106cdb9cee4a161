"""``PUT /containers/{id}/archive`` reads its body while it arrives.

Driven over a raw socket, so the test controls when each piece of the body is sent:
an answer can come before the body ends, the rest is then read and dropped, and the
connection serves the next request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator

import pytest

from tests.archives import file, tar
from tests.cli import cli, ok
from tests.support import Daemon, RawHttp, mounts_left

pytestmark = pytest.mark.integration

NAME = "cpstream"


@pytest.fixture
def container(running_daemon: Daemon) -> Iterator[str]:
    ok(running_daemon, "create", "--name", NAME, "bb:1", "true")
    try:
        yield NAME
    finally:
        cli(running_daemon, "rm", "-f", NAME)


def _stat(raw_http: RawHttp, path: str) -> dict[str, object]:
    raw_http.sock.sendall(f"HEAD /containers/{NAME}/archive?path={path} HTTP/1.1\r\n"
                        "Host: d\r\n\r\n".encode())
    head = raw_http.until(b"\r\n\r\n").decode("latin-1")
    for line in head.split("\r\n"):
        if line.lower().startswith("x-docker-container-path-stat:"):
            return json.loads(base64.b64decode(line.split(": ", 1)[1]))
    raise AssertionError(head)


def test_a_broken_archive_is_answered_before_its_body_ends(container: str,
                                                           raw_http: RawHttp) -> None:
    raw_http.head("PUT", f"/containers/{container}/archive?path=/tmp")
    raw_http.chunk(b"not a tar header".ljust(512, b"!"))
    status, _, body = raw_http.response()  # spooling the body first would hang here
    assert status == 400 and b"invalid tar archive" in body
    for _ in range(32):  # the rest is read and dropped
        raw_http.chunk(b"\0" * 65536)
    raw_http.chunk(b"")
    raw_http.ping()


def test_a_large_chunked_upload_lands_whole(container: str, raw_http: RawHttp,
                                            running_daemon: Daemon) -> None:
    payload = hashlib.sha256(b"seed").digest() * (48 << 15)  # 48 MiB
    archive = tar([file("big.bin", payload)])
    raw_http.head("PUT", f"/containers/{container}/archive?path=/tmp")
    for start in range(0, len(archive), 32768):
        raw_http.chunk(archive[start:start + 32768])
    raw_http.chunk(b"")
    status, _, body = raw_http.response()
    assert status == 200, body
    assert _stat(raw_http, "/tmp/big.bin")["size"] == len(payload)
    copied = running_daemon.root / "containers"
    uppers = list(copied.glob("*/upper/tmp/big.bin"))
    assert len(uppers) == 1
    assert hashlib.sha256(uppers[0].read_bytes()).digest() == hashlib.sha256(
        payload).digest()


def test_a_content_length_body_streams_too(container: str, raw_http: RawHttp) -> None:
    archive = tar([file("small.txt", b"hello\n")])
    raw_http.head("PUT", f"/containers/{container}/archive?path=/tmp", len(archive))
    raw_http.sock.sendall(archive)
    status, _, _ = raw_http.response()
    assert status == 200
    assert _stat(raw_http, "/tmp/small.txt")["size"] == 6
    raw_http.ping()


def test_an_unknown_container_is_answered_and_the_body_dropped(raw_http: RawHttp) -> None:
    raw_http.head("PUT", "/containers/nosuch/archive?path=/tmp")
    raw_http.chunk(tar([file("f", b"x" * 100_000)]))
    raw_http.chunk(b"")
    status, _, body = raw_http.response()
    assert status == 404 and b"No such container: nosuch" in body
    raw_http.ping()


def test_a_client_leaving_mid_body_leaves_nothing_behind(container: str,
                                                         running_daemon: Daemon) -> None:
    leaving = RawHttp(running_daemon)
    leaving.head("PUT", f"/containers/{container}/archive?path=/tmp")
    leaving.chunk(tar([file("half.bin", b"y" * 4_000_000)])[:2_000_000])
    time.sleep(0.3)
    leaving.close()
    assert mounts_left(running_daemon.root / "tmp" / "cp") == []
    after = RawHttp(running_daemon)
    try:
        after.ping()
    finally:
        after.close()
    ok(running_daemon, "rm", container)
    ok(running_daemon, "create", "--name", container, "bb:1", "true")

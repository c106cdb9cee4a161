"""``docker import`` and ``docker load`` read their body while it arrives."""

from __future__ import annotations

import pytest

from tests.archives import config, docker_archive, file, sha256, tar
from tests.cli import ok
from tests.support import Daemon, RawHttp

pytestmark = pytest.mark.integration


def test_an_import_is_refused_before_its_body_ends(raw_http: RawHttp) -> None:
    raw_http.head("POST", "/images/create?fromSrc=-&repo=Bad%20Name")
    raw_http.chunk(tar([file("a", b"x" * 10_000)])[:4096])
    status, _, body = raw_http.response()  # a spooled body would hang here
    assert status == 400 and b"invalid reference format" in body
    raw_http.chunk(b"\0" * 100_000)
    raw_http.chunk(b"")
    raw_http.ping()


def test_a_load_reports_while_the_archive_still_arrives(raw_http: RawHttp,
                                                        daemon: Daemon) -> None:
    layer = tar([file("big.bin", b"z" * 3_000_000)])
    archive = docker_archive([(config([sha256(layer)]), [layer], ["streamed:1"])])
    raw_http.head("POST", "/images/load?quiet=1")
    raw_http.chunk(archive[:65536])
    head = raw_http.until(b"\r\n\r\n").decode("latin-1")  # before the rest is sent
    assert head.startswith("HTTP/1.1 200") and "Transfer-Encoding: chunked" in head
    for start in range(65536, len(archive), 65536):
        raw_http.chunk(archive[start:start + 65536])
    raw_http.chunk(b"")
    messages = raw_http.until(b"\r\n0\r\n\r\n")
    assert b"Loaded image: streamed:1" in messages
    raw_http.ping()
    assert ok(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}",
              "streamed") == "streamed:1\n"

"""Connection limits on their own: a channel on an in-memory transport and clock.

The same limits are checked against a real daemon in ``test_connection_limits.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from dockertw.api.limits import ConnectionLimits
from dockertw.api.site import ApiSite
from dockertw.tap import Options

_HEAD = b"POST /create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
_PING = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"


class _Transport(StringTransport):
    """Records a half-close and an abort, as a TCP transport would do them."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class _Api(Resource):
    """Answers with the size of the body; ``PUT /upload`` streams its body."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bytes] = []

    def streams_body(self, method: bytes, path: bytes) -> bool:
        return (method, path) == (b"PUT", b"/upload")

    def render(self, request: Any) -> Any:
        self.seen.append(request.path)
        if request.path == b"/upload":
            return NOT_DONE_YET  # the streamed body is never read here
        return b"%d" % len(request.content.read())


class _Clock(MemoryReactorClock):
    """A clock whose threads call back at once (the streamed bodies' pipes use it)."""

    def callFromThread(self, function: Any, *args: Any) -> None:
        function(*args)


class _Conn:
    """One connection to a site with ``limits``, and the clock it runs on."""

    def __init__(self, **limits: Any) -> None:
        self.clock = _Clock()
        self.api = _Api()
        site = ApiSite(self.api, "test")
        site.reactor = self.clock  # type: ignore[assignment]
        site.limits = ConnectionLimits(**limits)
        self.channel: Any = site.buildProtocol(None)
        self.transport = _Transport()
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @property
    def cut(self) -> bool:
        return self.transport.aborted

    def answered(self) -> bytes:
        return self.transport.value()


def test_headers_must_be_complete_in_time_however_they_trickle() -> None:
    conn = _Conn(header_timeout=5)
    conn.send(b"GET /ping HTTP/1.1\r\n")
    for _ in range(4):
        conn.wait(1)
        conn.send(b"X")  # a byte a second does not buy more time
    assert not conn.cut
    conn.wait(1.1)
    assert conn.cut and conn.answered() == b""


def test_a_connection_that_sends_nothing_is_cut_at_the_header_timeout() -> None:
    conn = _Conn(header_timeout=5)
    conn.wait(4.9)
    assert not conn.cut
    conn.wait(0.2)
    assert conn.cut


def test_a_keep_alive_connection_waits_between_requests_without_limit() -> None:
    conn = _Conn(header_timeout=5)
    conn.send(_PING)
    assert conn.answered().startswith(b"HTTP/1.1 200 ")
    conn.wait(3600)
    assert not conn.cut
    conn.send(b"GET /ping HTTP/1.1\r\n")  # the next request's first byte starts the clock
    conn.wait(4.9)
    assert not conn.cut
    conn.wait(0.2)
    assert conn.cut


def test_an_idle_timeout_cuts_a_quiet_keep_alive_connection() -> None:
    conn = _Conn(header_timeout=5, idle_timeout=30)
    conn.send(_PING)
    conn.wait(29)
    conn.send(_PING)  # a request in time
    conn.wait(29.9)
    assert not conn.cut
    conn.wait(0.2)
    assert conn.cut


def test_no_timeout_at_all_when_none_is_set() -> None:
    conn = _Conn(header_timeout=None, body_timeout=None)
    conn.send(_HEAD + b"Content-Length: 10\r\n\r\n{")
    conn.wait(100_000)
    assert not conn.cut
    assert conn.clock.getDelayedCalls() == []


def test_a_buffered_body_must_be_complete_in_time() -> None:
    conn = _Conn(header_timeout=5, body_timeout=20)
    conn.send(_HEAD + b"Content-Length: 100\r\n\r\n")
    for _ in range(19):
        conn.wait(1)
        conn.send(b"{")
    assert not conn.cut
    conn.wait(1.1)
    assert conn.cut and conn.api.seen == []


def test_a_streamed_body_is_never_timed() -> None:
    conn = _Conn(header_timeout=5, body_timeout=5)
    conn.send(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    conn.wait(0)  # streamed requests are dispatched on the next turn
    conn.wait(3600)
    assert not conn.cut
    assert conn.api.seen == [b"/upload"]


def test_a_response_that_takes_long_is_not_timed() -> None:
    conn = _Conn(header_timeout=5, body_timeout=5, idle_timeout=5)
    conn.send(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    conn.wait(3600)
    assert not conn.cut


def test_a_content_length_over_the_limit_is_refused_at_the_headers() -> None:
    conn = _Conn(max_body=1000)
    conn.send(_HEAD + b"Expect: 100-continue\r\nContent-Length: 1001\r\n\r\n" + b"x" * 500)
    head, _, body = conn.answered().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")  # and no "100 Continue" before it
    assert b"Connection: close" in head
    assert body == b'{"message":"request body too large: the limit is 1000 bytes"}\n'
    assert conn.transport.write_closed and not conn.cut
    conn.send(b"x" * 100_000)  # read and dropped for a while ...
    assert conn.api.seen == []
    conn.wait(2.1)
    assert conn.cut  # ... then the connection is closed


def test_a_chunked_body_is_refused_when_it_crosses_the_limit() -> None:
    conn = _Conn(max_body=1000)
    conn.send(_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    conn.send(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
    assert conn.answered() == b""  # exactly the limit is fine
    conn.send(b"1\r\nx\r\n0\r\n\r\n")
    assert conn.answered().startswith(b"HTTP/1.1 413 ")
    assert conn.api.seen == []  # never routed


def test_bodies_up_to_the_limit_are_routed_whole() -> None:
    conn = _Conn(max_body=1000)
    conn.send(_HEAD + b"Content-Length: 1000\r\n\r\n" + b"x" * 1000)
    conn.send(_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1f4\r\n" + b"y" * 500
              + b"\r\n1f4\r\n" + b"y" * 500 + b"\r\n0\r\n\r\n")
    answers = conn.answered()
    assert answers.count(b"HTTP/1.1 200 ") == 2
    assert answers.endswith(b"\r\n\r\n1000") and b"\r\n\r\n1000HTTP" in answers


def test_a_streamed_body_is_not_limited() -> None:
    conn = _Conn(max_body=1000)
    conn.send(b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n")
    conn.wait(0)
    assert conn.api.seen == [b"/upload"]
    assert conn.answered() == b""


def test_requests_in_a_row_keep_one_timer_at_most() -> None:
    conn = _Conn(header_timeout=5, body_timeout=5)
    for _ in range(100):
        conn.send(_PING)
        conn.send(_HEAD + b"Content-Length: 2\r\n\r\n{}")
        timers = [call for call in conn.clock.getDelayedCalls()
                  if call.func != conn.channel.site._flush]  # the access log's own
        assert len(timers) <= 1
    assert conn.answered().count(b"HTTP/1.1 200 ") == 200


def test_the_daemon_options_default_to_dockerds_timeouts_and_4_mib() -> None:
    options = Options()
    options.parseOptions([])
    assert options["limits"] == ConnectionLimits(header_timeout=300, body_timeout=300,
                                                 idle_timeout=None, max_body=4 << 20)
    options = Options()
    options.parseOptions(["--header-timeout", "0", "--body-timeout", "2.5",
                          "--idle-timeout", "60", "--max-json-body", "64KiB"])
    assert options["limits"] == ConnectionLimits(header_timeout=None, body_timeout=2.5,
                                                 idle_timeout=60, max_body=65536)


@pytest.mark.parametrize("args, complaint", [
    (["--header-timeout", "-1"], "--header-timeout must be 0"),
    (["--idle-timeout", "-5"], "--idle-timeout must be 0"),
    (["--max-json-body", "lots"], "--max-json-body: invalid size 'lots'"),
    (["--max-json-body", "0"], "--max-json-body must be at least 1 byte"),
])
def test_bad_limits_are_refused_with_the_option_named(args: list[str], complaint: str) -> None:
    with pytest.raises(Exception, match=complaint):
        Options().parseOptions(args)

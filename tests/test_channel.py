"""The daemon's HTTP/1.1 channel and lean request, in memory: framing, bodies,
keep-alive, pipelining, refusals, hijacking (dockertw.api.channel, .request)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.server import NOT_DONE_YET

from dockertw.api.channel import BAD_REQUEST, MAX_HEAD, MAX_HEADERS, _send_now
from dockertw.api.site import ApiSite


class _Resource:
    """Answers each request with what it saw; ``/later`` answers when told."""

    isLeaf = True

    def __init__(self) -> None:
        self.seen: list[tuple[bytes, bytes, bytes, dict[bytes, list[bytes]]]] = []
        self.later: list[Any] = []
        self.args: list[dict[bytes, list[bytes]]] = []

    def render(self, request: Any) -> Any:
        body = request.content.read() if request.content is not None else b""
        self.args.append(request.args)
        self.seen.append((request.method, request.uri, body,
                          dict(request.requestHeaders.getAllRawHeaders())))
        if request.path == b"/later":
            self.later.append(request)
            return NOT_DONE_YET
        if request.path == b"/stream":
            request.write(b"one")
            request.write(b"two")
            request.finish()
            return NOT_DONE_YET
        request.setHeader(b"content-type", b"text/plain")
        return b"got " + body


def _channel() -> tuple[Any, StringTransport, _Resource]:
    resource = _Resource()
    site = ApiSite(resource, "test")  # type: ignore[arg-type]
    site.reactor = MemoryReactorClock()  # type: ignore[assignment]
    channel: Any = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport, resource


def _answers(data: bytes) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    """Status lines, headers and bodies of Content-Length or chunked answers."""
    answers = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = dict(line.split(b": ", 1) for line in lines[1:])
        if b"Content-Length" in headers:
            length = int(headers[b"Content-Length"])
            body, data = data[:length], data[length:]
        else:
            body = b""
            while True:
                size, _, data = data.partition(b"\r\n")
                count = int(size, 16)
                body, data = body + data[:count], data[count + 2:]
                if not count:
                    break
        answers.append((lines[0], headers, body))
    return answers


def test_a_request_gets_a_whole_answer_and_the_connection_stays_open():
    channel, transport, resource = _channel()
    channel.dataReceived(b"GET /x?a=1 HTTP/1.1\r\nHost: d\r\nX-Two: a\r\nx-two: b\r\n\r\n")
    [(status, headers, body)] = _answers(transport.value())
    assert status == b"HTTP/1.1 200 OK" and body == b"got "
    assert headers[b"Content-Type"] == b"text/plain" and b"Date" in headers
    assert resource.seen[0][3][b"x-two"] == [b"a", b"b"]
    assert transport.connected and not transport.disconnecting


def test_arguments_come_from_the_query_alone_never_from_a_form_body():
    channel, transport, resource = _channel()
    channel.dataReceived(b"POST /x?a=1&a=2 HTTP/1.1\r\nContent-Type: application/x-www-form-"
                         b"urlencoded\r\nContent-Length: 3\r\n\r\nb=3")
    assert resource.args == [{b"a": [b"1", b"2"]}]
    assert _answers(transport.value())[0][2] == b"got b=3"


@pytest.mark.parametrize("pieces", [
    [b"POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"],
    [b"POST /x HTTP/1.1\r\nContent-", b"Length: 5\r\n\r\nhe", b"llo"],
    [b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n"
     b"0\r\nTrailer: t\r\n\r\n"],
    [b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2", b"\r\nh", b"e\r", b"\n3\r\n",
     b"llo\r\n0\r\n", b"\r\n"],
])
def test_bodies_by_length_or_chunked_whatever_the_reads(pieces):
    channel, transport, resource = _channel()
    for piece in pieces:
        channel.dataReceived(piece)
    assert [body for _, _, body, _ in resource.seen] == [b"hello"]
    assert _answers(transport.value())[0][2] == b"got hello"


def test_pipelined_requests_wait_for_the_answer_before_them():
    channel, transport, resource = _channel()
    channel.dataReceived(b"GET /later HTTP/1.1\r\n\r\nGET /a HTTP/1.1\r\n\r\n"
                         b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")
    assert [uri for _, uri, _, _ in resource.seen] == [b"/later"]
    later = resource.later.pop()
    later.write(b"first")
    later.finish()
    assert [uri for _, uri, _, _ in resource.seen] == [b"/later", b"/a", b"/b"]
    assert [body for _, _, body in _answers(transport.value())] == [b"first", b"got ",
                                                                    b"got ok"]


def test_an_answer_of_unknown_length_is_chunked_and_head_gets_no_body():
    channel, transport, _ = _channel()
    channel.dataReceived(b"GET /stream HTTP/1.1\r\n\r\n")
    [(_, headers, body)] = _answers(transport.value())
    assert headers[b"Transfer-Encoding"] == b"chunked" and body == b"onetwo"
    transport.clear()
    channel.dataReceived(b"HEAD /x HTTP/1.1\r\n\r\n")
    assert transport.value().endswith(b"\r\n\r\n") and b"got" not in transport.value()


def test_connection_close_and_http_1_0_end_the_connection():
    channel, transport, _ = _channel()
    channel.dataReceived(b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\nGET /y HTTP/1.1\r\n\r\n")
    [(_, headers, _)] = _answers(transport.value())
    assert headers[b"Connection"] == b"close" and transport.disconnecting
    channel, transport, _ = _channel()
    channel.dataReceived(b"GET /x HTTP/1.0\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.0 200 OK") and transport.disconnecting


def test_expect_100_continue_is_answered_before_the_body():
    channel, transport, resource = _channel()
    channel.dataReceived(b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n" and not resource.seen
    channel.dataReceived(b"ok")
    assert resource.seen[0][2] == b"ok"


@pytest.mark.parametrize("request_bytes", [
    b"NONSENSE\r\n\r\n",
    b"GET /x HTTP/2.0\r\n\r\n",
    b"GET /x HTTP/1.1\r\nBad Name: v\r\n\r\n",
    b"GET /x HTTP/1.1\r\nName : v\r\n\r\n",
    b"GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
    b"GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
    b"GET /x HTTP/1.1\r\n: v\r\n\r\n",
    b"GET /x HTTP/1.1\r\nA: b\rc\r\n\r\n",
    b"GET /x HTTP/1.1\r\nA: b\nc\r\n\r\n",
    b"GET /x HTTP/1.1\r\nA: b\0\r\n\r\n",
    b"GET /x HTTP/1.1\r\nA(b): v\r\n\r\n",
    b"GET /x HTTP/1.1" + b"\r\nA: b" * (MAX_HEADERS + 1) + b"\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: -2\r\n\r\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd",
    b"GET /x HTTP/1.1\r\nA: " + b"a" * MAX_HEAD + b"\r\n\r\n",
])
def test_what_could_be_read_two_ways_or_not_at_all_is_refused(request_bytes):
    channel, transport, resource = _channel()
    channel.dataReceived(request_bytes)
    assert transport.value() == BAD_REQUEST and transport.disconnecting
    assert resource.seen == []
    channel.dataReceived(b"GET /y HTTP/1.1\r\n\r\n")  # nothing more is read
    assert resource.seen == []


def test_header_lines_are_split_trimmed_and_gathered_by_lower_case_name():
    channel, transport, resource = _channel()
    channel.dataReceived(b"GET /x HTTP/1.1\r\nX-A:one\r\nx-a: \t two \t\r\nEmpty:\r\n"
                         b"Odd-Value: a:b c\r\n\r\n")
    headers = resource.seen[0][3]
    assert headers == {b"x-a": [b"one", b"two"], b"empty": [b""], b"odd-value": [b"a:b c"]}


def test_a_hijacked_request_takes_what_followed_it():
    channel, transport, resource = _channel()
    channel.dataReceived(b"POST /later HTTP/1.1\r\nUpgrade: tcp\r\n\r\nraw stdin")
    channel.dataReceived(b" and more")
    assert channel.take_buffered() == b"raw stdin and more"
    assert channel.take_buffered() == b""


def test_header_values_are_sanitised_once_in_the_block():
    channel, transport, resource = _channel()
    request = channel.requestFactory(channel)
    request.setHeader(b"x-a", b"one\r\nInjected: yes")
    request.setHeader("X-B", "two")
    block = request.responseHeaders.block()
    assert block == b"X-A: one Injected: yes\r\nX-B: two\r\n"


def test_a_lost_connection_errbacks_the_request_being_answered():
    channel, transport, resource = _channel()
    channel.dataReceived(b"GET /later HTTP/1.1\r\n\r\n")
    failures: list[Any] = []
    resource.later[0].notifyFinish().addErrback(failures.append)
    channel.connectionLost(Exception("gone"))  # type: ignore[arg-type]
    assert len(failures) == 1


def test_a_wrapping_transport_sends_everything_itself():
    """A TLS transport answers for its socket's attributes: writing to that socket
    would send plain text past it."""
    channel, transport, resource = _channel()
    sent: list[bytes] = []

    class _Socket:
        def send(self, data: bytes) -> int:
            sent.append(data)
            return len(data)

    transport.socket = _Socket()  # type: ignore[attr-defined]
    transport._tempDataBuffer = []  # type: ignore[attr-defined]
    transport.dataBuffer = b""  # type: ignore[attr-defined]
    channel.dataReceived(b"GET /x HTTP/1.1\r\n\r\n")
    assert sent == [] and _answers(transport.value())[0][2] == b"got "


def test_an_answer_goes_to_the_socket_at_once_unless_the_connection_is_aborted():
    """An aborted connection sends nothing more: a tar stream that fails midway is cut
    (abortConnection), and the end of its chunked answer must not follow it out."""
    ours, theirs = socket.socketpair()
    transport = FileDescriptor(MemoryReactorClock())
    transport.socket = ours  # type: ignore[attr-defined]
    transport.connected = True
    transport._aborting = False  # type: ignore[attr-defined]
    transport._sendmsgQueue = []  # type: ignore[attr-defined]
    try:
        assert _send_now(transport, b"head") == b""
        assert theirs.recv(16) == b"head"
        transport._aborting = True  # type: ignore[attr-defined]
        assert _send_now(transport, b"0\r\n\r\n") == b"0\r\n\r\n"
    finally:
        ours.close()
        theirs.close()

"""Every typed call of ``DockerClient`` against an in-process fake daemon on 127.0.0.1.

The fake is a real ``twisted.web`` server that records each request and answers a
canned reply per (method, path); attach and exec start go to a raw protocol server
that answers the hijack as Docker does.  Request shapes follow the spec (2.2-2.5, 3.x,
5.2, 5.4, 7.3).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IListeningPort,
    IProtocolFactory,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from dockertw.client._calls import ProgressError
from dockertw.client.docker import DockerClient
from dockertw.client.errors import APIError, ConflictError, NotFoundError, SystemError_
from dockertw.streams.stdcopy import Chunk, Stream, encode_frame
from tests.support import within_seconds

V = "/v1.41"
TIMEOUT = 5.0
SLASHED = "localhost:5000/a/b:tag"


# -- the HTTP fake ---------------------------------------------------------------------------

Part = bytes | Deferred


@attrs.define
class Reply:
    """A canned answer: parts are written one by one (a Deferred part waits for it)."""

    status: int = 200
    headers: dict[str, str] = attrs.field(factory=dict)
    parts: list[Part] = attrs.field(factory=list)


def json_reply(value: Any, status: int = 200) -> Reply:
    body = json.dumps(value).encode() + b"\n"
    return Reply(status, {"Content-Type": "application/json",
                          "Content-Length": str(len(body))}, [body])


def empty_reply(status: int = 204) -> Reply:
    return Reply(status)


def streamed(*parts: Part, content_type: str | None = "application/json") -> Reply:
    """No Content-Length: twisted.web sends the parts chunked, one write each."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    return Reply(200, headers, list(parts))


@attrs.frozen
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, list[str]]
    body: bytes

    @property
    def args(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


class FakeDaemon(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[tuple[str, str], Reply] = {}
        self.seen: list[Seen] = []

    def answer(self, method: str, path: str, reply: Reply) -> None:
        self.replies[(method, V + path)] = reply

    def render(self, request: Request) -> object:
        method, path = request.method.decode(), request.path.decode()
        assert request.content is not None
        self.seen.append(Seen(
            method, path, request.uri.decode().partition("?")[2],
            {name.decode().lower(): [value.decode() for value in values]
             for name, values in request.requestHeaders.getAllRawHeaders()},
            request.content.read()))
        reply = self.replies.get((method, path)) or json_reply(
            {"message": "page not found"}, 404)
        request.defaultContentType = None
        request.setResponseCode(reply.status)
        for name, value in reply.headers.items():
            request.responseHeaders.setRawHeaders(name, [value])
        Deferred.fromCoroutine(_write_parts(request, reply.parts))
        return NOT_DONE_YET


async def _write_parts(request: Request, parts: list[Part]) -> None:
    gone: list[bool] = []
    request.notifyFinish().addBoth(lambda _: gone.append(True))
    for index, part in enumerate(parts):
        if isinstance(part, Deferred):
            await part
            continue
        if index:
            await deferLater(reactor, 0.01)  # a separate read on the client side
        if gone:
            return
        request.write(part)
    if not gone:
        request.finish()


@attrs.define
class Harness:
    daemon: FakeDaemon
    client: DockerClient

    def answer(self, method: str, path: str, reply: Reply) -> None:
        self.daemon.answer(method, path, reply)

    @property
    def seen(self) -> list[Seen]:
        return self.daemon.seen

    @property
    def last(self) -> Seen:
        return self.daemon.seen[-1]


async def _listen(factory: IProtocolFactory) -> tuple[IListeningPort, DockerClient]:
    """A server on an ephemeral loopback port and a client of it (pinned: no ping)."""
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    address = cast(IPv4Address, port.getHost())
    return port, DockerClient(f"tcp://127.0.0.1:{address.port}", version="1.41")


@pytest_twisted.async_yield_fixture
async def fake() -> AsyncIterator[Harness]:
    daemon = FakeDaemon()
    port, client = await _listen(Site(daemon))
    try:
        yield Harness(daemon, client)
    finally:
        await client.close()
        await maybeDeferred(port.stopListening)


def within(coroutine: Coroutine[Any, Any, Any], seconds: float = TIMEOUT) -> Deferred:
    return within_seconds(coroutine, seconds)


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


# -- containers ------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_list_containers_sends_booleans_as_1_and_filters_as_json_sets(fake: Harness) -> None:
    fake.answer("GET", "/containers/json", json_reply([{"Id": "abc", "Names": ["/mr-a"]}]))
    result = await fake.client.list_containers(all=True, filters={"name": "mr-"})
    assert result == [{"Id": "abc", "Names": ["/mr-a"]}]
    assert (fake.last.method, fake.last.path) == ("GET", "/v1.41/containers/json")
    # byte for byte what `docker ps -a --filter name=mr-` sends
    assert fake.last.query == "all=1&filters=%7B%22name%22%3A%7B%22mr-%22%3Atrue%7D%7D"


@pytest_twisted.ensureDeferred
async def test_defaults_leave_false_out_and_a_pinned_version_never_pings(fake: Harness) -> None:
    fake.answer("GET", "/containers/json", json_reply([]))
    assert await fake.client.list_containers() == []
    assert await fake.client.list_containers(size=True, limit=2) == []
    assert [seen.path for seen in fake.seen] == [V + "/containers/json"] * 2
    assert fake.seen[0].query == ""
    assert fake.seen[1].args == {"limit": ["2"], "size": ["1"]}


@pytest_twisted.ensureDeferred
async def test_create_container_posts_the_config_as_json(fake: Harness) -> None:
    fake.answer("POST", "/containers/create",
                json_reply({"Id": "c" * 64, "Warnings": []}, status=201))
    config = {"Image": "busybox:local", "Cmd": ["echo", "hi"], "HostConfig": {"AutoRemove": True}}
    result = await fake.client.create_container(config, name="mr-c")
    assert result == {"Id": "c" * 64, "Warnings": []}
    assert fake.last.method == "POST" and fake.last.args == {"name": ["mr-c"]}
    assert fake.last.header("Content-Type") == "application/json"
    assert json.loads(fake.last.body) == config


@pytest_twisted.ensureDeferred
async def test_inspect_container(fake: Harness) -> None:
    fake.answer("GET", "/containers/mr-c/json", json_reply({"Id": "abc", "Config": {"Tty": False}}))
    assert await fake.client.inspect_container("mr-c") == {"Id": "abc", "Config": {"Tty": False}}
    assert fake.last.method == "GET" and fake.last.query == ""


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("call, method, path, args", [
    (lambda c: c.start_container("c1"), "POST", "/containers/c1/start", {}),
    (lambda c: c.stop_container("c1", timeout=0), "POST", "/containers/c1/stop", {"t": ["0"]}),
    (lambda c: c.stop_container("c1"), "POST", "/containers/c1/stop", {}),
    (lambda c: c.restart_container("c1", timeout=1), "POST", "/containers/c1/restart",
     {"t": ["1"]}),
    (lambda c: c.kill_container("c1", signal="USR1"), "POST", "/containers/c1/kill",
     {"signal": ["USR1"]}),
    (lambda c: c.kill_container("c1", signal=9), "POST", "/containers/c1/kill",
     {"signal": ["9"]}),
    (lambda c: c.remove_container("c1", force=True, volumes=True), "DELETE", "/containers/c1",
     {"force": ["1"], "v": ["1"]}),
    (lambda c: c.remove_container("c1"), "DELETE", "/containers/c1", {}),
])
async def test_container_actions_without_results(fake: Harness, call: Any, method: str,
                                                  path: str, args: Any) -> None:
    fake.answer(method, path, empty_reply(204))
    assert await call(fake.client) is None
    assert (fake.last.method, fake.last.path, fake.last.args) == (method, V + path, args)


@pytest_twisted.ensureDeferred
async def test_wait_container_decodes_the_line_written_after_the_headers(fake: Harness) -> None:
    fake.answer("POST", "/containers/c1/wait",
                streamed(b"", b'{"Error":null,"StatusCode":3}\n'))
    result = await within(fake.client.wait_container("c1", condition="next-exit"))
    assert result == {"Error": None, "StatusCode": 3}
    assert fake.last.method == "POST" and fake.last.args == {"condition": ["next-exit"]}


@pytest_twisted.ensureDeferred
async def test_wait_container_without_condition_sends_no_query(fake: Harness) -> None:
    fake.answer("POST", "/containers/c1/wait", json_reply({"Error": None, "StatusCode": 137}))
    assert (await fake.client.wait_container("c1"))["StatusCode"] == 137
    assert fake.last.query == ""


LOG_FRAMES = (encode_frame(Stream.STDERR, b"err1\n") + encode_frame(Stream.STDOUT, b"out1\n")
              + encode_frame(Stream.STDOUT, b"out2\n"))


@pytest_twisted.ensureDeferred
async def test_container_logs_demultiplexes_frames_split_across_writes(fake: Harness) -> None:
    parts = [LOG_FRAMES[:3], LOG_FRAMES[3:17], LOG_FRAMES[17:30], LOG_FRAMES[30:]]
    fake.answer("GET", "/containers/c1/logs", streamed(*parts, content_type=None))
    chunks = await within(collect(fake.client.container_logs("c1", tty=False)))
    assert chunks == [Chunk(Stream.STDERR, b"err1\n"), Chunk(Stream.STDOUT, b"out1\n"),
                      Chunk(Stream.STDOUT, b"out2\n")]
    assert len(fake.seen) == 1  # tty given: no inspect
    assert fake.last.args == {"stdout": ["1"], "stderr": ["1"], "tail": ["all"]}


@pytest_twisted.ensureDeferred
async def test_container_logs_options_in_the_query(fake: Harness) -> None:
    fake.answer("GET", "/containers/c1/logs", streamed(content_type=None))
    await within(collect(fake.client.container_logs(
        "c1", stderr=False, follow=True, timestamps=True, tail="1", since="10", tty=False)))
    assert fake.last.args == {"stdout": ["1"], "follow": ["1"], "since": ["10"],
                              "timestamps": ["1"], "tail": ["1"]}


@pytest_twisted.ensureDeferred
async def test_container_logs_inspects_first_and_keeps_tty_output_raw(fake: Harness) -> None:
    fake.answer("GET", "/containers/c1/json", json_reply({"Id": "abc", "Config": {"Tty": True}}))
    fake.answer("GET", "/containers/c1/logs",
                streamed(b"tty-out\r\n", b"tty-err\r\n", content_type=None))
    chunks = await within(collect(fake.client.container_logs("c1")))
    assert {chunk.stream for chunk in chunks} == {Stream.STDOUT}
    assert b"".join(chunk.data for chunk in chunks) == b"tty-out\r\ntty-err\r\n"
    assert [(seen.method, seen.path) for seen in fake.seen] == [
        ("GET", V + "/containers/c1/json"), ("GET", V + "/containers/c1/logs")]


@pytest_twisted.ensureDeferred
async def test_container_logs_inspected_without_tty_demultiplexes(fake: Harness) -> None:
    fake.answer("GET", "/containers/c1/json", json_reply({"Id": "abc", "Config": {"Tty": False}}))
    fake.answer("GET", "/containers/c1/logs", streamed(LOG_FRAMES, content_type=None))
    chunks = await within(collect(fake.client.container_logs("c1")))
    assert [chunk.data for chunk in chunks] == [b"err1\n", b"out1\n", b"out2\n"]
    assert fake.seen[0].path == V + "/containers/c1/json"


# -- exec ------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_create_exec_sends_the_cli_body_and_returns_the_id(fake: Harness) -> None:
    fake.answer("POST", "/containers/c1/exec", json_reply({"Id": "e" * 64}, status=201))
    exec_id = await fake.client.create_exec("c1", ["sh", "-c", "echo hi"], env=["A=1"])
    assert exec_id == "e" * 64
    assert fake.last.header("Content-Type") == "application/json"
    assert json.loads(fake.last.body) == {
        "User": "", "Privileged": False, "Tty": False, "AttachStdin": False,
        "AttachStdout": True, "AttachStderr": True, "Detach": False, "DetachKeys": "",
        "Env": ["A=1"], "WorkingDir": "", "Cmd": ["sh", "-c", "echo hi"]}


@pytest_twisted.ensureDeferred
async def test_start_exec_detached_and_inspect_exec(fake: Harness) -> None:
    fake.answer("POST", "/exec/e1/start", Reply(200, {"Content-Length": "0"}))
    fake.answer("GET", "/exec/e1/json", json_reply({"ID": "e1", "ExitCode": 0, "Running": False}))
    await fake.client.start_exec_detached("e1")
    assert json.loads(fake.last.body) == {"Detach": True, "Tty": False}
    assert fake.last.header("Content-Type") == "application/json"
    assert await fake.client.inspect_exec("e1") == {"ID": "e1", "ExitCode": 0, "Running": False}
    assert (fake.last.method, fake.last.path) == ("GET", V + "/exec/e1/json")


# -- images ----------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_list_images_query_like_docker_images_a(fake: Harness) -> None:
    fake.answer("GET", "/images/json", json_reply([{"Id": "sha256:1"}]))
    assert await fake.client.list_images(all=True, filters={"reference": "busybox"}) == [
        {"Id": "sha256:1"}]
    assert fake.last.query == (
        "all=1&filters=%7B%22reference%22%3A%7B%22busybox%22%3Atrue%7D%7D")


@pytest_twisted.ensureDeferred
async def test_filter_lists_become_value_sets(fake: Harness) -> None:
    fake.answer("GET", "/images/json", json_reply([]))
    await fake.client.list_images(filters={"label": ["a=1", "b"], "dangling": "true"})
    assert json.loads(fake.last.args["filters"][0]) == {
        "label": {"a=1": True, "b": True}, "dangling": {"true": True}}


@pytest_twisted.ensureDeferred
async def test_image_names_with_slashes_stay_in_the_path(fake: Harness) -> None:
    fake.answer("GET", f"/images/{SLASHED}/json", json_reply({"Id": "sha256:1"}))
    assert await fake.client.inspect_image(SLASHED) == {"Id": "sha256:1"}
    assert fake.last.path == V + "/images/localhost:5000/a/b:tag/json"


@pytest_twisted.ensureDeferred
async def test_tag_image(fake: Harness) -> None:
    fake.answer("POST", f"/images/{SLASHED}/tag", Reply(201, {"Content-Length": "0"}))
    await fake.client.tag_image(SLASHED, "docker.io/library/a", "2")
    assert fake.last.query == "repo=docker.io%2Flibrary%2Fa&tag=2"


@pytest_twisted.ensureDeferred
async def test_remove_image(fake: Harness) -> None:
    answer = [{"Untagged": SLASHED}, {"Deleted": "sha256:1"}]
    fake.answer("DELETE", f"/images/{SLASHED}", json_reply(answer))
    assert await fake.client.remove_image(SLASHED, force=True) == answer
    assert fake.last.args == {"force": ["1"]}


@pytest_twisted.ensureDeferred
async def test_save_images_yields_the_tar_as_it_arrives(fake: Harness) -> None:
    gate: Deferred[None] = Deferred()
    first, second = b"first-512-bytes" * 8, b"rest-of-the-tar" * 8
    fake.answer("GET", "/images/get", streamed(first, gate, second,
                                               content_type="application/x-tar"))
    pieces: list[bytes] = []

    async def read() -> None:
        async for data in fake.client.save_images(["busybox:local", SLASHED]):
            pieces.append(data)
            if b"".join(pieces) == first:
                gate.callback(None)  # the server writes the rest only now

    await within(read())  # buffering the whole body would never open the gate
    assert gate.called and b"".join(pieces) == first + second
    assert fake.last.query == "names=busybox%3Alocal&names=localhost%3A5000%2Fa%2Fb%3Atag"


IMPORTED = b'{"status":"sha256:' + b"1" * 64 + b'"}\r\n'


@pytest_twisted.ensureDeferred
async def test_import_image_query_body_and_result(fake: Harness) -> None:
    fake.answer("POST", "/images/create", streamed(IMPORTED[:20], IMPORTED[20:]))
    result = await within(fake.client.import_image(
        b"rootfs-tar", repo="mr-import:1", message="hi", changes=["CMD [\"sh\"]", "ENV A=1"]))
    assert result == "sha256:" + "1" * 64
    assert fake.last.query.startswith("fromSrc=-&repo=mr-import%3A1&")
    assert fake.last.args == {"fromSrc": ["-"], "repo": ["mr-import:1"], "message": ["hi"],
                              "changes": ['CMD ["sh"]', "ENV A=1"]}
    assert fake.last.header("Content-Type") == "text/plain"
    assert fake.last.body == b"rootfs-tar"


def _bytes_io(data: bytes) -> io.BufferedIOBase:
    return io.BytesIO(data)


def _temporary_file(data: bytes) -> io.BufferedIOBase:
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - the client reads and closes it
    handle.write(data)
    handle.seek(0)
    return cast(io.BufferedIOBase, handle)


def _pipe(data: bytes) -> io.BufferedIOBase:
    reading, writing = os.pipe()
    os.write(writing, data)  # smaller than a pipe buffer: never blocks
    os.close(writing)
    return open(reading, "rb")  # noqa: SIM115 - the client reads and closes it


TAR = bytes(range(256)) * 300  # more than one 64 KiB read


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("source, framing", [
    (_bytes_io, "length"), (_temporary_file, "length"), (_pipe, "chunked")])
async def test_import_image_streams_a_file_object(fake: Harness, source: Any,
                                                  framing: str) -> None:
    data = TAR if framing == "length" else TAR[:60000]
    fake.answer("POST", "/images/create", streamed(IMPORTED))
    result = await within(fake.client.import_image(source(data), repo="mr-import"))
    assert result.startswith("sha256:")
    assert fake.last.body == data
    if framing == "length":
        assert fake.last.header("Content-Length") == str(len(data))
    else:
        assert fake.last.header("Transfer-Encoding") == "chunked"


@pytest_twisted.ensureDeferred
async def test_import_image_raises_on_an_in_band_error(fake: Harness) -> None:
    error = b'{"errorDetail":{"message":"archive/tar: invalid tar header"},' \
            b'"error":"archive/tar: invalid tar header"}\r\n'
    fake.answer("POST", "/images/create", streamed(error[:15], error[15:]))
    with pytest.raises(ProgressError, match="invalid tar header"):
        await within(fake.client.import_image(b"not a tar"))


LOADED = b'{"stream":"Loaded image: busybox:local\\n"}\r\n'


@pytest_twisted.ensureDeferred
async def test_load_images_returns_the_messages(fake: Harness) -> None:
    fake.answer("POST", "/images/load", streamed(LOADED[:9], LOADED[9:] + LOADED))
    messages = await within(fake.client.load_images(_temporary_file(b"docker-save-tar")))
    assert messages == [{"stream": "Loaded image: busybox:local\n"}] * 2
    assert fake.last.query == "quiet=1"
    assert fake.last.header("Content-Type") == "application/x-tar"
    assert fake.last.body == b"docker-save-tar"


@pytest_twisted.ensureDeferred
async def test_load_images_not_quiet_says_so(fake: Harness) -> None:
    # the daemon's default is quiet: leaving the key out would not ask for progress
    fake.answer("POST", "/images/load", streamed(LOADED))
    await within(fake.client.load_images(b"tar", quiet=False))
    assert fake.last.query == "quiet=0"


@pytest_twisted.ensureDeferred
async def test_load_images_raises_on_an_in_band_error(fake: Harness) -> None:
    fake.answer("POST", "/images/load",
                streamed(b'{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}'
                         b"\r\n"))
    with pytest.raises(ProgressError, match="unexpected EOF"):
        await within(fake.client.load_images(b"tar"))


# -- volumes and networks --------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_volume_calls(fake: Harness) -> None:
    volume = {"Name": "mr-vol", "Driver": "local", "Mountpoint": "/v/mr-vol/_data"}
    fake.answer("GET", "/volumes", json_reply({"Volumes": [volume], "Warnings": None}))
    fake.answer("POST", "/volumes/create", json_reply(volume, status=201))
    fake.answer("GET", "/volumes/mr-vol", json_reply(volume))
    fake.answer("DELETE", "/volumes/mr-vol", empty_reply())
    assert (await fake.client.list_volumes(filters={"dangling": "true"}))["Volumes"] == [volume]
    assert json.loads(fake.last.args["filters"][0]) == {"dangling": {"true": True}}
    assert await fake.client.create_volume("mr-vol", labels={"a": "1"}) == volume
    assert fake.last.header("Content-Type") == "application/json"
    assert json.loads(fake.last.body) == {"Name": "mr-vol", "Driver": "local",
                                          "Labels": {"a": "1"}, "DriverOpts": {}}
    assert await fake.client.inspect_volume("mr-vol") == volume
    await fake.client.remove_volume("mr-vol", force=True)
    assert [(s.method, s.path, s.query) for s in fake.seen[2:]] == [
        ("GET", V + "/volumes/mr-vol", ""), ("DELETE", V + "/volumes/mr-vol", "force=1")]


@pytest_twisted.ensureDeferred
async def test_a_question_mark_in_a_name_stays_in_the_path(fake: Harness) -> None:
    fake.answer("GET", "/volumes/odd%3Fname", json_reply({"Name": "odd?name"}))
    assert await fake.client.inspect_volume("odd?name") == {"Name": "odd?name"}
    assert (fake.last.path, fake.last.query) == (V + "/volumes/odd%3Fname", "")


@pytest_twisted.ensureDeferred
async def test_network_calls(fake: Harness) -> None:
    network = {"Name": "mr-net", "Id": "n" * 64, "Driver": "bridge"}
    fake.answer("GET", "/networks", json_reply([network]))
    fake.answer("POST", "/networks/create", json_reply({"Id": "n" * 64, "Warning": ""}, 201))
    fake.answer("GET", "/networks/mr-net", json_reply(network))
    fake.answer("DELETE", "/networks/mr-net", empty_reply())
    assert await fake.client.list_networks(filters={"name": "mr-"}) == [network]
    assert fake.last.query == "filters=%7B%22name%22%3A%7B%22mr-%22%3Atrue%7D%7D"
    created = await fake.client.create_network("mr-net", options={"Internal": True})
    assert created == {"Id": "n" * 64, "Warning": ""}
    assert json.loads(fake.last.body) == {"Name": "mr-net", "Driver": "bridge",
                                          "CheckDuplicate": True, "Internal": True}
    assert await fake.client.inspect_network("mr-net") == network
    await fake.client.remove_network("mr-net")
    assert [(s.method, s.path) for s in fake.seen[2:]] == [
        ("GET", V + "/networks/mr-net"), ("DELETE", V + "/networks/mr-net")]


# -- errors and events -----------------------------------------------------------------------

@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("method, path, reply, call, kind, message", [
    ("GET", "/containers/nope/json", json_reply({"message": "No such container: nope"}, 404),
     lambda c: c.inspect_container("nope"), NotFoundError, "No such container: nope"),
    ("DELETE", "/containers/c1",
     json_reply({"message": "You cannot remove a running container c1"}, 409),
     lambda c: c.remove_container("c1"), ConflictError,
     "You cannot remove a running container c1"),
    ("POST", "/containers/c1/start",
     Reply(500, {"Content-Type": "text/plain; charset=utf-8"}, [b"boom: {not json}\n"]),
     lambda c: c.start_container("c1"), SystemError_, "boom: {not json}"),
    ("POST", "/images/load", json_reply({"message": "no space left"}, 500),
     lambda c: c.load_images(b"tar"), SystemError_, "no space left"),
])
async def test_error_statuses_raise_typed_errors(fake: Harness, method: str, path: str,
                                                 reply: Reply, call: Any, kind: type[APIError],
                                                 message: str) -> None:
    fake.answer(method, path, reply)
    with pytest.raises(kind) as raised:
        await call(fake.client)
    assert isinstance(raised.value, APIError)
    assert raised.value.status == reply.status
    assert raised.value.message == message
    assert str(raised.value) == f"Error response from daemon: {message}"


@pytest_twisted.ensureDeferred
async def test_events_decodes_objects_written_in_pieces(fake: Harness) -> None:
    events = [{"Type": "container", "Action": "create", "Actor": {"ID": "abc"}},
              {"Type": "container", "Action": "start", "Actor": {"ID": "abc"}}]
    body = b"".join(json.dumps(event).encode() + b"\n" for event in events)
    fake.answer("GET", "/events", streamed(body[:7], body[7:50], body[50:80], body[80:]))
    received = await within(collect(fake.client.events(
        since="1795827747", until="1795827757", filters={"container": ["c"]})))
    assert received == events
    assert fake.last.args == {"since": ["1795827747"], "until": ["1795827757"],
                              "filters": ['{"container":{"c":true}}']}


# -- hijacked streams: attach and exec start ---------------------------------------------------

UPGRADED = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")


@attrs.define
class RawRequest:
    line: str
    headers: dict[str, str]
    body: bytes
    eof: bool = False


@attrs.define
class RawServer:
    """Plain requests get a canned JSON answer; upgrade requests a 101, then frames."""

    plain: dict[str, Any] = attrs.field(factory=dict)
    greeting: bytes = encode_frame(Stream.STDOUT, b"hello\n")
    tty: bool = False
    refuse: bool = False
    requests: list[RawRequest] = attrs.field(factory=list)


Raw = tuple[RawServer, DockerClient]


@implementer(IHalfCloseableProtocol)
class _RawProtocol(Protocol):
    def __init__(self, server: RawServer) -> None:
        self.server = server
        self.buffer = b""
        self.upgraded: RawRequest | None = None
        self.sending: Deferred[None] = Deferred()

    @property
    def out(self) -> ITCPTransport:
        return cast(ITCPTransport, self.transport)

    def _then(self, action: Callable[[], None]) -> None:
        """Output in order: after the greeting's delayed second half."""
        self.sending.addCallback(lambda _: action())

    def dataReceived(self, data: bytes) -> None:
        if self.upgraded is not None:
            echo = data if self.server.tty else encode_frame(Stream.STDOUT, data)
            self._then(lambda: self.out.write(echo))
            return
        self.buffer += data
        while self.upgraded is None and b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            line, *fields = head.decode("latin-1").split("\r\n")
            headers = {name.strip().lower(): value.strip()
                       for name, _, value in (field.partition(":") for field in fields)}
            length = int(headers.get("content-length", "0"))
            if len(rest) < length:
                return
            request = RawRequest(line, headers, rest[:length])
            self.buffer = rest[length:]
            self.server.requests.append(request)
            self._answer(request)

    def _answer(self, request: RawRequest) -> None:
        if self.server.refuse:
            self.out.loseConnection()
            return
        if request.headers.get("upgrade") != "tcp":
            path = request.line.split(" ")[1]
            body = json.dumps(self.server.plain[path]).encode()
            self.out.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        self.upgraded = request
        greeting = self.server.greeting
        self.out.write(UPGRADED + greeting[:5])  # a frame split across writes
        self.sending = deferLater(reactor, 0.01, self.out.write, greeting[5:])
        rest, self.buffer = self.buffer, b""
        if rest:
            self.dataReceived(rest)

    def readConnectionLost(self) -> None:
        if self.upgraded is None:
            self.out.loseConnection()
            return
        self.upgraded.eof = True
        if not self.server.tty:
            self._then(lambda: self.out.write(encode_frame(Stream.STDERR, b"stdin closed\n")))
        self._then(self.out.loseWriteConnection)

    def writeConnectionLost(self) -> None:
        pass


@pytest_twisted.async_yield_fixture
async def raw() -> AsyncIterator[Raw]:
    server = RawServer()
    port, client = await _listen(Factory.forProtocol(lambda: _RawProtocol(server)))
    try:
        yield server, client
    finally:
        await client.close()
        await maybeDeferred(port.stopListening)


def _query(line: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(line.split(" ")[1]).query)


@pytest_twisted.ensureDeferred
async def test_attach_container_hijacks_echoes_and_half_closes(raw: Raw) -> None:
    server, client = raw
    stream = await within(client.attach_container("c1", stdin=True, tty=False))
    try:
        stream.write(b"ping\n")
        stream.close_write()
        out, err = await within(stream.read_all())
    finally:
        stream.close()
    assert (out, err) == (b"hello\nping\n", b"stdin closed\n")
    [request] = server.requests
    assert request.line.startswith("POST /v1.41/containers/c1/attach?")
    assert request.line.endswith(" HTTP/1.1")
    assert _query(request.line) == {"stdin": ["1"], "stdout": ["1"], "stderr": ["1"],
                                    "stream": ["1"]}
    assert request.headers["upgrade"] == "tcp" and request.headers["connection"] == "Upgrade"
    assert request.headers["content-type"] == "text/plain"
    assert request.headers["content-length"] == "0" and request.body == b""
    assert request.eof


@pytest_twisted.ensureDeferred
async def test_attach_container_inspects_for_tty_and_keeps_output_raw(raw: Raw) -> None:
    server, client = raw
    server.plain["/v1.41/containers/c1/json"] = {"Id": "abc", "Config": {"Tty": True}}
    server.tty, server.greeting = True, b"tty-out\r\n"
    stream = await within(client.attach_container("c1", stdin=True))
    try:
        stream.write(b"\x02\x00\x00\x00")  # would be a frame header if demultiplexed
        stream.close_write()
        chunks = await within(collect(stream.chunks()))
    finally:
        stream.close()
    assert {chunk.stream for chunk in chunks} == {Stream.STDOUT}
    assert b"".join(chunk.data for chunk in chunks) == b"tty-out\r\n\x02\x00\x00\x00"
    assert [request.line.split(" ")[1] for request in server.requests] == [
        "/v1.41/containers/c1/json",
        "/v1.41/containers/c1/attach?stdin=1&stdout=1&stderr=1&stream=1"]
    assert server.requests[1].eof


@pytest_twisted.ensureDeferred
async def test_start_exec_sends_the_start_body_and_demultiplexes(raw: Raw) -> None:
    server, client = raw
    server.greeting = (encode_frame(Stream.STDERR, b"err\n")
                       + encode_frame(Stream.STDOUT, b"hi\n"))
    stream = await within(client.start_exec("e" * 64))
    try:
        stream.close_write()  # no stdin: Docker's CLI half-closes at once
        out, err = await within(stream.read_all())
    finally:
        stream.close()
    assert (out, err) == (b"hi\n", b"err\nstdin closed\n")
    [request] = server.requests
    assert request.line == f"POST /v1.41/exec/{'e' * 64}/start HTTP/1.1"
    assert request.headers["upgrade"] == "tcp"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"Detach": False, "Tty": False}
    assert request.headers["content-length"] == str(len(request.body))
    assert request.eof


@pytest_twisted.ensureDeferred
async def test_hijack_fails_when_the_daemon_closes_without_answering(raw: Raw) -> None:
    server, client = raw
    server.refuse = True
    with pytest.raises(ConnectionDone):
        await within(client.start_exec("e1"))
    assert server.requests[0].line.startswith("POST /v1.41/exec/e1/start ")



def test_empty_error_bodies_read_as_go_words_them():
    from dockertw.client.errors import SystemError_, error_for_response
    error = error_for_response(500, None, b"", "http://h/v1.41/x")
    assert isinstance(error, SystemError_)
    assert error.message == ("request returned Internal Server Error for API route and "
                             "version http://h/v1.41/x, check if the server supports the "
                             "requested API version")

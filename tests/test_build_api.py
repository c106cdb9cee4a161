"""``POST /build`` by hand: Docker's message stream and errors, ``q``, API versions,
and contexts and ``ADD`` sources from a server this test runs on loopback."""

from __future__ import annotations

import functools
import http.client
import http.server
import io
import json
import socket
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import import_image, inspect, ok
from tests.support import Daemon

pytestmark = pytest.mark.integration


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self._path)


def post_build(daemon: Daemon, query: str, body: bytes = b"", version: str = "v1.41"
               ) -> tuple[int, list[dict[str, Any]]]:
    """The status and the JSON messages (or the error object) of one build."""
    assert daemon.socket
    connection = _Unix(daemon.socket)
    try:
        connection.request("POST", f"/{version}/build?{query}", body=body,
                           headers={"Content-Type": "application/x-tar"})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.status != 200:
        return response.status, [json.loads(data)]
    return 200, [json.loads(line) for line in data.split(b"\r\n") if line]


def context_tar(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["stream"] for m in messages if "stream" in m]


@pytest.fixture(scope="module")
def api_daemon(busybox_daemon: Daemon) -> Daemon:
    return busybox_daemon


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory served on 127.0.0.1 and its base URL."""
    root = tmp_path_factory.mktemp("web")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_stream_is_dockers(api_daemon: Daemon) -> None:
    status, messages = post_build(api_daemon, "t=stream%3A1", context_tar({
        "Dockerfile": "FROM bb:1\nRUN echo out && echo err >&2\nLABEL a=b\n"}))
    assert status == 200
    shown = texts(messages)
    assert shown[:3] == ["Step 1/3 : FROM bb:1", "\n",
                         f" ---> {inspect(api_daemon, 'bb:1')['Id'][7:19]}\n"]
    assert shown[3:6] == ["Step 2/3 : RUN echo out && echo err >&2", "\n", shown[5]]
    assert shown[5].startswith(" ---> Running in ")
    assert "out\n" in shown and "\x1b[91merr\n\x1b[0m" in shown
    image_id = inspect(api_daemon, "stream:1")["Id"]
    assert {"aux": {"ID": image_id}} in messages
    assert shown[-2:] == [f"Successfully built {image_id[7:19]}\n",
                          "Successfully tagged stream:1\n"]
    _, older = post_build(api_daemon, "", context_tar({"Dockerfile": "FROM bb:1\n"}),
                          version="v1.29")
    assert not any("aux" in m for m in older)  # before API 1.30


def test_errors_before_the_stream_are_http_errors(api_daemon: Daemon) -> None:
    bad = context_tar({"Dockerfile": "FROM bb:1\nFOOBAR x\n"})
    assert post_build(api_daemon, "", bad) == (400, [
        {"message": "dockerfile parse error line 2: unknown instruction: FOOBAR"}])
    assert post_build(api_daemon, "dockerfile=nope", bad) == (500, [
        {"message": "Cannot locate specified Dockerfile: nope"}])
    assert post_build(api_daemon, "", context_tar({"Dockerfile": ""})) == (400, [
        {"message": "the Dockerfile (Dockerfile) cannot be empty"}])
    status, body = post_build(api_daemon, "version=2", bad)
    assert status == 400 and "buildkit" in body[0]["message"]
    assert post_build(api_daemon, "squash=1", bad) == (400, [
        {"message": "squash is only supported with experimental mode"}])
    assert post_build(api_daemon, "target=x", context_tar({"Dockerfile": "FROM bb:1\n"})) == (
        400, [{"message": "failed to reach build target x in Dockerfile"}])


def test_errors_after_it_started_are_in_band(api_daemon: Daemon) -> None:
    status, messages = post_build(api_daemon, "", context_tar({
        "Dockerfile": "FROM bb:1\nRUN exit 3\n"}))
    message = "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert status == 200
    assert messages[-1] == {"errorDetail": {"code": 3, "message": message}, "error": message}
    status, messages = post_build(api_daemon, "", context_tar({
        "Dockerfile": "FROM bb:1\nENV A ${B\n"}))
    assert messages[-1]["error"] == 'failed to process "${B": missing \':\' in substitution'


def test_quiet_answers_the_id_alone(api_daemon: Daemon) -> None:
    status, messages = post_build(api_daemon, "q=1&t=quiet%3A1", context_tar({
        "Dockerfile": "FROM bb:1\nRUN echo hidden\n"}))
    assert status == 200
    assert messages == [{"stream": inspect(api_daemon, "quiet:1")["Id"] + "\n"}]
    status, messages = post_build(api_daemon, "q=1", context_tar({
        "Dockerfile": "FROM bb:1\nRUN exit 2\n"}))
    assert status == 200 and messages[0] == {"stream": "Step 1/2 : FROM bb:1"}
    assert messages[-1]["errorDetail"]["code"] == 2


def test_labels_build_args_and_cache_from(api_daemon: Daemon) -> None:
    dockerfile = context_tar({"Dockerfile": "FROM scratch\nARG test\nUSER $test\n"})
    status, messages = post_build(
        api_daemon, "t=args%3A1&buildargs=%7B%22test%22%3A%22OK%22%2C%22unused%22%3Anull%7D"
        "&labels=%7B%22l%22%3A%22v%22%7D", dockerfile)
    assert status == 200, messages
    config = inspect(api_daemon, "args:1")["Config"]
    assert config["User"] == "OK" and config["Labels"] == {"l": "v"}
    assert "[Warning] One or more build-args [unused] were not consumed\n" in texts(messages)
    script = context_tar({"Dockerfile": "FROM bb:1\nENV FOO=bar\nRUN touch baz\n"})
    post_build(api_daemon, "t=cache1", script)
    _, hits = post_build(api_daemon, 'cachefrom=%5B%22cache1%22%5D', script)
    assert texts(hits).count(" ---> Using cache\n") == 2
    _, misses = post_build(api_daemon, 'cachefrom=%5B%22nosuchtag%22%5D', script)
    assert " ---> Using cache\n" not in texts(misses)


def test_remote_contexts_and_downloads_from_loopback(api_daemon: Daemon,
                                                     web: tuple[Path, str]) -> None:
    root, base = web
    (root / "remote.tar").write_bytes(context_tar({
        "Dockerfile": "FROM bb:1\nCOPY hello /hello\n", "hello": "from a tarball\n"}))
    status, messages = post_build(api_daemon, f"remote={base}/remote.tar&t=remote%3A1")
    assert status == 200, messages
    assert ok(api_daemon, "run", "--rm", "remote:1", "cat", "/hello") == "from a tarball\n"
    (root / "Dockerfile.txt").write_text("FROM bb:1\nRUN echo plain > /p\n")
    status, messages = post_build(api_daemon, f"remote={base}/Dockerfile.txt&t=remote%3A2")
    assert status == 200, messages
    (root / "payload.bin").write_bytes(b"downloaded\n")
    status, messages = post_build(api_daemon, "t=remote%3A3", context_tar({
        "Dockerfile": f"FROM bb:1\nADD {base}/payload.bin /dl/\n"}))
    assert status == 200, messages
    assert any(m.get("status") == "Downloading" for m in messages)
    shown = ok(api_daemon, "run", "--rm", "remote:3", "stat", "-c", "%a %s", "/dl/payload.bin")
    assert shown.split() == ["600", "11"]
    _, refused = post_build(api_daemon, "", context_tar({
        "Dockerfile": f"FROM bb:1\nCOPY {base}/payload.bin /x\n"}))
    assert refused[-1]["error"] == "COPY failed: source can't be a URL for COPY"


def _git(directory: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=directory,
                   check=True, capture_output=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(directory)})


def test_a_git_context_from_loopback(api_daemon: Daemon, web: tuple[Path, str],
                                     tmp_path: Path) -> None:
    root, base = web
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "Dockerfile").write_text("FROM bb:1\nCOPY file /file\n")
    (source / "sub" / "file").write_text("from git\n")
    _git(source, "init", "-q", "-b", "master")
    _git(source, "add", ".")
    _git(source, "commit", "-q", "-m", "one")
    _git(tmp_path, "clone", "-q", "--bare", str(source), str(root / "repo.git"))
    _git(root / "repo.git", "update-server-info")
    status, messages = post_build(api_daemon, f"remote={base}/repo.git%23master:sub&t=git%3A1")
    assert status == 200, messages
    assert ok(api_daemon, "run", "--rm", "git:1", "cat", "/file") == "from git\n"


def test_squash_merges_the_builds_layers_with_experimental(start_daemon: Any,
                                                           busybox_tar: Path) -> None:
    daemon = start_daemon("--experimental")
    import_image(daemon, busybox_tar, "bb:1")
    status, messages = post_build(daemon, "squash=1&t=squashed%3A1", context_tar({
        "Dockerfile": "FROM bb:1\nRUN echo one > /f1\nRUN echo two > /f2 && rm /bin/ls\n"}))
    assert status == 200, messages
    squashed = inspect(daemon, "squashed:1")
    assert any(m.get("id") == "moby.image.id" and m["aux"] == {"ID": squashed["Id"]}
               for m in messages)
    assert len(squashed["RootFS"]["Layers"]) == 2 and squashed["Parent"] == ""
    shown = ok(daemon, "run", "--rm", "squashed:1", "sh", "-c", "cat /f1 /f2; ls /bin/ls || :")
    assert shown == "one\ntwo\n"
    history = json.loads(ok(daemon, "history", "--format", "{{json .}}", "squashed:1")
                         .splitlines()[0])
    assert history["Comment"].startswith("merge sha256:")

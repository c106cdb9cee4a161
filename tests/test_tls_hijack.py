"""Acceptance: attach and exec over a ``--tlsverify`` listener (issue 14, item 1).

The docker CLI half-closes a hijacked stream as soon as its input ends (at once when
it has none): over TLS that is a close_notify.  It must end only the container's
stdin; the output still arrives whole, and then the daemon closes.  Checked with the
real CLI (``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``) and with dockertw's own client,
against real runc containers, with certificates made here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import pytest_twisted

from dockertw.client.docker import DockerClient
from dockertw.client.hijack import HijackedStream
from dockertw.client.tls import TLSSettings
from dockertw.streams.stdcopy import Stream
from tests.certs import Authority
from tests.cli import cli, import_image, ok
from tests.support import Daemon, docker, free_port, within_seconds
from tests.terminal import Terminal

pytestmark = pytest.mark.integration

_BIG = 100 * 1024 * 1024
# Random bytes on stdout, and their SHA-256 on stderr.
_BIG_OUTPUT = f"{{ head -c {_BIG} /dev/urandom | tee /dev/fd/3 | sha256sum >&2; }} 3>&1"


@attrs.frozen
class TLSDaemon:
    """A daemon with the busybox image as ``bb:1``, on a UNIX socket and a TLS port."""

    daemon: Daemon
    port: int
    certs: Path  # ca.pem, cert.pem, key.pem of a client, as DOCKER_CERT_PATH wants

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": f"tcp://127.0.0.1:{self.port}", "DOCKER_TLS_VERIFY": "1",
                "DOCKER_CERT_PATH": str(self.certs)}

    def docker(self, *args: str, input: str | None = None,
               timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return docker(*args, env_extra=self.env, input=input, timeout=timeout)

    def client(self) -> DockerClient:
        return DockerClient(f"tcp://127.0.0.1:{self.port}", tls=TLSSettings(
            ca=self.certs / "ca.pem", cert=self.certs / "cert.pem",
            key=self.certs / "key.pem"))


@pytest.fixture
def tls(start_daemon, workdir: Path, busybox_tar: Path) -> Iterator[TLSDaemon]:
    authority = Authority(workdir)
    server = authority.issue("server", "daemon", server=True, hosts=("127.0.0.1",))
    client = authority.issue("client", "client", server=False)
    certs = workdir / "certs"
    certs.mkdir()
    for name, source in (("ca.pem", authority.files.cert), ("cert.pem", client.cert),
                         ("key.pem", client.key)):
        shutil.copyfile(source, certs / name)
    port = free_port()
    daemon = start_daemon("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                          "--tlscacert", str(authority.files.cert),
                          "--tlscert", str(server.cert), "--tlskey", str(server.key))
    import_image(daemon, busybox_tar, "bb:1")
    try:
        yield TLSDaemon(daemon, port, certs)
    finally:
        daemon.stop_and_check_clean()


@pytest.fixture
def sleeper(tls: TLSDaemon) -> Iterator[str]:
    """A running container to exec in; removed afterwards."""
    ok(tls.daemon, "run", "-d", "--name", "sleeper", "bb:1", "sleep", "600")
    try:
        yield "sleeper"
    finally:
        cli(tls.daemon, "rm", "-f", "sleeper")


# -- the docker CLI -------------------------------------------------------------------------

def test_run_rm_prints_the_output_and_exits_with_the_code(tls: TLSDaemon):
    done = tls.docker("run", "--rm", "bb:1", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, "hi\n", "oops\n")
    assert ok(tls.daemon, "ps", "-aq") == ""


def test_run_i_reads_piped_stdin_to_its_end_and_writes_on(tls: TLSDaemon):
    done = tls.docker("run", "-i", "--rm", "bb:1", "sh", "-c", "cat; echo stdin-ended",
                      input="data\nmore data\n")
    assert (done.returncode, done.stdout) == (0, "data\nmore data\nstdin-ended\n"), done.stderr


def test_exec_prints_output_with_and_without_stdin(tls: TLSDaemon, sleeper: str):
    done = tls.docker("exec", sleeper, "echo", "x")
    assert (done.returncode, done.stdout) == (0, "x\n"), done.stderr
    done = tls.docker("exec", "-i", sleeper, "sh", "-c", "cat; echo end; exit 6",
                      input="piped\n")
    assert (done.returncode, done.stdout) == (6, "piped\nend\n"), done.stderr


def test_attach_sends_stdin_and_gets_the_answer(tls: TLSDaemon):
    # created with -i: StdinOnce, so the end of input closes the container's stdin and
    # the output goes on (with "run -d -i" it would end the session, as with Docker)
    ok(tls.daemon, "create", "-i", "--name", "asker", "bb:1", "sh", "-c",
       "read line; echo got:$line; echo bye >&2; exit 4")
    try:
        ok(tls.daemon, "start", "asker")
        done = tls.docker("attach", "asker", input="hello\n")
        assert (done.returncode, done.stdout, done.stderr) == (4, "got:hello\n", "bye\n")
    finally:
        cli(tls.daemon, "rm", "-f", "asker")


def test_run_it_under_a_terminal(tls: TLSDaemon, terminals: list[Terminal]):
    shell = Terminal(tls.daemon, "run", "-it", "--rm", "bb:1", "sh",
                     host=tls.env["DOCKER_HOST"], env_extra=tls.env)
    terminals.append(shell)
    shell.expect(r"# ")
    shell.type('echo hel""lo over tls; exit 3\r')
    shell.expect(r"\r\nhello over tls\r\n")
    assert shell.wait() == 3, shell.output
    assert ok(tls.daemon, "ps", "-aq") == ""


def test_100_mb_of_output_arrive_intact(tls: TLSDaemon, workdir: Path):
    config = tempfile.mkdtemp(prefix="dockertw-cli-")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    try:
        done = subprocess.run(
            ["docker", "run", "--rm", "--log-driver", "none", "bb:1", "sh", "-c",
             _BIG_OUTPUT], env={**env, **tls.env, "DOCKER_CONFIG": config},
            capture_output=True, timeout=120, check=False)
    finally:
        shutil.rmtree(config, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == _BIG
    assert done.stderr.split()[0].decode() == hashlib.sha256(done.stdout).hexdigest()


# -- dockertw's own client ------------------------------------------------------------------

async def _run(client: DockerClient, cmd: list[str], stdin: bytes | None = None,
               tty: bool = False, close_input: bool = True) -> tuple[bytes, bytes, int]:
    """``docker run --rm`` as the CLI does it: attach, start, half-close, read, wait."""
    created = await client.create_container({
        "Image": "bb:1", "Cmd": cmd, "Tty": tty, "OpenStdin": True, "StdinOnce": True,
        "AttachStdin": True, "AttachStdout": True, "AttachStderr": True})
    try:
        stream = await client.attach_container(created["Id"], stdin=True, tty=tty)
        await client.start_container(created["Id"])
        out, err = await _send_and_read(stream, stdin, close_input)
        status = await within_seconds(client.wait_container(created["Id"]), 20)
    finally:
        await client.remove_container(created["Id"], force=True)
    return out, err, status["StatusCode"]


async def _send_and_read(stream: HijackedStream, stdin: bytes | None,
                         close_input: bool = True) -> tuple[bytes, bytes]:
    try:
        if stdin:
            stream.write(stdin)
        if close_input:
            stream.close_write()
        return await within_seconds(stream.read_all(), 20)
    finally:
        stream.close()


@pytest_twisted.ensureDeferred
async def test_client_run_without_and_with_stdin(tls: TLSDaemon):
    client = tls.client()
    try:
        assert await _run(client, ["sh", "-c", "echo hi; echo oops >&2; exit 3"]) == (
            b"hi\n", b"oops\n", 3)
        assert await _run(client, ["sh", "-c", "cat; echo stdin-ended"], b"data\n") == (
            b"data\nstdin-ended\n", b"", 0)
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_client_run_with_a_tty(tls: TLSDaemon):
    # As "docker run -it": the input stays open (its end would end the session); the
    # daemon half-closes first, when the shell exits.
    client = tls.client()
    try:
        out, err, code = await _run(client, ["sh"], b"tty; exit 2\n", tty=True,
                                    close_input=False)
    finally:
        await client.close()
    assert out.endswith(b"\r\n/dev/pts/0\r\n") and (err, code) == (b"", 2), out


@pytest_twisted.ensureDeferred
async def test_client_exec_without_and_with_stdin(tls: TLSDaemon, sleeper: str):
    client = tls.client()
    try:
        exec_id = await client.create_exec(sleeper, ["echo", "x"])
        assert await _send_and_read(await client.start_exec(exec_id), None) == (b"x\n", b"")
        exec_id = await client.create_exec(sleeper, ["sh", "-c", "cat; echo end >&2"],
                                           attach_stdin=True)
        stream = await client.start_exec(exec_id)
        assert await _send_and_read(stream, b"piped\n") == (b"piped\n", b"end\n")
        assert (await client.inspect_exec(exec_id))["ExitCode"] == 0
    finally:
        await client.close()


@pytest_twisted.ensureDeferred
async def test_client_exec_100_mb_of_output_arrive_intact(tls: TLSDaemon, sleeper: str):
    client = tls.client()
    try:
        exec_id = await client.create_exec(sleeper, ["sh", "-c", _BIG_OUTPUT])
        stream = await client.start_exec(exec_id)
        stream.close_write()
        digest, size, err = await within_seconds(_digest(stream), 120)
    finally:
        await client.close()
    assert size == _BIG
    assert err.split()[0].decode() == digest


async def _digest(stream: HijackedStream) -> tuple[str, int, bytes]:
    """SHA-256 and size of stdout, and all of stderr."""
    digest, size, err = hashlib.sha256(), 0, b""
    try:
        async for chunk in stream.chunks():
            if chunk.stream == Stream.STDERR:
                err += chunk.data
            else:
                digest.update(chunk.data)
                size += len(chunk.data)
    finally:
        stream.close()
    return digest.hexdigest(), size, err

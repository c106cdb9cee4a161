"""The runc adapter and the exit watcher with real containers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from dockertw.runtime.reaper import ExitWatcher, become_subreaper, exit_code_of_status
from dockertw.runtime.runc import Runc, RuncError, Stdio
from dockertw.runtime.spec import ContainerRuntimeConfig, build_spec
from tests.rootfs import make_busybox_rootfs, remove_cgroup


@pytest.fixture
def subreaper() -> Iterator[None]:
    become_subreaper(True)
    try:
        yield
    finally:
        become_subreaper(False)


@pytest.fixture
def workspace() -> Iterator[Path]:
    base = Path("/tmp") / f"dtw-runc-{uuid.uuid4().hex[:8]}"
    make_busybox_rootfs(base / "bundle" / "rootfs")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


class _Pipes:
    """Three pipes: the container's ends go to runc, the daemon keeps the others."""

    def __init__(self) -> None:
        self.stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.stderr_r, self.stderr_w = os.pipe()
        self.container_ends_open = True

    def container_ends(self) -> Stdio:
        return Stdio(self.stdin_r, self.stdout_w, self.stderr_w)

    def close_container_ends(self) -> None:
        if self.container_ends_open:  # never close twice: the number may be reused
            self.container_ends_open = False
            for fd in (self.stdin_r, self.stdout_w, self.stderr_w):
                os.close(fd)

    def read_all(self, fd: int) -> bytes:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        os.close(fd)
        return b"".join(chunks)


def _bundle(workspace: Path, *args: str) -> tuple[Path, str]:
    bundle = workspace / "bundle"
    cgroup = f"/dockertw-test-{uuid.uuid4().hex[:8]}"
    config = ContainerRuntimeConfig(args=args, rootfs=str(bundle / "rootfs"),
                                    hostname="runc-test", cgroups_path=f"{cgroup}/c")
    (bundle / "config.json").write_text(json.dumps(build_spec(config)))
    return bundle, cgroup


@attrs.define
class _Started:
    runc: Runc
    name: str
    bundle: Path
    pipes: _Pipes
    watcher: ExitWatcher


@contextlib.asynccontextmanager
async def _container(workspace: Path, *args: str) -> AsyncIterator[_Started]:
    """A created and started container; deleted afterwards, whatever happened."""
    bundle, cgroup = _bundle(workspace, *args)
    runc, pipes, name = Runc(reactor, workspace / "state"), _Pipes(), f"t{uuid.uuid4().hex}"
    try:
        pid = await runc.create(name, bundle, pipes.container_ends())
        pipes.close_container_ends()
        started = _Started(runc, name, bundle, pipes, ExitWatcher(reactor, pid))
        assert (await runc.state(name, bundle))["status"] == "created"
        await runc.start(name, bundle)
        yield started
    finally:
        pipes.close_container_ends()
        await runc.delete(name, bundle, force=True)
        remove_cgroup(cgroup)


@pytest_twisted.ensureDeferred
async def test_create_start_stdio_and_exit_code(subreaper, workspace):
    script = "echo out; echo err >&2; read x; echo got $x; exit 7"
    async with _container(workspace, "sh", "-c", script) as container:
        pipes = container.pipes
        os.write(pipes.stdin_w, b"abc\n")
        os.close(pipes.stdin_w)
        assert await container.watcher.exited == 7
        assert pipes.read_all(pipes.stdout_r) == b"out\ngot abc\n"
        assert pipes.read_all(pipes.stderr_r) == b"err\n"


@pytest_twisted.ensureDeferred
async def test_kill_delivers_the_signal(subreaper, workspace):
    # PID 1 of a namespace ignores signals it has no handler for, so trap TERM.
    script = "trap 'exit 99' TERM; sleep 100 & wait"
    async with _container(workspace, "sh", "-c", script) as container:
        await _sleep(0.2)  # let the shell install its trap
        await container.runc.kill(container.name, container.bundle, signal.SIGTERM)
        assert await container.watcher.exited == 99


@pytest_twisted.ensureDeferred
async def test_sigkill_gives_137(subreaper, workspace):
    async with _container(workspace, "sleep", "100") as container:
        await container.runc.kill(container.name, container.bundle, signal.SIGKILL)
        assert await container.watcher.exited == 137


@pytest_twisted.ensureDeferred
async def test_runc_errors_carry_runcs_message(subreaper, workspace):
    with pytest.raises(RuncError, match="no such file or directory"):
        async with _container(workspace, "/no/such/program"):
            pass


async def _sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


def test_exit_codes_from_wait_statuses():
    assert exit_code_of_status(3 << 8) == 3
    assert exit_code_of_status(signal.SIGKILL) == 137

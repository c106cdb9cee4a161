"""The runc adapter and the exit watcher with real containers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

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

    def container_ends(self) -> Stdio:
        return Stdio(self.stdin_r, self.stdout_w, self.stderr_w)

    def close_container_ends(self) -> None:
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


@pytest_twisted.ensureDeferred
async def test_create_start_stdio_and_exit_code(subreaper, workspace):
    bundle, cgroup = _bundle(workspace, "sh", "-c",
                             "echo out; echo err >&2; read x; echo got $x; exit 7")
    runc, pipes, name = Runc(reactor, workspace / "state"), _Pipes(), f"t{uuid.uuid4().hex}"
    try:
        pid = await runc.create(name, bundle, pipes.container_ends())
        pipes.close_container_ends()
        watcher = ExitWatcher(reactor, pid)
        assert (await runc.state(name, bundle))["status"] == "created"
        await runc.start(name, bundle)
        os.write(pipes.stdin_w, b"abc\n")
        os.close(pipes.stdin_w)
        assert await watcher.exited == 7
        assert pipes.read_all(pipes.stdout_r) == b"out\ngot abc\n"
        assert pipes.read_all(pipes.stderr_r) == b"err\n"
    finally:
        await runc.delete(name, bundle, force=True)
        remove_cgroup(cgroup)


@pytest_twisted.ensureDeferred
async def test_kill_reports_128_plus_signal(subreaper, workspace):
    # PID 1 of a namespace ignores signals it has no handler for, so trap TERM.
    bundle, cgroup = _bundle(workspace, "sh", "-c", "trap 'exit 99' TERM; sleep 100 & wait")
    runc, pipes, name = Runc(reactor, workspace / "state"), _Pipes(), f"t{uuid.uuid4().hex}"
    try:
        pid = await runc.create(name, bundle, pipes.container_ends())
        pipes.close_container_ends()
        watcher = ExitWatcher(reactor, pid)
        await runc.start(name, bundle)
        await _sleep(0.2)  # let the shell install its trap
        await runc.kill(name, bundle, signal.SIGTERM)
        assert await watcher.exited == 99
    finally:
        await runc.delete(name, bundle, force=True)
        remove_cgroup(cgroup)


@pytest_twisted.ensureDeferred
async def test_runc_errors_carry_runcs_message(subreaper, workspace):
    bundle, cgroup = _bundle(workspace, "/no/such/program")
    runc, pipes, name = Runc(reactor, workspace / "state"), _Pipes(), f"t{uuid.uuid4().hex}"
    try:
        with pytest.raises(RuncError, match="no such file or directory"):
            pid = await runc.create(name, bundle, pipes.container_ends())
            ExitWatcher(reactor, pid)
            await runc.start(name, bundle)
    finally:
        pipes.close_container_ends()
        await runc.delete(name, bundle, force=True)
        remove_cgroup(cgroup)


@pytest_twisted.ensureDeferred
async def test_sigkill_gives_137(subreaper, workspace):
    bundle, cgroup = _bundle(workspace, "sleep", "100")
    runc, pipes, name = Runc(reactor, workspace / "state"), _Pipes(), f"t{uuid.uuid4().hex}"
    try:
        pid = await runc.create(name, bundle, pipes.container_ends())
        pipes.close_container_ends()
        watcher = ExitWatcher(reactor, pid)
        await runc.start(name, bundle)
        await runc.kill(name, bundle, signal.SIGKILL)
        assert await watcher.exited == 137
    finally:
        await runc.delete(name, bundle, force=True)
        remove_cgroup(cgroup)


async def _sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


def test_exit_codes_from_wait_statuses():
    assert exit_code_of_status(3 << 8) == 3
    assert exit_code_of_status(signal.SIGKILL) == 137

"""The live-restore holder as a process of its own: spawning, watching, reaping, and
logging while no daemon is connected (no runc: ``sh`` leaves a child behind as
``runc run --detach`` leaves the container's init)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockertw.daemon.holder import protocol
from dockertw.daemon.holder.client import HolderBusy, HolderError, HolderLink
from dockertw.daemon.jsonlog import read_entries
from tests.support import holder_pids, wait_for


class Conversation:
    """A daemon's side, by hand: requests and the messages that come back."""

    def __init__(self, link: HolderLink) -> None:
        self.link = link
        self.link.connection.settimeout(10)
        self.pending: list[tuple[dict[str, Any], list[int]]] = list(link.pending)
        self.ids = iter(range(1, 1000))

    def request(self, message: dict[str, Any], fds: list[int] | None = None,
                ) -> tuple[dict[str, Any], list[int]]:
        request_id = next(self.ids)
        protocol.send(self.link.connection, {**message, "id": request_id}, fds or [])
        return self.wait(lambda m: m.get("id") == request_id)

    def wait(self, wanted: Any) -> tuple[dict[str, Any], list[int]]:
        for index, (message, _fds) in enumerate(self.pending):
            if wanted(message):
                return self.pending.pop(index)
        while True:
            received = protocol.receive(self.link.connection)
            assert received is not None, "the holder closed the connection"
            if wanted(received[0]):
                return received
            self.pending.append(received)

    def spawn_child(self, script: str, workdir: Path, stdout: int | None = None) -> int:
        """``sh -c SCRIPT &``: the background child's pid (now the holder's child)."""
        pid_file = workdir / f"child-{time.monotonic_ns()}.pid"
        null = os.open(os.devnull, os.O_RDWR)
        try:
            reply, _ = self.request({"op": "run", "argv": [
                "sh", "-c", f"({script}) & echo $! > {pid_file}"],
                "env": {"PATH": os.environ["PATH"]}, "fds": [0, 1, 2]},
                [null, stdout if stdout is not None else null, null])
        finally:
            os.close(null)
        assert reply == {"op": "ran", "id": reply["id"], "code": 0}
        return int(pid_file.read_text())

    def watch(self, key: str, pid: int, fds: dict[str, int] | None = None,
              log: Path | None = None) -> tuple[dict[str, Any], list[int]]:
        names = sorted(fds or {})
        return self.request({"op": "watch", "key": key, "pid": pid, "tty": False,
                             "fds": names, "log": {"path": str(log), "max_size": 0,
                                                   "max_files": 1} if log else None},
                            [(fds or {})[name] for name in names])

    def exit_of(self, key: str) -> dict[str, Any]:
        return self.wait(lambda m: m["op"] == "exit" and m["key"] == key)[0]


@pytest.fixture
def holder_dir(workdir: Path) -> Iterator[Path]:
    """A holder's directory; any holder left there is killed with its children."""
    directory = workdir / "holder"
    started: list[int] = []
    try:
        yield directory
    finally:
        for pid in holder_pids(directory.parent):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            started.append(pid)
        for pid in started:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _wait_exit(pid: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return status
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not exit")


def test_a_child_left_by_a_spawned_command_is_watched_and_reaped(holder_dir: Path):
    link = HolderLink.open(holder_dir)
    talk = Conversation(link)
    assert link.held == [] and link.holder_pid
    assert holder_pids(holder_dir.parent) == [link.holder_pid]
    pid = talk.spawn_child("sleep 30", holder_dir)
    reply, fds = talk.watch("c1", pid)
    assert reply["alive"] is True and len(fds) == 1  # its pidfd
    signal.pidfd_send_signal(fds[0], signal.SIGTERM)
    os.close(fds[0])
    assert talk.exit_of("c1")["code"] == 128 + signal.SIGTERM
    protocol.send(link.connection, {"op": "release", "key": "c1"})
    link.connection.close()
    assert os.WIFEXITED(_wait_exit(link.holder_pid))  # alone and holding nothing
    assert not (holder_dir / "holder.sock").exists()


def test_a_child_that_ended_before_it_was_watched_has_its_code(holder_dir: Path):
    talk = Conversation(HolderLink.open(holder_dir))
    # It outlives sh (which could otherwise reap it itself), then the holder reaps it
    # before anyone claims it.
    pid = talk.spawn_child("sleep 0.1; exit 7", holder_dir)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), "the holder to reap its child", 10)
    reply, fds = talk.watch("c1", pid)
    assert reply["alive"] is False and fds == []
    assert talk.exit_of("c1")["code"] == 7


def test_output_is_logged_while_no_daemon_is_connected(holder_dir: Path):
    talk = Conversation(HolderLink.open(holder_dir))
    read_end, write_end = os.pipe()
    pid = talk.spawn_child("sleep 0.3; echo one; echo two; printf three; exit 3",
                           holder_dir, stdout=write_end)
    os.close(write_end)
    log = holder_dir / "c1.log"
    talk.watch("c1", pid, {"stdout": read_end}, log)
    os.close(read_end)
    talk.link.connection.close()  # the daemon goes away before the child writes
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(list(read_entries(log))) < 3:
        time.sleep(0.05)
    again = HolderLink.find(holder_dir)
    assert again is not None
    [entry] = again.held
    assert (entry["key"], entry["alive"], entry["code"]) == ("c1", False, 3)
    assert [e.data for e in read_entries(log)] == [b"one\n", b"two\n", b"three"]
    assert {e.stream for e in read_entries(log)} == {"stdout"}


def test_logging_while_away_stops_at_the_bound_and_the_rest_waits(holder_dir: Path):
    link = HolderLink.open(holder_dir, log_limit=4096)
    talk = Conversation(link)
    read_end, write_end = os.pipe()
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i-0123456789012345678; i=$((i+1)); done"
    talk_pid = talk.spawn_child(f"sleep 0.3; {script}", holder_dir, stdout=write_end)
    os.close(write_end)
    log = holder_dir / "c1.log"
    talk.watch("c1", talk_pid, {"stdout": read_end}, log)
    link.connection.close()
    time.sleep(1.5)
    logged = list(read_entries(log))
    assert sum(len(e.data) for e in logged) == 4096  # the bound; the rest in the pipe
    again = Conversation(HolderLink.find(holder_dir))  # type: ignore[arg-type]
    reply, fds = again.request({"op": "adopt", "key": "c1"})
    assert reply["fds"] == ["stdout"] and reply["pidfd"] is False  # it has exited
    rest = b""
    while chunk := os.read(fds[0], 65536):
        rest += chunk
    os.close(read_end)
    protocol.close_all(fds)
    whole = b"".join(e.data for e in logged) + rest
    assert whole == b"".join(f"line-{i}-0123456789012345678\n".encode() for i in range(400))


def test_a_second_daemon_is_refused_while_one_is_connected(holder_dir: Path):
    first = HolderLink.open(holder_dir)
    talk = Conversation(first)
    talk.watch("c1", talk.spawn_child("sleep 30", holder_dir))  # the holder stays
    with pytest.raises(HolderBusy, match="another daemon"):
        HolderLink.find(holder_dir)  # refused, and said why
    first.connection.close()
    time.sleep(0.1)
    second = HolderLink.find(holder_dir)
    assert second is not None and [e["key"] for e in second.held] == ["c1"]
    second.stop()


def test_stop_kills_every_process_and_ends_the_holder(holder_dir: Path):
    link = HolderLink.open(holder_dir)
    talk = Conversation(link)
    for key in ("a", "b"):
        talk.watch(key, talk.spawn_child("sleep 30", holder_dir))
    exits = link.stop()
    assert sorted((e["key"], e["code"]) for e in exits) == [("a", 137), ("b", 137)]
    assert os.WIFEXITED(_wait_exit(link.holder_pid))  # type: ignore[arg-type]


def test_a_bad_message_is_answered_and_the_holder_goes_on(holder_dir: Path):
    talk = Conversation(HolderLink.open(holder_dir))
    reply, _ = talk.request({"op": "watch", "key": "x"})
    assert reply["op"] == "failed" and "pid" in reply["error"]
    reply, _ = talk.request({"op": "nonsense"})
    assert reply["op"] == "failed"
    talk.link.connection.send(b"not json")
    with pytest.raises(HolderError, match="no such process"):
        talk.link.adopt("nothing")

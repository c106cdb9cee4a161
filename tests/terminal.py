"""The real ``docker`` CLI on a pseudo-terminal the test holds the master of."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import tempfile
import termios
import time
from collections.abc import Iterator, Mapping

import pytest

from tests.support import Daemon

__all__ = ["Terminal", "terminals"]


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _take_terminal() -> None:
    """In the child: make the pty on stdin the session's controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """The docker CLI running on a pseudo-terminal we hold the master of."""

    def __init__(self, daemon: Daemon, *args: str, rows: int = 30, columns: int = 100,
                 host: str | None = None,
                 env_extra: Mapping[str, str] | None = None) -> None:
        """``host`` (``-H``) defaults to the daemon's UNIX socket."""
        self.master, slave = pty.openpty()
        _set_size(slave, rows, columns)
        self._config = tempfile.mkdtemp(prefix="dockertw-cli-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_CONFIG=self._config, TERM="xterm", **(env_extra or {}))
        try:
            self.process = subprocess.Popen(
                ["docker", "-H", host or f"unix://{daemon.socket}", *args], stdin=slave,
                stdout=slave, stderr=slave, env=env, start_new_session=True,
                preexec_fn=_take_terminal)
        finally:
            os.close(slave)
        self.output = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 15) -> re.Match[bytes]:
        """Read until ``pattern`` matches the output seen so far."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern.encode())
        while True:
            found = compiled.search(self.output)
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(f"{pattern!r} not in {self.output!r}")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the CLI exited and closed the pty
            return False
        self.output += data
        return bool(data)

    def resize(self, rows: int, columns: int) -> None:
        _set_size(self.master, rows, columns)  # the CLI gets SIGWINCH

    def resize_and_see(self, rows: int, columns: int, timeout: float = 10) -> None:
        """Resize, then ask the shell's ``stty size`` until it reports the new size
        (the resize races the next command)."""
        self.resize(rows, columns)
        deadline = time.monotonic() + timeout
        size = f"{rows} {columns}\r\n"
        while size.encode() not in self.output:
            assert time.monotonic() < deadline, self.output
            self.type("stty size\r")
            with contextlib.suppress(AssertionError):
                self.expect(size, timeout=0.5)

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        return self.process.wait(timeout=1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        os.close(self.master)
        shutil.rmtree(self._config, ignore_errors=True)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    try:
        yield opened
    finally:
        for terminal in opened:
            terminal.close()

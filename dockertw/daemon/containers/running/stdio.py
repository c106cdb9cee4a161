"""A container's standard streams as the daemon holds them: pipes, or a terminal.

Without a TTY the container gets three pipes; the daemon keeps the write end of
stdin and the read ends of stdout and stderr.  With a TTY (``Config.Tty``) runc makes
a pseudo-terminal inside the container and hands its master over the console socket
(:mod:`dockertw.runtime.console`); the daemon reads the container's output from the
master (one stream, logged as ``stdout``, as Docker does), writes stdin to it and
resizes it.

Container stdin is written by :class:`StdinWriter`, never with a blocking write on
the reactor thread: a container that does not read its stdin fills a buffer, and
past :data:`HIGH_WATER` the attached clients are paused until it drains.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.interfaces import IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw.runtime.console import ConsoleError, ConsoleSocket
from dockertw.runtime.runc import Runc, RuncError, Stdio

__all__ = ["ContainerIO", "StdinWriter", "create_container", "start_process",
           "resize_terminal", "HIGH_WATER", "Launch", "console_directory",
           "release_consoles"]

HIGH_WATER = 1 << 20  # bytes of stdin buffered before attached clients are paused
_CONSOLE_TIMEOUT = 10.0  # seconds for the terminal to arrive once runc create exited
_CHUNK = 65536


@attrs.define
class ContainerIO:
    """The daemon's ends of a created container's standard streams."""

    stdin: int | None  # write end of the stdin pipe, or a copy of the pty master
    outputs: list[tuple[str, int]]  # (stream name, read end)
    terminal: int | None = None  # the pty master, kept for resizing

    def close(self) -> None:
        """Close every descriptor still held (a start that failed half-way)."""
        fds = [self.stdin, self.terminal, *(fd for _, fd in self.outputs)]
        for fd in fds:
            if fd is not None:
                os.close(fd)
        self.stdin, self.terminal, self.outputs = None, None, []


Launch = Callable[[Stdio, Path | None], Awaitable[int]]
"""Starts a process with the given stdio (and console socket for a terminal): its pid."""


def console_directory(containers_root: Path) -> Path:
    """Where the console sockets of starts live: ``ROOT/tmp/console``."""
    return containers_root.parent / "tmp" / "console"


def release_consoles(containers_root: Path) -> None:
    """Remove the console sockets a killed daemon left (blocking, at start)."""
    directory = console_directory(containers_root)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)


async def create_container(runc: Runc, reactor: Any, container_id: str, bundle: Path,
                           *, tty: bool, open_stdin: bool, start: bool = False,
                           console_dir: Path | None = None) -> tuple[int, ContainerIO]:
    """``runc create`` (``start``: ``runc run --detach``) with the container's stdio;
    the init's pid and the daemon's ends.  Raises :class:`RuncError` when runc fails
    or no terminal arrives."""
    def launch(stdio: Stdio, console: Path | None) -> Awaitable[int]:
        return runc.create(container_id, bundle, stdio, console_socket=console,
                           start=start)

    return await start_process(launch, reactor, tty=tty, open_stdin=open_stdin,
                               console_dir=console_dir)


async def start_process(launch: Launch, reactor: Any, *, tty: bool, open_stdin: bool,
                        console_dir: Path | None = None) -> tuple[int, ContainerIO]:
    """Run ``launch`` (``runc create`` or ``runc exec``) with pipes or a terminal (its
    console socket in ``console_dir``); the pid and the daemon's ends.
    :class:`RuncError` when no terminal arrives."""
    if tty:
        return await _start_with_terminal(launch, reactor, open_stdin, console_dir)
    return await _start_with_pipes(launch, open_stdin)


async def _start_with_pipes(launch: Launch, open_stdin: bool) -> tuple[int, ContainerIO]:
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    held = ContainerIO(stdin_w, [("stdout", stdout_r), ("stderr", stderr_r)])
    try:
        pid = await launch(Stdio(stdin_r, stdout_w, stderr_w), None)
    except BaseException:
        held.close()
        raise
    finally:
        for fd in (stdin_r, stdout_w, stderr_w):
            os.close(fd)
    if not open_stdin and held.stdin is not None:
        os.close(held.stdin)  # the container reads end of file at once
        held.stdin = None
    return pid, held


async def _start_with_terminal(launch: Launch, reactor: Any, open_stdin: bool,
                               console_dir: Path | None) -> tuple[int, ContainerIO]:
    try:
        console = ConsoleSocket(reactor, console_dir)
    except OSError as error:
        raise RuncError(f"console socket: {error}") from None
    null = os.open(os.devnull, os.O_RDWR)  # runc's own stdio; the process gets the pty
    try:
        pid = await launch(Stdio(null, null, null), console.path)
        try:
            master = await console.received(_CONSOLE_TIMEOUT)
        except ConsoleError as error:
            raise RuncError(str(error)) from None
    finally:
        os.close(null)
        console.close()
    stdin = os.dup(master) if open_stdin else None
    return pid, ContainerIO(stdin, [("stdout", os.dup(master))], terminal=master)


def resize_terminal(master: int, height: int, width: int) -> None:
    """Set the terminal's window size (``TIOCSWINSZ``); its processes get SIGWINCH."""
    size = struct.pack("HHHH", height & 0xFFFF, width & 0xFFFF, 0, 0)
    fcntl.ioctl(master, termios.TIOCSWINSZ, size)


@implementer(IWriteDescriptor)
class StdinWriter:
    """Writes to the container's stdin through the reactor, from a buffer.

    :meth:`close` closes the descriptor once the buffer has drained (end of file for a
    pipe); :meth:`abort` closes it at once.  A write error (the container closed its
    end) drops what is buffered and closes.
    """

    def __init__(self, reactor: Any, fd: int) -> None:
        self._reactor = reactor
        self._fd: int | None = fd
        self._buffer = bytearray()
        self._writing = False
        self._closing = False
        self._drained: list[Callable[[], None]] = []
        self.on_closed: Callable[[], None] = lambda: None  # the descriptor was closed
        os.set_blocking(fd, False)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        return self._fd is None or self._closing

    def fileno(self) -> int:
        return -1 if self._fd is None else self._fd

    def logPrefix(self) -> str:
        return "StdinWriter"

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self._buffer += data
        if not self._writing:
            self._writing = True
            self._reactor.addWriter(self)

    def when_drained(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the buffer is empty (or stdin is gone)."""
        if not self._buffer or self._fd is None:
            callback()
        else:
            self._drained.append(callback)

    def doWrite(self) -> None:
        if self._fd is None:
            return
        try:
            written = os.write(self._fd, self._buffer[:_CHUNK])
        except BlockingIOError:
            return
        except OSError:
            self.abort()
            return
        del self._buffer[:written]
        if not self._buffer:
            self._stop_writing()
            self._notify()
            if self._closing:
                self._close_fd()

    def close(self) -> None:
        """End of input: close once everything buffered is written."""
        if self._fd is None:
            return
        self._closing = True
        if not self._buffer:
            self._close_fd()

    def abort(self) -> None:
        self._buffer.clear()
        self._stop_writing()
        self._close_fd()
        self._notify()

    def connectionLost(self, reason: Failure) -> None:
        self.abort()

    def _stop_writing(self) -> None:
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)

    def _close_fd(self) -> None:
        self._stop_writing()
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
            self.on_closed()

    def _notify(self) -> None:
        waiting, self._drained = self._drained, []
        for callback in waiting:
            callback()

"""What the daemon holds for a running container: its exit watcher and its stdio.

The container's stdout and stderr (pipes, or one pty master with a TTY) are read
through the reactor (non-blocking); their lines go straight to the json-file log and
to whoever follows the logs, and each chunk as read goes to the attached clients (a
prompt without a newline shows at once).  Stdin is written through a buffered
:class:`~dockertw.daemon.containers.running.stdio.StdinWriter`.  No helper process runs per
container.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.interfaces import IReactorFDSet, IReactorTime, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw.daemon.containers.running.stdio import (
    HIGH_WATER,
    ContainerIO,
    StdinWriter,
    resize_terminal,
)
from dockertw.daemon.jsonlog import LineSplitter, LogEntry
from dockertw.streams.detachkeys import DEFAULT_DETACH_KEYS, DetachScanner

__all__ = ["OutputPipe", "Running", "Attachment", "chained", "LogSink", "ExitWatch"]

_OUTPUT_GRACE = 2.0  # seconds the outputs may take to end after the process exited
_PIPE_SIZE = 1 << 20  # within /proc/sys/fs/pipe-max-size by default
LogListener = Callable[[list[LogEntry]], None]
RawListener = Callable[[LogEntry], None]


class ExitWatch(Protocol):
    """The run's process: its exit code when it ends; signals through its pidfd."""

    pid: int
    exited: Deferred[int]

    def signal(self, signum: int = ...) -> None: ...


class LogSink(Protocol):
    """Where a run's output lines are kept (a json-file log; nothing for an exec)."""

    @property
    def size(self) -> int: ...
    def write_lines(self, stream: str, time_ns: int, messages: Sequence[bytes]) -> None: ...
    def close(self) -> None: ...


@implementer(IReadDescriptor)
class OutputPipe:
    """Reads one output pipe without blocking; each line becomes a log entry."""

    def __init__(self, reactor: IReactorFDSet, fd: int, stream: str,
                 deliver: Callable[[str, int, list[bytes]], None],
                 raw: RawListener = lambda entry: None) -> None:
        self._reactor = reactor
        self._fd: int | None = fd
        self._stream = stream
        self._deliver = deliver
        self._raw = raw
        self._splitter = LineSplitter()
        self.closed: Deferred[None] = Deferred()
        os.set_blocking(fd, False)
        with contextlib.suppress(OSError):  # fewer, larger reads; a pty has no such knob
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        reactor.addReader(self)

    def fileno(self) -> int:
        return -1 if self._fd is None else self._fd

    def logPrefix(self) -> str:
        return f"OutputPipe({self._stream})"

    def doRead(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, _PIPE_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # end of file; EIO on a pty master once its processes are gone
            self._finish(self._splitter.flush())
            return
        now = time.time_ns()
        self._raw(LogEntry(self._stream, now, data))
        self._emit(self._splitter.feed(data), now)

    def _emit(self, messages: list[bytes], now: int = 0) -> None:
        if messages:
            self._deliver(self._stream, now or time.time_ns(), messages)

    def _finish(self, rest: list[bytes]) -> None:
        if self._fd is None:
            return
        self._reactor.removeReader(self)
        os.close(self._fd)
        self._fd = None
        self._emit(rest)
        self.closed.callback(None)

    def connectionLost(self, reason: Failure) -> None:
        self._finish(self._splitter.flush())

    def close(self) -> None:
        self._finish(self._splitter.flush())

    def flush(self) -> None:
        """Deliver what is read of an unfinished line (the daemon is stopping)."""
        self._emit(self._splitter.flush())


class Attachment:
    """One attached client: its output sink, its stdin, and the end of the run.

    Made before the container starts (as ``docker run`` does) it waits for the next
    start; made while the container runs it joins that run.  The router sets
    ``output`` and ``pause``/``resume`` (stop and restart reading the client while the
    container's stdin buffer is over :data:`HIGH_WATER`).
    """

    def __init__(self, streams: set[str], stdin: bool, stdin_once: bool,
                 tty: bool = False, detach_keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self.streams = streams
        self.wants_stdin = stdin
        self.stdin_once = stdin_once
        self.tty = tty
        self._scanner = DetachScanner(detach_keys) if tty else None
        self.on_detach: Callable[[], None] = lambda: None  # the detach keys were typed
        self.output: Callable[[LogEntry], None] = lambda entry: None
        self.pause: Callable[[], None] = lambda: None
        self.resume: Callable[[], None] = lambda: None
        self.finished: Deferred[None] = Deferred()  # the container's run ended
        self.detached = False
        self._running: Running | None = None
        self._pending: list[bytes] = []
        self._eof = False
        self._paused = False

    def deliver(self, entry: LogEntry) -> None:
        if not self.detached and entry.stream in self.streams:
            self.output(entry)

    def join(self, running: Running) -> None:
        """Connect to a run: output flows, buffered input is written."""
        self._running = running
        running.raw_listeners.append(self.deliver)
        pending, self._pending = self._pending, []
        for data in pending:
            self.write_stdin(data)
        if self._eof:
            self.close_stdin()

    def write_stdin(self, data: bytes) -> None:
        """Input from the client; on a TTY the detach keys end this session."""
        if not self.wants_stdin or self.detached:
            return
        if self._scanner is not None:
            data, detaching = self._scanner.feed(data)
            self._write(data)
            if detaching:
                self.detach()
                self.on_detach()
                self.end()
            return
        self._write(data)

    def _write(self, data: bytes) -> None:
        running = self._running
        if running is None:
            self._pending.append(data)
        elif running.stdin is not None:
            running.stdin.write(data)
            if running.stdin.buffered > HIGH_WATER and not self._paused:
                self._paused = True
                self.pause()
                running.stdin.when_drained(self._resume)

    def _resume(self) -> None:
        self._paused = False
        self.resume()

    def close_stdin(self) -> None:
        """The client's input ended.  As Docker's attach: without a TTY and with
        ``StdinOnce`` the container's stdin is closed once written (the output goes
        on); otherwise (always with a TTY, where there is no end of file) the
        container's stdin stays open and this client's session ends."""
        self._eof = True
        running = self._running
        if not self.wants_stdin or running is None:
            return
        if self.stdin_once and not self.tty:
            if running.stdin is not None:
                running.stdin.close()
                running.stdin = None
            return
        self.detach()
        self.end()

    def detach(self) -> None:
        self.detached = True
        if self._running is not None and self.deliver in self._running.raw_listeners:
            self._running.raw_listeners.remove(self.deliver)

    def end(self) -> None:
        if not self.finished.called:
            self.finished.callback(None)


class Running:
    """One running container: its init's watcher, stdin, outputs, terminal and log.

    ``listeners`` get the whole log entries (lines) of each read, ``raw_listeners``
    each chunk read.
    """

    def __init__(self, reactor: Any, watcher: ExitWatch, stdio: ContainerIO,
                 log: LogSink) -> None:
        self.watcher = watcher
        self.stdin = None if stdio.stdin is None else StdinWriter(reactor, stdio.stdin)
        self.terminal = stdio.terminal
        self.log = log
        self.listeners: list[LogListener] = []
        self.raw_listeners: list[RawListener] = []
        self.stopping = False
        self.removing = False
        self.outputs = [OutputPipe(reactor, fd, stream, self._write, self._raw)
                        for stream, fd in stdio.outputs]
        self.finished: Deferred[int] = Deferred()  # fires once the exit is handled
        self.attachments: list[Attachment] = []

    def _write(self, stream: str, time_ns: int, messages: list[bytes]) -> None:
        self.log.write_lines(stream, time_ns, messages)
        if self.listeners:  # entries only for followers: the log needs none
            entries = [LogEntry(stream, time_ns, message) for message in messages]
            for listener in list(self.listeners):
                listener(entries)

    def _raw(self, entry: LogEntry) -> None:
        for listener in list(self.raw_listeners):
            listener(entry)

    def resize(self, height: int, width: int) -> None:
        """Resize the container's terminal (nothing without a TTY, as containerd)."""
        if self.terminal is not None:
            resize_terminal(self.terminal, height, width)

    async def exit_code(self, clock: IReactorTime) -> int:
        """The exit code, once both outputs have ended too, or :data:`_OUTPUT_GRACE`
        seconds after the exit (a process it left may hold them open)."""
        code = await self.watcher.exited
        drained = gatherResults([output.closed for output in self.outputs])
        timer = clock.callLater(_OUTPUT_GRACE, drained.cancel)
        with contextlib.suppress(CancelledError):
            await drained
        if timer.active():
            timer.cancel()
        return code

    def flush(self) -> None:
        """Log what is read of unfinished lines (the daemon stops, the run goes on)."""
        for output in self.outputs:
            output.flush()

    def close(self) -> None:
        if self.stdin is not None:
            self.stdin.abort()
            self.stdin = None
        for output in self.outputs:
            output.close()
        if self.terminal is not None:
            os.close(self.terminal)
            self.terminal = None
        self.log.close()


def chained(deferred: Deferred[Any]) -> Deferred[Any]:
    """A new Deferred that fires with ``deferred`` (cancelling it leaves ``deferred``)."""
    copy: Deferred[Any] = Deferred()
    if deferred.called:
        copy.callback(deferred.result)
    else:
        def fire(result: Any) -> Any:
            if not copy.called:
                copy.callback(result)
            return result
        deferred.addCallback(fire)
    return copy

"""The console socket of ``runc create --console-socket``: receiving a pty master.

With ``process.terminal`` set, runc makes the pseudo-terminal inside the container,
connects to a UNIX socket the caller listens on and sends the master end over it
(``SCM_RIGHTS``, with the file's name as the message); then ``runc create`` exits.

The socket is read through the reactor, not by a worker thread: accept and
``recvmsg`` are non-blocking descriptors the reactor already knows how to wait on, a
thread blocked in ``accept`` cannot be woken cleanly when runc fails, and the
time-out is then just a ``callLater``.  The socket lives in a fresh private
directory under the system temporary directory (a short path: UNIX socket paths are
limited to 108 bytes), or under the directory given (the daemon's, emptied at its
start: what a killed daemon left there has an owner), removed by
:meth:`ConsoleSocket.close` whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw import errdefs

__all__ = ["ConsoleSocket", "ConsoleError"]


_MAX_DIRECTORY = 80  # + "/dtw-console-XXXXXXXX/console.sock" within 108 bytes


class ConsoleError(errdefs.System):
    """No terminal came over the console socket."""


@implementer(IReadDescriptor)
class ConsoleSocket:
    """Listens for runc's connection and keeps the one descriptor it sends."""

    def __init__(self, reactor: Any, directory: Path | None = None) -> None:
        self._reactor = reactor
        if directory is not None and len(os.fsencode(directory)) > _MAX_DIRECTORY:
            directory = None  # its socket's path would not fit in an address
        self._directory = Path(tempfile.mkdtemp(prefix="dtw-console-", dir=directory))
        self.path = self._directory / "console.sock"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.setblocking(False)
            self._listener.bind(str(self.path))
            self._listener.listen(1)
        except OSError:
            self._listener.close()
            shutil.rmtree(self._directory, ignore_errors=True)
            raise
        self._current: socket.socket | None = self._listener
        self._master: int | None = None
        self._error: str | None = None
        self._waiters: list[Deferred[int]] = []
        reactor.addReader(self)

    def fileno(self) -> int:
        return -1 if self._current is None else self._current.fileno()

    def logPrefix(self) -> str:
        return "ConsoleSocket"

    def doRead(self) -> None:
        if self._current is self._listener:
            self._accept()
        elif self._current is not None:
            self._receive(self._current)

    def _accept(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        self._reactor.removeReader(self)
        self._current = connection
        self._reactor.addReader(self)

    def _receive(self, connection: socket.socket) -> None:
        try:
            message, fds, _flags, _address = socket.recv_fds(connection, 4096, 4)
        except BlockingIOError:
            return
        except OSError as error:
            self._done(None, f"reading the console socket: {error}")
            return
        for extra in fds[1:]:
            os.close(extra)
        if fds:
            self._done(fds[0], None)
        elif not message:
            self._done(None, "runc closed the console socket without sending a terminal")

    def _done(self, master: int | None, error: str | None) -> None:
        self._stop_reading()
        self._master, self._error = master, error
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._answer(waiter)

    def _answer(self, waiter: Deferred[int]) -> None:
        if self._master is not None:
            master, self._master = self._master, None
            waiter.callback(master)
        else:
            waiter.errback(Failure(ConsoleError(self._error or "no terminal received")))

    def _stop_reading(self) -> None:
        if self._current is not None:
            self._reactor.removeReader(self)
            if self._current is not self._listener:
                self._current.close()
            self._current = None

    def connectionLost(self, reason: Failure) -> None:
        self._done(None, f"console socket lost: {reason.getErrorMessage()}")

    def received(self, timeout: float) -> Deferred[int]:
        """The pty master (call once runc create has exited): the descriptor now
        belongs to the caller.  :class:`ConsoleError` after ``timeout`` seconds."""
        waiter: Deferred[int] = Deferred()
        if self._current is None:
            self._answer(waiter)
            return waiter
        self._waiters.append(waiter)
        timer = self._reactor.callLater(timeout, self._done, None,
                                        f"no terminal received from runc in {timeout}s")

        def stop_timer(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            return result

        return waiter.addBoth(stop_timer)

    def close(self) -> None:
        """Stop listening, remove the socket file, close an unclaimed descriptor."""
        self._stop_reading()
        self._listener.close()
        if self._master is not None:
            os.close(self._master)
            self._master = None
        with contextlib.suppress(OSError):
            shutil.rmtree(self._directory)

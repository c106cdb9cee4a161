"""Collect the exit status of container processes without a shim per container.

The daemon makes itself a *child subreaper*: when ``runc create`` exits, the container's
init process is re-parented to the daemon, which watches it through a pidfd (readable
once the process has exited) and then reaps it with ``waitpid``.
"""

from __future__ import annotations

import os
import signal

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from dockertw.runtime.subreaper import become_subreaper, exit_code_of_status

__all__ = ["become_subreaper", "ExitWatcher", "exit_code_of_status"]


@implementer(IReadDescriptor)
class ExitWatcher:
    """Fires :attr:`exited` with the exit code when process ``pid`` ends.

    The process must be a child of this process (directly, or re-parented to this
    subreaper), so that ``waitpid`` can collect it; for another's, the exit code is
    255.  ``pidfd`` (then owned by the watcher) is the process's, if already opened.
    """

    def __init__(self, reactor: IReactorFDSet, pid: int, pidfd: int | None = None) -> None:
        self.pid = pid
        self.exited: Deferred[int] = Deferred()
        self._reactor = reactor
        self._pidfd: int | None = os.pidfd_open(pid) if pidfd is None else pidfd
        reactor.addReader(self)

    def fileno(self) -> int:
        return -1 if self._pidfd is None else self._pidfd

    def logPrefix(self) -> str:
        return f"ExitWatcher({self.pid})"

    def doRead(self) -> None:
        try:
            reaped, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            reaped, status = self.pid, 255 << 8  # someone else reaped it
        if reaped == 0:
            return
        self._close()
        self.exited.callback(exit_code_of_status(status))

    def connectionLost(self, reason: Failure) -> None:
        self._close()

    def signal(self, signum: int = signal.SIGKILL) -> None:
        """Signal the process through its pidfd (never a recycled pid)."""
        if self._pidfd is not None:
            signal.pidfd_send_signal(self._pidfd, signum)

    def _close(self) -> None:
        if self._pidfd is not None:
            self._reactor.removeReader(self)
            os.close(self._pidfd)
            self._pidfd = None

"""Worker threads for the stores' blocking file I/O, started and stopped with the reactor.

Services run their store operations through a :class:`Runner` (writes on a pool of one
thread, so they are serialised; reads on a small pool) and get Deferreds back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from dockertw.errdefs import Conflict

__all__ = ["Runner", "WorkerReactor", "PoolRunner", "OneAtATime"]

_T = TypeVar("_T")


class Runner(Protocol):
    """Runs blocking ``work`` somewhere else and answers its result as a Deferred."""

    def __call__(self, work: Callable[[], _T], /) -> Deferred[_T]: ...


class WorkerReactor(Protocol):
    """What a worker pool needs of the reactor."""

    def callFromThread(self, callable: Callable[..., Any], *args: Any,  # noqa: N802
                       **kwargs: Any) -> None: ...

    def callWhenRunning(self, callable: Callable[..., Any], *args: Any,  # noqa: N802
                        **kwargs: Any) -> Any: ...

    def addSystemEventTrigger(self, phase: str, eventType: str,  # noqa: N802, N803
                              callable: Callable[..., Any], *args: Any, **kwargs: Any
                              ) -> Any: ...


class PoolRunner:
    """A :class:`Runner` on a thread pool started and stopped with the reactor."""

    def __init__(self, reactor: WorkerReactor, threads: int, name: str) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name=name)
        reactor.callWhenRunning(self._pool.start)
        reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    def __call__(self, work: Callable[[], _T], /) -> Deferred[_T]:
        return deferToThreadPool(cast(IReactorFromThreads, self._reactor), self._pool, work)


class OneAtATime:
    """Refuses to start an operation while the previous one is still running.

    Docker does this for prunes: a second one answers 409 until the first is done.
    """

    def __init__(self, busy_message: str) -> None:
        self._busy_message = busy_message
        self._busy = False

    def run(self, start: Callable[[], Deferred[_T]]) -> Deferred[_T]:
        if self._busy:
            raise Conflict(self._busy_message)
        self._busy = True
        return start().addBoth(self._finished)

    def _finished(self, result: Any) -> Any:
        self._busy = False
        return result

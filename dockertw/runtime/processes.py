"""Short-lived helper commands (CNI plugins, iptables-restore, ip) run through the reactor.

A command gets its standard input as bytes and answers its exit code with what it
wrote; the reactor never blocks on it.  A :data:`Runner` is either kind:
:func:`reactor_runner` for a running daemon, :func:`blocking_runner` for daemon start-up
and shut-down (before or after the reactor runs; its Deferreds have already fired, so
code written once for both completes at once).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = ["Finished", "Runner", "run", "run_blocking", "plain_environment", "exit_status",
           "reactor_runner", "blocking_runner"]


@attrs.frozen
class Finished:
    """How a command ended: its exit code (128 + N for signal N) and its output."""

    code: int
    stdout: bytes
    stderr: bytes

    def error_text(self) -> str:
        """What the command said on stderr (else stdout), decoded and stripped."""
        said = self.stderr.strip() or self.stdout.strip()
        return said.decode("utf-8", "replace")


class _Collect(ProcessProtocol):
    def __init__(self, stdin: bytes) -> None:
        self._stdin = stdin
        self._stdout = bytearray()
        self._stderr = bytearray()
        self.done: Deferred[Finished] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        if self._stdin:
            self.transport.write(self._stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self._stdout.extend(data)

    def errReceived(self, data: bytes) -> None:
        self._stderr.extend(data)

    def processEnded(self, reason: Failure) -> None:
        self.done.callback(Finished(exit_status(reason), bytes(self._stdout),
                                    bytes(self._stderr)))


def exit_status(reason: Failure) -> int:
    """A process's end as a shell reports it: its exit code, 128 + N when signal N
    killed it, 255 when neither is known."""
    code = getattr(reason.value, "exitCode", None)
    if code is not None:
        return int(code)
    signal = getattr(reason.value, "signal", None)
    return 128 + signal if signal else 255


def plain_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``PATH`` only (helpers must not see the daemon's environment), plus ``extra``."""
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **(extra or {})}


def run(reactor: IReactorProcess, argv: Sequence[str], stdin: bytes = b"",
        env: Mapping[str, str] | None = None) -> Deferred[Finished]:
    """Run ``argv`` (``argv[0]`` a path or a name on ``PATH``) with ``stdin``."""
    collect = _Collect(stdin)
    environment = dict(env) if env is not None else plain_environment()
    executable = _which(argv[0], environment["PATH"])
    reactor.spawnProcess(collect, executable, list(argv), env=environment)
    return collect.done


def run_blocking(argv: Sequence[str], stdin: bytes = b"",
                 env: Mapping[str, str] | None = None, timeout: float = 60.0) -> Finished:
    """:func:`run` for start-up and shut-down: blocks until the command ends."""
    environment = dict(env) if env is not None else plain_environment()
    done = subprocess.run(list(argv), input=stdin, capture_output=True, env=environment,
                          timeout=timeout, check=False)
    code = done.returncode if done.returncode >= 0 else 128 - done.returncode
    return Finished(code, done.stdout, done.stderr)


Runner = Callable[[Sequence[str], bytes, "Mapping[str, str] | None"], Deferred[Finished]]


def reactor_runner(reactor: IReactorProcess) -> Runner:
    """A :data:`Runner` spawning through ``reactor``."""
    def runner(argv: Sequence[str], stdin: bytes = b"",
               env: Mapping[str, str] | None = None) -> Deferred[Finished]:
        return run(reactor, argv, stdin, env)
    return runner


def blocking_runner(argv: Sequence[str], stdin: bytes = b"",
                    env: Mapping[str, str] | None = None) -> Deferred[Finished]:
    """A :data:`Runner` that blocks, answering a Deferred that has fired."""
    return succeed(run_blocking(argv, stdin, env))


def _which(name: str, path: str) -> str:
    if "/" in name:
        return name
    for directory in path.split(os.pathsep):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return name

"""The daemon's side of the holder: finding or starting it, and talking to it.

At start-up, before the reactor runs, :class:`HolderLink` connects to the holder of
the state root (or starts one) and exchanges ``hello`` and ``adopt`` in blocking
calls; then :class:`HolderClient` carries the same connection through the reactor:
runtime commands the holder spawns, processes it watches (each a
:class:`HeldProcess`), their exits.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

import dockertw
from dockertw.daemon.holder import protocol
from dockertw.errdefs import System
from dockertw.loglevel import Logger
from dockertw.runtime.reaper import ExitWatcher

__all__ = ["HolderError", "HolderBusy", "HolderLink", "HolderClient", "HeldProcess", "Adopted",
           "start_holder", "socket_path"]

_log = Logger()
_SOCKET = "holder.sock"
_LOG = "holder.log"
_MAX_PATH = 100  # a UNIX socket address holds 108 bytes
_CONNECT_TIMEOUT = 10.0
Message = dict[str, Any]
Received = tuple[Message, list[int]]


class HolderError(System):
    """The holder refused a request, or is gone."""


class HolderBusy(HolderError):
    """The holder serves another daemon (two daemons on one state root)."""


def socket_path(directory: Path) -> Path:
    return directory / _SOCKET


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """``path`` as a socket address; a long one through its directory's descriptor."""
    if len(os.fsencode(path)) < _MAX_PATH:
        yield str(path)
        return
    directory = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{path.name}"
    finally:
        os.close(directory)


def _connect(path: Path) -> socket.socket | None:
    """A connection to the holder listening at ``path``; ``None`` when none listens."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    connection.settimeout(_CONNECT_TIMEOUT)
    try:
        with _address(path) as address:
            connection.connect(address)
    except (FileNotFoundError, ConnectionRefusedError):
        connection.close()
        return None
    return connection


def start_holder(directory: Path, log_limit: int | None = None
                 ) -> tuple[socket.socket, int]:
    """Start a holder for ``directory`` (its socket and log are there); answers the
    connection to it and its pid (a child of this process until this one dies).
    ``log_limit``: bytes of a container's output it logs per absence of the daemon."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = socket_path(directory)
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        with _address(path) as address:
            listener.bind(address)
        listener.listen(16)
        pid = _spawn_holder(path, listener.fileno(), directory / _LOG, log_limit)
    finally:
        listener.close()
    connection = _connect(path)
    if connection is None:
        raise HolderError(f"the holder started for {directory} does not listen")
    return connection, pid


def _spawn_holder(path: Path, listener: int, log_path: Path, log_limit: int | None) -> int:
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    package_parent = str(Path(dockertw.__file__).resolve().parent.parent)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "PYTHONPATH": package_parent}
    argv = [sys.executable, "-m", "dockertw.daemon.holder", "--socket", str(path)]
    if log_limit is not None:
        argv += ["--log-limit", str(log_limit)]
    ignored = [signum for signum in signal.valid_signals()
               if signal.getsignal(signum) == signal.SIG_IGN]
    try:
        return os.posix_spawn(sys.executable, argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, log, 1),
            (os.POSIX_SPAWN_DUP2, log, 2), (os.POSIX_SPAWN_DUP2, listener, 3)],
            setsigdef=ignored, setsigmask=())
    finally:
        os.close(log)
        os.close(null)


class Adopted:
    """What the holder gave back of a process: its descriptors by name, its pidfd."""

    def __init__(self, fds: dict[str, int], pidfd: int | None) -> None:
        self.fds = fds
        self.pidfd = pidfd

    def close(self) -> None:
        protocol.close_all([*self.fds.values(), *([self.pidfd] if self.pidfd else [])])
        self.fds, self.pidfd = {}, None


class HolderLink:
    """The start-up conversation with the holder, in blocking calls."""

    def __init__(self, connection: socket.socket, holder_pid: int | None = None) -> None:
        self.connection = connection
        self.holder_pid = holder_pid
        self.started = holder_pid is not None  # by this daemon: it is our child
        self.held: list[Message] = []
        self.pending: list[Received] = []  # exits that came meanwhile
        self.compatible = True  # it speaks this daemon's protocol version
        self._ids = itertools.count(1)

    @classmethod
    def find(cls, directory: Path) -> HolderLink | None:
        """The holder already running for ``directory``, greeted; ``None`` when there
        is none (or it went away while greeted).  :class:`HolderBusy` when it serves
        another daemon."""
        connection = _connect(socket_path(directory))
        if connection is None:
            return None
        link = cls(connection)
        try:
            link.hello()
        except HolderBusy:
            connection.close()
            raise
        except (OSError, HolderError) as error:
            _log.warn("the holder of {dir} did not answer: {error}", dir=str(directory),
                      error=str(error))
            connection.close()
            return None
        return link

    @classmethod
    def open(cls, directory: Path, log_limit: int | None = None) -> HolderLink:
        """The holder of ``directory``, started if none runs; greeted.  One of another
        protocol version is stopped, its processes killed, and a new one started."""
        found = cls.find(directory)
        if found is not None and found.compatible:
            return found
        if found is not None:
            _log.warn("stopping a holder of another version, with its containers")
            found.stop()
            found.connection.close()
        connection, pid = start_holder(directory, log_limit)
        link = cls(connection, pid)
        link.hello()
        return link

    def hello(self) -> None:
        """Greet the holder: what it holds; whether it speaks this protocol (``stop``
        is understood whatever the version)."""
        reply, _ = self._exchange({"op": "hello", "version": protocol.VERSION}, "hello")
        self.holder_pid = self.holder_pid or int(reply.get("pid") or 0) or None
        self.compatible = reply.get("version") == protocol.VERSION and "error" not in reply
        self.held = list(reply.get("held") or [])

    def adopt(self, key: str) -> Adopted:
        """Copies of what the holder holds of process ``key``."""
        reply, fds = self._exchange({"op": "adopt", "key": key}, "adopted")
        if "error" in reply:
            protocol.close_all(fds)
            raise HolderError(f"adopt {key}: {reply['error']}")
        names = list(reply.get("fds") or [])
        pidfd = fds[len(names)] if reply.get("pidfd") and len(fds) > len(names) else None
        return Adopted(dict(zip(names, fds, strict=False)), pidfd)

    def stop(self) -> list[Message]:
        """Have the holder kill everything and exit; the exits it saw."""
        reply, _ = self._exchange({"op": "stop"}, "stopped", timeout=60.0)
        return list(reply.get("exits") or [])

    def send(self, message: Message) -> None:
        protocol.send(self.connection, message)

    def _exchange(self, message: Message, answer: str, timeout: float = _CONNECT_TIMEOUT
                  ) -> Received:
        request_id = next(self._ids) if message["op"] != "hello" else 0
        self.connection.settimeout(timeout)
        try:
            protocol.send(self.connection, {**message, "id": request_id})
        except OSError:  # refused and closed at once: its reason may still be there
            self.connection.settimeout(0.5)
        while True:
            try:
                received = protocol.receive(self.connection)
            except ConnectionResetError:  # refused with our message unread: its reason
                received = protocol.receive(self.connection)  # comes after the reset
            if received is None:
                raise HolderError("the holder closed the connection")
            reply, fds = received
            if reply["op"] == "error":
                raise HolderBusy(f"{reply.get('message')}: is another daemon running on "
                                 "this state root?")
            if reply["op"] in (answer, "failed") and reply.get("id", 0) == request_id:
                if reply["op"] == "failed":
                    protocol.close_all(fds)
                    raise HolderError(str(reply.get("error")))
                return reply, fds
            self.pending.append((reply, fds))


class HeldProcess:
    """A process the holder watches: its exit comes from the holder; signals go
    through its pidfd.  Should the holder die, the pidfd tells when it ends (with the
    exit code when it was re-parented to this daemon, 255 otherwise)."""

    def __init__(self, reactor: Any, key: str, pid: int, pidfd: int | None) -> None:
        self.key = key
        self.pid = pid
        self.exited: Deferred[int] = Deferred()
        self._reactor = reactor
        self._pidfd = pidfd
        if pidfd is not None:
            os.set_inheritable(pidfd, False)

    def signal(self, signum: int = signal.SIGKILL) -> None:
        if self._pidfd is None:
            raise ProcessLookupError(self.pid)
        signal.pidfd_send_signal(self._pidfd, signum)

    def ended(self, code: int) -> None:
        if self.exited.called:
            return
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.exited.callback(code)

    def holder_lost(self) -> None:
        if self.exited.called:
            return
        if self._pidfd is None:
            self.ended(255)
            return
        watcher = ExitWatcher(self._reactor, self.pid, os.dup(self._pidfd))
        watcher.exited.addCallback(self.ended)


@implementer(IReadDescriptor, IWriteDescriptor)
class HolderClient:
    """The holder's connection through the reactor: requests and their answers (by
    ``id``), the exits of watched processes (by key)."""

    def __init__(self, reactor: Any, link: HolderLink) -> None:
        self._reactor = reactor
        self._socket: socket.socket | None = link.connection
        self._socket.setblocking(False)
        self.holder_pid = link.holder_pid
        self._ids = itertools.count(1000)
        self._answers: dict[int, Deferred[Received]] = {}
        self._processes: dict[str, HeldProcess] = {}
        self._early_exits: dict[str, int] = {}
        self._queue: deque[tuple[Message, list[int]]] = deque()
        self._writing = False
        self._holder_watch: ExitWatcher | None = None
        if link.started and link.holder_pid is not None:  # our child: reap it when it ends
            self._holder_watch = ExitWatcher(reactor, link.holder_pid)
        for message, fds in link.pending:
            self._dispatch(message, fds)
        reactor.addReader(self)

    @property
    def connected(self) -> bool:
        return self._socket is not None

    # -- requests ----------------------------------------------------------------------

    async def run(self, argv: Sequence[str], env: Mapping[str, str],
                  fds: Mapping[int, int]) -> int:
        """Have the holder spawn ``argv`` with ``fds`` (child number: our descriptor);
        answers its exit code."""
        targets = sorted(fds)
        reply, _ = await self._request({"op": "run", "argv": list(argv), "env": dict(env),
                                        "fds": targets}, [fds[t] for t in targets])
        if "error" in reply:
            raise HolderError(f"the holder cannot start {argv[0]}: {reply['error']}")
        return int(reply["code"])

    async def watch(self, key: str, pid: int, fds: Mapping[str, int], *, tty: bool,
                    log: Mapping[str, Any] | None) -> HeldProcess:
        """Have the holder keep process ``pid`` (its child now) and copies of ``fds``."""
        names = sorted(fds)
        reply, received = await self._request(
            {"op": "watch", "key": key, "pid": pid, "tty": tty, "fds": names,
             "log": dict(log) if log is not None else None}, [fds[n] for n in names])
        return self.held(key, pid, received[0] if reply.get("alive") and received else None)

    def held(self, key: str, pid: int, pidfd: int | None) -> HeldProcess:
        """Follow the process ``key`` (watched, or adopted at start)."""
        process = HeldProcess(self._reactor, key, pid, pidfd)
        self._processes[key] = process
        early = self._early_exits.pop(key, None)
        if early is not None:
            self._processes.pop(key)
            process.ended(early)
        elif not self.connected:
            process.holder_lost()
        return process

    def close_fd(self, key: str, name: str) -> None:
        self._send({"op": "close", "key": key, "name": name})

    def release(self, key: str) -> None:
        self._processes.pop(key, None)
        self._send({"op": "release", "key": key})

    def _request(self, message: Message, fds: Sequence[int] = ()) -> Deferred[Received]:
        if self._socket is None:
            raise HolderError("the holder is gone")
        request_id = next(self._ids)
        answer: Deferred[Received] = Deferred()
        self._answers[request_id] = answer
        self._send({**message, "id": request_id}, fds)
        return answer

    def _send(self, message: Message, fds: Sequence[int] = ()) -> None:
        if self._socket is None:
            return
        if not self._queue:
            try:
                protocol.send(self._socket, message, fds)
                return
            except BlockingIOError:
                pass
            except OSError as error:
                self._lost(f"writing to the holder: {error}")
                return
        self._queue.append((message, [os.dup(fd) for fd in fds]))
        if not self._writing:
            self._writing = True
            self._reactor.addWriter(self)

    # -- the reactor's side ------------------------------------------------------------

    def fileno(self) -> int:
        return -1 if self._socket is None else self._socket.fileno()

    def logPrefix(self) -> str:
        return "HolderClient"

    def doRead(self) -> None:
        if self._socket is None:
            return
        try:
            received = protocol.receive(self._socket)
        except BlockingIOError:
            return
        except (OSError, protocol.ProtocolError) as error:
            self._lost(f"reading from the holder: {error}")
            return
        if received is None:
            self._lost("the holder closed the connection")
            return
        self._dispatch(*received)

    def doWrite(self) -> None:
        while self._queue and self._socket is not None:
            message, fds = self._queue[0]
            try:
                protocol.send(self._socket, message, fds)
            except BlockingIOError:
                return
            except OSError as error:
                self._lost(f"writing to the holder: {error}")
                return
            self._queue.popleft()
            protocol.close_all(fds)
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)

    def connectionLost(self, reason: Failure) -> None:
        self._lost(reason.getErrorMessage())

    def _dispatch(self, message: Message, fds: list[int]) -> None:
        if message["op"] == "exit":
            protocol.close_all(fds)
            self._exited(str(message["key"]), int(message["code"]))
            return
        answer = self._answers.pop(message.get("id", -1), None)
        if answer is None:
            _log.warn("unexpected message from the holder: {op}", op=message["op"])
            protocol.close_all(fds)
        elif message["op"] == "failed":
            protocol.close_all(fds)
            answer.errback(HolderError(str(message.get("error"))))
        else:
            answer.callback((message, fds))

    def _exited(self, key: str, code: int) -> None:
        process = self._processes.pop(key, None)
        if process is None:
            self._early_exits[key] = code
        else:
            process.ended(code)

    def _lost(self, why: str) -> None:
        sock, self._socket = self._socket, None
        if sock is None:
            return
        _log.error("lost the holder ({why}): running containers are watched without it",
                   why=why)
        self._reactor.removeReader(self)
        if self._writing:
            self._writing = False
            self._reactor.removeWriter(self)
        sock.close()
        for _, fds in self._queue:
            protocol.close_all(fds)
        self._queue.clear()
        answers, self._answers = self._answers, {}
        for answer in answers.values():
            answer.errback(HolderError("the holder is gone"))
        for process in list(self._processes.values()):
            process.holder_lost()

    def close(self) -> None:
        """Leave the holder (the daemon stops): it reads the outputs from now on."""
        sock, self._socket = self._socket, None
        if sock is not None:
            self._reactor.removeReader(self)
            sock.close()

"""The holder process: parent and reaper of every container, keeper of their streams
while the daemon is away.

One process for all containers, single-threaded, standard library only (plus the
json-file log writer), so that it stays small: a ``selectors`` loop over its listening
socket, the daemon's connection, a pipe that ``SIGCHLD`` wakes, and, while no daemon
is connected, the containers' outputs.  The protocol is :mod:`.protocol`'s; the design
is in ``docs/daemon.md`` (Live restore).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import select
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockertw.daemon.holder import protocol
from dockertw.daemon.jsonlog import JSONLogFile, LineSplitter
from dockertw.runtime.subreaper import exit_code_of_status

__all__ = ["Holder", "AWAY_LOG_LIMIT"]

AWAY_LOG_LIMIT = 16 << 20  # bytes of a container's output logged per absence
_READ = 1 << 16
_STASH = 4096  # exit statuses of processes nobody has claimed yet
_FIRST_DAEMON = 60.0  # seconds a new holder waits for its first daemon
_SEND_TIMEOUT = 30.0  # a daemon that takes no message for this long is gone
_HIGH_FD = 64
_STREAMS = {"stdout": "stdout", "stderr": "stderr", "terminal": "stdout"}
Handler = Callable[[dict[str, Any], list[int]], None]


def _say(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"{stamp} holder[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


class _Held:
    """One process the holder keeps: its pidfd, its streams' descriptors, its end."""

    def __init__(self, key: str, pid: int, pidfd: int | None, tty: bool,
                 fds: dict[str, int], log: dict[str, Any] | None) -> None:
        self.key, self.pid, self.pidfd, self.tty = key, pid, pidfd, tty
        self.fds = fds
        self.log_target = log
        self.code: int | None = None
        self.finished_ns = 0
        self.dropped = False  # read and discarded until it ends, then forgotten
        self.log: JSONLogFile | None = None
        self.splitters: dict[str, LineSplitter] = {}
        self.away_bytes = 0

    @property
    def alive(self) -> bool:
        return self.code is None

    def outputs(self) -> list[str]:
        return [name for name in self.fds if name in _STREAMS]

    def entry(self) -> dict[str, Any]:
        return protocol.held_entry(self.key, self.pid, alive=self.alive, code=self.code,
                                   finished_ns=self.finished_ns, tty=self.tty,
                                   fds=sorted(self.fds))

    def close(self, name: str) -> None:
        fd = self.fds.pop(name, None)
        if fd is not None:
            os.close(fd)

    def close_all(self) -> None:
        for name in list(self.fds):
            self.close(name)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
        self.close_log()

    def close_log(self) -> None:
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.close()
            self.log = None

    def signal(self, signum: int) -> None:
        if self.pidfd is not None and self.alive:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signum)


class Holder:
    """The holder's state and loop; :meth:`run` returns when it has nothing left to
    hold and no daemon, or once it was told to stop."""

    def __init__(self, listener: socket.socket, log_limit: int = AWAY_LOG_LIMIT) -> None:
        self._listener = listener
        self._log_limit = log_limit
        self._selector = selectors.DefaultSelector()
        self._daemon: socket.socket | None = None
        self._greeted = False  # the connected daemon said hello
        self._served = False
        self._started = time.monotonic()
        self._held: dict[str, _Held] = {}
        self._by_pid: dict[int, _Held] = {}
        self._runs: dict[int, Any] = {}  # runtime commands in flight: pid -> request id
        self._stash: collections.OrderedDict[int, tuple[int, int]] = collections.OrderedDict()
        self._reading: dict[int, tuple[_Held, str]] = {}
        self._stopping: Any = None
        self._stopped = False
        self._handlers: dict[str, Handler] = {
            "hello": self._hello, "run": self._run, "watch": self._watch,
            "adopt": self._adopt, "close": self._close, "release": self._release,
            "drop": self._drop, "kill": self._kill, "stop": self._stop}
        self._wakeup_r, self._wakeup_w = os.pipe()
        for fd in (self._wakeup_r, self._wakeup_w):
            os.set_blocking(fd, False)

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> None:
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, self._accept)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, self._reap)
        self._reap()
        while not self._finished():
            for key, _ in self._selector.select(timeout=1.0):
                try:
                    key.data()
                except Exception as error:  # the holder never dies of one event
                    _say(f"{key.data!r}: {error!r}")
        self._close_everything()

    def _finished(self) -> bool:
        if self._stopped:
            return True
        if not self._served:
            return time.monotonic() - self._started > _FIRST_DAEMON
        return self._daemon is None and not self._held and not self._runs

    def _close_everything(self) -> None:
        for held in list(self._held.values()):
            self._forget(held)
        if self._daemon is not None:
            self._daemon.close()
        self._selector.close()
        _say("exiting")

    # -- the daemon's connection -------------------------------------------------------

    def _accept(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._daemon is not None and not _hung_up(self._daemon):
            with contextlib.suppress(OSError):
                protocol.send(connection, {"op": "error", "message":
                                           "another daemon is using this holder"})
            connection.close()
            return
        if self._daemon is not None:
            self._disconnected()
        connection.settimeout(_SEND_TIMEOUT)
        self._daemon, self._greeted = connection, False
        self._selector.register(connection, selectors.EVENT_READ, self._from_daemon)

    def _from_daemon(self) -> None:
        daemon = self._daemon
        if daemon is None:
            return
        try:
            received = protocol.receive(daemon)
        except (BlockingIOError, TimeoutError):
            return
        except protocol.ProtocolError as error:
            self._answer({"op": "failed", "id": None, "error": str(error)})
            return
        except OSError as error:
            _say(f"dropping the daemon's connection: {error}")
            received = None
        if received is None:
            self._disconnected()
            return
        message, fds = received
        handler = self._handlers.get(message["op"])
        try:
            if handler is None:
                raise protocol.ProtocolError(f"unknown op {message['op']!r}")
            handler(message, fds)
        except Exception as error:  # the holder never dies of a message
            _say(f"{message.get('op')}: {error!r}")
            self._answer({"op": "failed", "id": message.get("id"), "error": str(error)})
        finally:
            protocol.close_all(fds)  # what the handler did not take

    def _answer(self, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> None:
        daemon = self._daemon
        if daemon is None:
            return
        try:
            protocol.send(daemon, message, fds)
        except (OSError, protocol.ProtocolError) as error:
            _say(f"cannot reach the daemon: {error}")
            self._disconnected()

    def _disconnected(self) -> None:
        """The daemon is gone: read the outputs into the logs from now on."""
        daemon, self._daemon = self._daemon, None
        if daemon is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(daemon)
        daemon.close()
        if self._stopping is not None:
            return
        _say(f"the daemon left; holding {len(self._held)} processes")
        for held in self._held.values():
            held.away_bytes = 0
            self._read_outputs(held)

    # -- requests ----------------------------------------------------------------------

    def _hello(self, message: dict[str, Any], fds: list[int]) -> None:
        if message.get("version") != protocol.VERSION:
            self._answer({"op": "hello", "version": protocol.VERSION, "pid": os.getpid(),
                          "error": f"holder protocol {protocol.VERSION}, daemon "
                                   f"{message.get('version')}"})
            return
        self._served = self._greeted = True
        for held in self._held.values():
            if not held.dropped:
                self._stop_reading(held)
        self._answer({"op": "hello", "version": protocol.VERSION, "pid": os.getpid(),
                      "held": [held.entry() for held in self._held.values()
                               if not held.dropped]})

    def _run(self, message: dict[str, Any], fds: list[int]) -> None:
        argv = [str(arg) for arg in message["argv"]]
        env = {str(k): str(v) for k, v in dict(message.get("env") or {}).items()}
        targets = [int(target) for target in message["fds"]]
        if len(targets) != len(fds):
            raise protocol.ProtocolError("run: one descriptor per target")
        try:
            pid = _spawn(argv, env, list(zip(fds, targets, strict=True)))
        except OSError as error:
            self._answer({"op": "ran", "id": message["id"], "error": str(error)})
            return
        self._runs[pid] = message["id"]

    def _watch(self, message: dict[str, Any], fds: list[int]) -> None:
        key, pid, names = str(message["key"]), int(message["pid"]), list(message["fds"])
        earlier = self._held.get(key)
        if len(names) != len(fds) or (earlier is not None and earlier.alive):
            raise protocol.ProtocolError(f"watch {key}: bad descriptors, or it runs")
        if earlier is not None:  # an ended run never released: this one replaces it
            self._forget(earlier)
        stashed = self._stash.pop(pid, None)
        pidfd = None if stashed is not None else _pidfd(pid)
        held = _Held(key, pid, pidfd, bool(message.get("tty")),
                     dict(zip(names, fds, strict=True)), message.get("log"))
        fds.clear()  # held now
        self._held[key] = held
        if pidfd is not None:
            self._by_pid[pid] = held
        self._answer({"op": "watching", "id": message["id"], "key": key,
                      "alive": pidfd is not None}, [pidfd] if pidfd is not None else [])
        if pidfd is None:
            code, finished = stashed or (255, time.time_ns())
            self._exited(held, code, finished)

    def _adopt(self, message: dict[str, Any], fds: list[int]) -> None:
        held = self._held.get(str(message["key"]))
        if held is None:
            self._answer({"op": "adopted", "id": message["id"], "key": message["key"],
                          "error": "no such process"})
            return
        names = sorted(held.fds)
        sent = [held.fds[name] for name in names]
        if held.pidfd is not None:
            sent.append(held.pidfd)
        self._answer({"op": "adopted", "id": message["id"], "key": held.key,
                      "fds": names, "pidfd": held.pidfd is not None}, sent)

    def _close(self, message: dict[str, Any], fds: list[int]) -> None:
        held = self._held.get(str(message["key"]))
        if held is not None:
            held.close(str(message["name"]))

    def _release(self, message: dict[str, Any], fds: list[int]) -> None:
        held = self._held.get(str(message["key"]))
        if held is not None:
            self._forget(held)

    def _drop(self, message: dict[str, Any], fds: list[int]) -> None:
        held = self._held.get(str(message["key"]))
        if held is None:
            return
        if not held.alive:
            self._forget(held)
            return
        held.dropped = True
        self._read_outputs(held)

    def _kill(self, message: dict[str, Any], fds: list[int]) -> None:
        held = self._held.get(str(message["key"]))
        if held is not None:
            held.signal(int(message.get("signal") or signal.SIGKILL))

    def _stop(self, message: dict[str, Any], fds: list[int]) -> None:
        self._stopping = message["id"]
        for held in self._held.values():
            held.signal(signal.SIGKILL)
        self._stop_when_done()

    def _stop_when_done(self) -> None:
        if self._stopping is None or any(held.alive for held in self._held.values()):
            return
        exits = [{"key": held.key, "code": held.code, "finished_ns": held.finished_ns}
                 for held in self._held.values() if not held.dropped]
        self._answer({"op": "stopped", "id": self._stopping, "exits": exits})
        self._stopped = True

    # -- processes ---------------------------------------------------------------------

    def _reap(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wakeup_r, 4096):
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._ended(pid, exit_code_of_status(status), time.time_ns())

    def _ended(self, pid: int, code: int, finished_ns: int) -> None:
        if pid in self._runs:
            self._answer({"op": "ran", "id": self._runs.pop(pid), "code": code})
            return
        held = self._by_pid.pop(pid, None)
        if held is None:
            self._stash[pid] = (code, finished_ns)
            while len(self._stash) > _STASH:
                self._stash.popitem(last=False)
            return
        self._exited(held, code, finished_ns)

    def _exited(self, held: _Held, code: int, finished_ns: int) -> None:
        held.code, held.finished_ns = code, finished_ns
        if held.pidfd is not None:
            os.close(held.pidfd)
            held.pidfd = None
        if held.dropped:
            self._forget(held)
        elif self._stopping is not None:
            self._stop_when_done()
        elif self._greeted:  # otherwise its hello tells
            self._answer({"op": "exit", "key": held.key, "code": code,
                          "finished_ns": finished_ns})

    def _forget(self, held: _Held) -> None:
        self._stop_reading(held)
        held.close_all()
        self._held.pop(held.key, None)
        if self._by_pid.get(held.pid) is held:
            del self._by_pid[held.pid]

    # -- outputs while the daemon is away ----------------------------------------------

    def _read_outputs(self, held: _Held) -> None:
        for name in held.outputs():
            fd = held.fds[name]
            if fd in self._reading:
                continue
            os.set_blocking(fd, False)
            self._reading[fd] = (held, name)
            self._selector.register(fd, selectors.EVENT_READ,
                                    lambda fd=fd: self._read(fd))

    def _stop_reading(self, held: _Held) -> None:
        """Stop reading ``held``'s outputs; write out what it has of a line."""
        for name in held.outputs():
            fd = held.fds[name]
            if self._reading.pop(fd, None) is not None:
                self._selector.unregister(fd)
        for name, splitter in held.splitters.items():
            self._log(held, name, splitter.flush())
        held.splitters.clear()
        held.close_log()

    def _read(self, fd: int) -> None:
        held, name = self._reading[fd]
        try:
            data = os.read(fd, min(_READ, max(1, self._log_limit - held.away_bytes)))
        except BlockingIOError:
            return
        except OSError:  # EIO: a terminal whose processes are all gone
            data = b""
        if not data:
            self._reading.pop(fd)
            self._selector.unregister(fd)
            splitter = held.splitters.pop(name, None)
            if splitter is not None:
                self._log(held, name, splitter.flush())
            held.close(name)
            return
        if held.dropped or held.log_target is None:
            return
        self._log(held, name, held.splitters.setdefault(name, LineSplitter()).feed(data))
        held.away_bytes += len(data)
        if held.away_bytes >= self._log_limit:
            _say(f"{held.key}: {held.away_bytes} bytes logged while the daemon is away; "
                 "its output waits for the daemon")
            self._stop_reading(held)

    def _log(self, held: _Held, name: str, messages: list[bytes]) -> None:
        target = held.log_target
        if not messages or target is None or held.dropped:
            return
        try:
            if held.log is None:
                held.log = JSONLogFile(Path(target["path"]), int(target.get("max_size", 0)),
                                       int(target.get("max_files", 1)),
                                       lambda error: _say(f"{held.key}: the log: {error}"))
            held.log.write_lines(_STREAMS[name], time.time_ns(), messages)
        except OSError as error:
            _say(f"{held.key}: output dropped, the log cannot be written: {error}")


def _hung_up(connection: socket.socket) -> bool:
    poller = select.poll()
    poller.register(connection, select.POLLIN | select.POLLRDHUP)
    return any(events & (select.POLLHUP | select.POLLRDHUP | select.POLLERR)
               for _, events in poller.poll(0))


def _pidfd(pid: int) -> int | None:
    """A pidfd of our child ``pid`` (alive or a zombie); ``None`` when there is none."""
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _spawn(argv: list[str], env: dict[str, str], fds: list[tuple[int, int]]) -> int:
    """Start ``argv`` (looked up in ``env``'s PATH) with each descriptor at its target
    number, the signals this process ignores back to their defaults."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD) for fd, _ in fds]
    try:
        actions = [(os.POSIX_SPAWN_DUP2, source, target)
                   for source, (_, target) in zip(high, fds, strict=True)]
        ignored = [signum for signum in signal.valid_signals()
                   if signal.getsignal(signum) == signal.SIG_IGN]
        return os.posix_spawnp(argv[0], argv, env, file_actions=actions,
                               setsigdef=ignored, setsigmask=())
    finally:
        protocol.close_all(high)

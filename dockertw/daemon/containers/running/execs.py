"""``docker exec``: exec records and their runs, with no helper process per exec.

An exec is created against a running container (a record, ``POST
/containers/{id}/exec``) and started once (``POST /exec/{id}/start``): ``runc exec
--detach`` starts the process from the container's own ``config.json`` process (its
capabilities, rlimits, noNewPrivileges...) with the exec's command, environment, user,
working directory and terminal, and exits; the process is re-parented to the daemon
(a subreaper) and watched through a pidfd, its stdio held by the daemon as a
container's are (:mod:`dockertw.daemon.containers.running.stdio`).  Its output goes only to
the attached client, never to the container's log.

Exec processes live in the container's pid namespace, so they die with it; their
records stay (for ``GET /exec/{id}/json``) until the container is removed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred, maybeDeferred, succeed

from dockertw.daemon.containers.records.names import generate_id
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running import bundle as bundles
from dockertw.daemon.containers.running.health import ProbeRun
from dockertw.daemon.containers.running.keeping import exec_key
from dockertw.daemon.containers.running.lifecycle import Emit, Lifecycle
from dockertw.daemon.containers.running.running import Attachment, Running, chained
from dockertw.daemon.containers.running.stdio import console_directory, start_process
from dockertw.daemon.workers import Runner
from dockertw.errdefs import Conflict, InvalidParameter, NotFound, System
from dockertw.loglevel import Logger
from dockertw.runtime.runc import Runc, RuncError, Stdio
from dockertw.runtime.spec import ALL_CAPABILITIES, DEFAULT_PATH, ProcessUser, daemon_capabilities
from dockertw.streams.detachkeys import parse_detach_keys

__all__ = ["ExecService", "ExecRecord", "ExecRequest", "parse_exec_body", "exec_env",
           "exec_process"]

_log = Logger()
_READY_TIMEOUT = 10.0  # seconds a resize waits for the process to start (as moby)
_START_FAILED = 126  # the exit code of an exec that could not start (Docker 20.10)
_KEEP_ENDED = 300.0  # seconds an ended exec stays inspectable (moby's exec GC: 5 min)


@attrs.frozen
class ExecRequest:
    """The body of ``POST /containers/{id}/exec`` (Docker's ``ExecConfig``)."""

    cmd: tuple[str, ...]
    user: str = ""
    privileged: bool = False
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: str = ""
    env: tuple[str, ...] = ()
    working_dir: str = ""
    console_size: tuple[int, int] | None = None  # (height, width) of a TTY


def console_size(value: Any) -> tuple[int, int] | None:
    """``ConsoleSize`` (``[height, width]``) of an exec; ``None`` when absent or zero."""
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2
            and all(isinstance(v, int) and v >= 0 for v in value)):
        raise InvalidParameter("json: cannot unmarshal ConsoleSize: expected two "
                               "unsigned integers")
    return (value[0], value[1]) if any(value) else None


_EXEC_KEYS = {key.lower(): key for key in (
    "Cmd", "User", "Privileged", "Tty", "AttachStdin", "AttachStdout", "AttachStderr",
    "DetachKeys", "Env", "WorkingDir")}


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f"json: cannot unmarshal {field}: expected a list of strings")
    return tuple(value)


def parse_exec_body(body: Any) -> ExecRequest:
    """Check the exec config: 400 ``No exec command specified`` without ``Cmd``.  Keys
    match whatever their case, as Go's decoder does (docker-py sends ``detachKeys``)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("json: cannot unmarshal the exec config: expected an object")
    body = {_EXEC_KEYS.get(str(key).lower(), key): value for key, value in body.items()}
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    command = _strings(cmd, "Cmd")
    if not command:
        raise InvalidParameter("No exec command specified")
    return ExecRequest(
        cmd=command, user=str(body.get("User") or ""),
        privileged=bool(body.get("Privileged")), tty=bool(body.get("Tty")),
        attach_stdin=bool(body.get("AttachStdin")),
        attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")),
        detach_keys=str(body.get("DetachKeys") or ""), env=_strings(body.get("Env"), "Env"),
        working_dir=str(body.get("WorkingDir") or ""),
        console_size=console_size(body.get("ConsoleSize")))


def _replace_or_append(env: list[str], extra: Sequence[str]) -> list[str]:
    """moby's ``ReplaceOrAppendEnvValues``: same names replaced, new ones appended;
    a bare ``NAME`` (no ``=``) removes the variable."""
    result = list(env)
    for entry in extra:
        name = entry.split("=", 1)[0]
        index = next((i for i, e in enumerate(result) if e.split("=", 1)[0] == name), None)
        if "=" not in entry:
            if index is not None:
                del result[index]
        elif index is None:
            result.append(entry)
        else:
            result[index] = entry
    return result


def exec_env(container_env: Sequence[str], hostname: str, tty: bool,
             extra: Sequence[str]) -> list[str]:
    """The exec's environment as Docker builds it: PATH, HOSTNAME (and TERM with a
    TTY), the container's ``Config.Env`` over them, the exec's ``Env`` over that."""
    base = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if tty:
        base.append("TERM=xterm")
    return _replace_or_append(_replace_or_append(base, container_env), extra)


def exec_process(base: dict[str, Any], args: Sequence[str], *, env: Sequence[str],
                 cwd: str, tty: bool, user: ProcessUser | None, privileged: bool,
                 every_capability: Sequence[str] = ALL_CAPABILITIES,
                 size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The ``runc exec --process`` object: the container's process with the exec's
    command, environment, directory and terminal (of ``size``, height and width);
    its user when one is given; ``every_capability`` when privileged."""
    process = {key: value for key, value in base.items() if key != "consoleSize"}
    process.update(args=list(args), env=list(env), cwd=cwd or "/", terminal=tty)
    if tty and size is not None:
        process["consoleSize"] = {"height": size[0], "width": size[1]}
    if user is not None:
        process["user"] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            process["user"]["additionalGids"] = list(user.additional_gids)
    if privileged:
        kinds = process.get("capabilities") or {"bounding": [], "effective": [],
                                                 "permitted": []}
        process["capabilities"] = {kind: list(every_capability) for kind in kinds}
    return process


class _NoLog:
    """An exec's output is never logged."""

    size = 0

    def write_lines(self, stream: str, time_ns: int, messages: Any) -> None:
        pass

    def close(self) -> None:
        pass


@attrs.define(eq=False)
class ExecRecord:
    """One exec instance: its configuration and what became of it."""

    id: str
    container_id: str
    request: ExecRequest
    user: str  # the exec's user, or the container's
    working_dir: str
    env: list[str]
    detach_keys: bytes
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    run: Running | None = None
    ready: Deferred[None] = attrs.field(factory=Deferred)  # the process started (or not)
    container: Container | None = None
    ended_at: float | None = None  # reactor time of the end
    console_size: tuple[int, int] | None = None  # the start's, else the create's

    def end(self, code: int, now: float) -> None:
        """The process exited (or never started): ``code`` is its exit code."""
        self.running, self.exit_code, self.run, self.ended_at = False, code, None, now

    @property
    def entrypoint(self) -> str:
        return self.request.cmd[0]

    @property
    def args(self) -> list[str]:
        return list(self.request.cmd[1:])

    def command_line(self) -> str:
        """As Docker's event actions show it (``sh -c exit``; ``cat `` without args)."""
        return self.entrypoint + " " + " ".join(self.args)

    def inspect(self) -> dict[str, Any]:
        """``GET /exec/{id}/json`` (Docker's ``ExecInspect``)."""
        process: dict[str, Any] = {"tty": self.request.tty, "entrypoint": self.entrypoint,
                                   "arguments": self.args,
                                   "privileged": self.request.privileged}
        if self.user:
            process["user"] = self.user
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": process, "OpenStdin": self.request.attach_stdin,
                "OpenStderr": self.request.attach_stderr,
                "OpenStdout": self.request.attach_stdout, "CanRemove": False,
                "ContainerID": self.container_id,
                "DetachKeys": base64.b64encode(self.detach_keys).decode(),
                "Pid": self.pid}


def _check_active(container: Container, run: Running | None) -> None:
    """409 unless the container runs (and is neither paused nor restarting)."""
    state = container.state
    if not state.running or (run is None and not state.restarting):
        raise Conflict(f"Container {container.id} is not running")
    if state.paused:
        raise Conflict(f"Container {container.id} is paused, unpause the container "
                       "before exec")
    if state.restarting:
        raise Conflict(f"Container {container.id} is restarting, wait until the "
                       "container is running")


def _detach_keys(raw: str) -> bytes:
    try:
        return parse_detach_keys(raw) if raw else b""
    except ValueError:
        raise InvalidParameter(f"Invalid escape keys ({raw}) provided") from None


class ExecService:
    """The exec instances of every container: create, start, resize, inspect."""

    def __init__(self, store: ContainerStore, runs: Lifecycle, *, emit: Emit,
                 reader: Runner, reactor: Any, runc: Runc | None) -> None:
        self._store = store
        self._runs = runs
        self._emit = emit
        self._reader = reader
        self._reactor = reactor
        self._runc = runc
        self._records: dict[str, ExecRecord] = {}
        self._bases: dict[str, tuple[Running, dict[str, Any]]] = {}  # by container

    # -- records -----------------------------------------------------------------------

    def _record(self, exec_id: str) -> ExecRecord:
        record = self._records.get(exec_id)
        if record is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return record

    def running_ids(self, container_id: str) -> list[str]:
        """The execs running in a container (``ExecIDs`` of its inspect)."""
        return [r.id for r in list(self._records.values())
                if r.container_id == container_id and r.running]

    def forget(self, container_id: str) -> None:
        """Drop the records of a removed container."""
        self._bases.pop(container_id, None)
        for record in list(self._records.values()):
            if record.container_id == container_id:
                del self._records[record.id]

    def _now(self) -> float:
        return float(self._reactor.seconds()) if self._reactor is not None else 0.0

    def _collect(self) -> None:
        """Forget execs that ended over five minutes ago (as moby's exec GC does)."""
        horizon = self._now() - _KEEP_ENDED
        for record in list(self._records.values()):
            if record.ended_at is not None and record.ended_at < horizon:
                del self._records[record.id]

    def inspect(self, exec_id: str) -> dict[str, Any]:
        """``GET /exec/{id}/json``."""
        return self._record(exec_id).inspect()

    # -- create ------------------------------------------------------------------------

    def create(self, name: str, body: Any) -> Deferred[dict[str, Any]]:
        """``POST /containers/{name}/exec``: ``{"Id": ...}``; an ``exec_create`` event."""
        request = parse_exec_body(body)
        keys = _detach_keys(request.detach_keys)
        found = maybeDeferred(self._store.get, name)  # in memory: no thread hop

        def create(container: Container) -> dict[str, Any]:
            _check_active(container, self._runs.run_of(container.id))
            return {"Id": self._new_record(container, request, keys).id}

        return found.addCallback(create)

    def _new_record(self, container: Container, request: ExecRequest,
                    keys: bytes) -> ExecRecord:
        """Keep a new exec of ``container`` (an ``exec_create`` event)."""
        config = container.config
        hostname = str(config.get("Hostname") or container.id[:12])
        record = ExecRecord(
            id=generate_id(), container_id=container.id, request=request,
            user=request.user or str(config.get("User") or ""),
            working_dir=request.working_dir or str(config.get("WorkingDir") or ""),
            env=exec_env(config.get("Env") or (), hostname, request.tty, request.env),
            detach_keys=keys, container=container)
        self._collect()
        self._records[record.id] = record
        self._emit(container, "exec_create: " + record.command_line(), execID=record.id)
        return record

    async def probe(self, container: Container, command: Sequence[str],
                    output: Callable[[bytes], None]) -> ProbeRun:
        """Start a health probe, as moby's ``cmdProbe``: ``command`` as an exec with
        the container's user, directory and environment, without TTY or stdin, both
        outputs to ``output``; answers once its process runs."""
        request = ExecRequest(cmd=tuple(command), attach_stdout=True, attach_stderr=True)
        record = self._new_record(container, request, b"")
        attachment = Attachment({"stdout", "stderr"}, stdin=False, stdin_once=False)
        attachment.output = lambda entry: output(entry.data)
        await self._start(record.id, attachment, None)
        run = record.run
        if run is None:  # it ended at once
            return ProbeRun(succeed(record.exit_code or 0), lambda: None)

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                run.watcher.signal(signal.SIGKILL)

        return ProbeRun(chained(run.finished), kill)

    # -- start -------------------------------------------------------------------------

    def check(self, exec_id: str) -> Deferred[ExecRecord]:
        """The exec, when it may be started: 404 unknown, 409 when its container does
        not run (what Docker checks before hijacking the connection)."""
        record = self._record(exec_id)
        found = maybeDeferred(self._store.get, record.container_id)

        def check(container: Container) -> ExecRecord:
            _check_active(container, self._runs.run_of(container.id))
            record.container = container
            return record

        return found.addCallback(check)

    def start(self, exec_id: str, attachment: Attachment | None,
              size: tuple[int, int] | None = None) -> Deferred[None]:
        """``POST /exec/{id}/start``: fires once the process runs (or failed to start);
        ``attachment`` (``None`` detached) gets its stdio until it exits; ``size``
        overrides the create's ``ConsoleSize``."""
        return ensureDeferred(self._start(exec_id, attachment, size))

    async def _start(self, exec_id: str, attachment: Attachment | None,
                     size: tuple[int, int] | None) -> None:
        record = await self.check(exec_id)
        record.console_size = size or record.request.console_size
        if record.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        if record.started:
            raise Conflict(f"Error: Exec command {exec_id} is already running")
        record.started = record.running = True
        container = record.container
        assert container is not None
        self._emit(container, "exec_start: " + record.command_line(), execID=record.id)
        try:
            await self._launch(record, container, attachment)
        except BaseException:
            record.end(_START_FAILED, self._now())
            if not record.ready.called:
                record.ready.callback(None)
            raise

    def _runc_or_fail(self) -> Runc:
        if self._runc is None or self._reactor is None:
            raise System("this engine cannot run containers")
        return self._runc

    async def _launch(self, record: ExecRecord, container: Container,
                      attachment: Attachment | None) -> None:
        runc = self._runc_or_fail()
        directory = self._store.root / container.id
        process = await self._process(record, container, directory)
        pid_file, log = directory / f"exec-{record.id}.pid", directory / f"exec-{record.id}.log"

        def launch(stdio: Stdio, console: Path | None) -> Awaitable[int]:
            return runc.exec(container.id, process, stdio, pid_file=pid_file,
                             log=log, console_socket=console)

        try:
            pid, stdio = await start_process(launch, self._reactor, tty=record.request.tty,
                                             open_stdin=record.request.attach_stdin
                                             and attachment is not None,
                                             console_dir=console_directory(self._store.root))
        except RuncError as error:
            raise _start_error(str(error)) from None
        finally:
            for path in (pid_file, log):
                with contextlib.suppress(OSError):
                    path.unlink()
        key = exec_key(record.id)
        try:
            watch = await self._runs.keeper.keep(key, pid, stdio, tty=record.request.tty,
                                                 log=None)
        except BaseException:
            stdio.close()
            raise
        run = Running(self._reactor, watch, stdio, _NoLog())
        if run.stdin is not None:
            run.stdin.on_closed = lambda: self._runs.keeper.input_closed(key)
        self._started(record, pid, run, attachment)

    async def _process(self, record: ExecRecord, container: Container,
                       directory: Path) -> bytes:
        """The process object for ``runc exec``, as JSON: the container's own process
        (read from its bundle once per run) with the exec's settings."""
        base = await self._base_process(container.id, directory)
        user = None
        if record.request.user:  # reads the container's /etc/passwd
            user = await self._reader(
                lambda: bundles.resolve_user(bundles.rootfs_of(directory), record.user))
        privileged = record.request.privileged
        process = exec_process(
            base, record.request.cmd, env=record.env, cwd=record.working_dir,
            tty=record.request.tty, user=user, privileged=privileged,
            every_capability=daemon_capabilities()
            if privileged else ALL_CAPABILITIES, size=record.console_size)
        return json.dumps(process).encode()

    async def _base_process(self, container_id: str, directory: Path) -> dict[str, Any]:
        """The ``process`` of the container's runtime spec, kept for as long as it runs."""
        run = self._runs.run_of(container_id)
        kept = self._bases.get(container_id)
        if kept is not None and kept[0] is run:
            return kept[1]
        base = await self._reader(lambda: _read_base_process(directory))
        if run is not None:
            self._bases[container_id] = (run, base)
        return base

    def _started(self, record: ExecRecord, pid: int, run: Running,
                 attachment: Attachment | None) -> None:
        record.pid, record.run = pid, run
        if attachment is not None:
            container = record.container

            def detached() -> None:
                if container is not None:
                    self._emit(container, "exec_detach", execID=record.id)

            attachment.on_detach = detached  # before joining: early input may detach
            run.attachments.append(attachment)
            attachment.join(run)
        record.ready.callback(None)
        ensureDeferred(self._watch(record, run)).addErrback(
            lambda failure: _log.failure("exec {id}", failure, id=record.id))

    async def _watch(self, record: ExecRecord, run: Running) -> None:
        """Wait for the process to exit and its output to drain; record the exit."""
        code = await run.exit_code(self._reactor)
        run.close()
        self._runs.keeper.release(exec_key(record.id))
        record.end(code, self._now())
        container = record.container
        if container is not None:
            self._emit(container, "exec_die", execID=record.id, exitCode=str(code))
        for attachment in run.attachments:
            attachment.end()
        run.finished.callback(code)

    # -- resize ------------------------------------------------------------------------

    def resize(self, exec_id: str, height: int, width: int) -> Deferred[None]:
        """``POST /exec/{id}/resize``: the exec's terminal size (once it started)."""
        return ensureDeferred(self._resize(exec_id, height, width))

    async def _resize(self, exec_id: str, height: int, width: int) -> None:
        record = await self.check(exec_id)
        ready = chained(record.ready)
        timer = self._reactor.callLater(_READY_TIMEOUT, ready.cancel)
        try:
            await ready
        except CancelledError:
            raise System("timeout waiting for exec session ready") from None
        finally:
            if timer.active():
                timer.cancel()
        run = record.run
        if run is None:
            raise NotFound("no such exec")
        try:
            run.resize(height, width)
        except OSError as error:
            raise System(f"resize: {error.strerror}") from None


def _read_base_process(directory: Path) -> dict[str, Any]:
    """The ``process`` object of the container's ``config.json`` (blocking)."""
    bundle = bundles.bundle_of(directory)
    try:
        process: dict[str, Any] = json.loads((bundle / "config.json").read_bytes())["process"]
    except (OSError, ValueError, KeyError) as error:
        raise System(f"reading the container's runtime spec: {error}") from None
    return process


def _start_error(message: str) -> Exception:
    """runc's failure as Docker words it: ``OCI runtime exec failed: ...: unknown``."""
    return System(f"OCI runtime exec failed: {message}: unknown")


"""Container routes: create, list, inspect, remove, rename, prune, start, stop, kill,
restart, wait, logs, attach, resize, top and stats."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import IO, Any, Protocol, cast

from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from zope.interface import implementer

from dockertw.api import httputils
from dockertw.api.attaching import connect_attachment
from dockertw.api.encoded import EncodedViews
from dockertw.api.hijack import RawStream, hijack, upgrade_head
from dockertw.api.responses import Empty, Json, Text
from dockertw.api.router import ApiCall, Route
from dockertw.api.routers.system import parse_timestamp
from dockertw.api.tarstream import start_tar, stream_ended
from dockertw.api.versions import since
from dockertw.api.views import containers as views
from dockertw.daemon.containers.copying import CopyOptions, StartArchive
from dockertw.daemon.containers.records.listing import LIST_FILTERS, PRUNE_FILTERS
from dockertw.daemon.containers.running.logs import Framing, LogSink
from dockertw.daemon.containers.running.running import Attachment
from dockertw.daemon.containers.service import CreateOptions, ListOptions, LogOptions
from dockertw.daemon.containers.snapshots import CommitOptions
from dockertw.daemon.containers.usage.statsstream import StatsOptions
from dockertw.daemon.jsonlog import LogEntry
from dockertw.daemon.pump import Begin, Pump
from dockertw.errdefs import DockerError, InvalidParameter
from dockertw.filters import Filters
from dockertw.streams.detachkeys import DEFAULT_DETACH_KEYS, parse_detach_keys
from dockertw.streams.stdcopy import Stream, encode_frame

__all__ = ["ContainerRouter", "ContainerBackend", "RunBackend", "CopyBackend", "SnapshotBackend",
           "MonitorBackend"]


class ContainerBackend(Protocol):
    """Records of containers."""

    def create(self, body: Any, options: CreateOptions) -> Deferred[dict[str, Any]]: ...
    def list_containers(self, options: ListOptions) -> Deferred[list[dict[str, Any]]]: ...
    def inspect(self, name: str, size: bool = False) -> Deferred[dict[str, Any]]: ...
    def remove(self, name: str, force: bool = False, volumes: bool = False,
               link: bool = False) -> Deferred[None]: ...
    def rename(self, old: str, new: str) -> Deferred[None]: ...
    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]: ...
    def update(self, name: str, body: Any) -> Deferred[dict[str, Any]]: ...


class RunBackend(Protocol):
    """Runs of containers: start, stop, wait, logs, attach."""

    def pause(self, name: str) -> Deferred[None]: ...
    def unpause(self, name: str) -> Deferred[None]: ...
    def start(self, name: str) -> Deferred[bool]: ...
    def stop(self, name: str, timeout: int | None = None,
             raw_signal: str = "") -> Deferred[None]: ...
    def restart(self, name: str, timeout: int | None = None,
                raw_signal: str = "") -> Deferred[None]: ...
    def kill(self, name: str, raw_signal: str = "") -> Deferred[None]: ...
    def wait(self, name: str, condition: str,
             ready: Callable[[], None]) -> Deferred[dict[str, Any]]: ...
    def logs(self, name: str, options: LogOptions,
             send: Callable[[LogEntry], None]) -> Deferred[bool]: ...
    def attach(self, name: str, stdin: bool, stdout: bool, stderr: bool,
               detach_keys: bytes = DEFAULT_DETACH_KEYS
               ) -> Deferred[tuple[Attachment, bool]]: ...
    def resize(self, name: str, height: int, width: int) -> Deferred[None]: ...


class CopyBackend(Protocol):
    """``docker cp``: paths of a container's root filesystem."""

    def stat_path(self, name: str, path: str) -> Deferred[dict[str, Any]]: ...
    def archive(self, name: str, path: str, start: StartArchive,
                encoding: str = "") -> Deferred[None]: ...
    def extract(self, name: str, options: CopyOptions, body: IO[bytes]
                ) -> Deferred[None]: ...


class SnapshotBackend(Protocol):
    """What a container's root filesystem became: diff, export, commit."""

    def changes(self, name: str) -> Deferred[list[dict[str, Any]] | None]: ...
    def export(self, name: str, begin: Begin) -> Deferred[None]: ...
    def commit(self, options: CommitOptions) -> Deferred[str]: ...


class MonitorBackend(Protocol):
    """What runs in a container and what it uses: top, stats."""

    def top(self, name: str, ps_args: str = "") -> Deferred[dict[str, Any]]: ...
    def stats(self, name: str, options: StatsOptions,
              send: Callable[[dict[str, Any]], None],
              ready: Callable[[], None]) -> Deferred[None]: ...


def _limit(raw: str) -> int:
    """``limit``: an integer (Docker answers 500 for junk; a 400 here)."""
    if not raw:
        return -1
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


def _timeout(raw: str) -> int | None:
    """``t``: seconds (``None`` for the container's own StopTimeout)."""
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax') from None


def _atoi(raw: str) -> int:
    """An integer as Go's ``strconv.Atoi`` reads it; 400 with its message otherwise."""
    digits = raw[1:] if raw[:1] in ("+", "-") else raw
    if not digits.isdigit() or not digits.isascii():
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax')
    return int(raw)


def _stop_signal(call: ApiCall) -> str:
    """``signal`` of stop and restart (API 1.42); the container's StopSignal before."""
    return call.query("signal") if since(call.version, "1.42") else ""


def _detach_keys(raw: str) -> bytes:
    """``detachKeys`` (Docker's default ``ctrl-p,ctrl-q`` when empty)."""
    if not raw:
        return DEFAULT_DETACH_KEYS
    try:
        return parse_detach_keys(raw)
    except ValueError:
        raise InvalidParameter(f"Invalid detach keys ({raw}) provided") from None


def _tail(raw: str) -> int | None:
    if raw in ("", "all"):
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return None if value < 0 else value


class _StreamLogSink(LogSink):
    """A replayed log written to a hijacked connection."""

    def __init__(self, stream: RawStream, framing: Framing) -> None:
        super().__init__(framing)
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)


# Seconds between an attach's head and its log replay.  Some clients (docker-py) read
# the head through a buffered reader, then read the bare socket: output that came in
# the same read as the head is lost to them.  Docker's replay starts later, after it
# opened and decoded the log; this keeps the two apart as reliably.
_HEAD_APART = 0.02


def _hijack_attach(call: ApiCall, tty: bool) -> RawStream:
    """The attach connection taken over: ``101`` when the client asked to upgrade (then
    multiplexed output says so from API 1.42), else ``200`` and a raw stream."""
    upgrade = call.request.getHeader(b"upgrade") is not None
    content_type = views.stream_content_type(tty, call.version) if upgrade \
        else views.RAW_STREAM
    return hijack(call.request, upgrade_head(content_type, upgrade))


@implementer(IPushProducer)
class _LogWriter(LogSink):
    """Writes a log to the response, pausing the reader while the client lags behind.

    An error after the response started goes in-band on stream 3, as Docker's does.
    """

    def __init__(self, request: IRequest, framing: Framing) -> None:
        super().__init__(framing)
        self._request = cast(server.Request, request)
        self._started = False
        self._paused: Deferred[None] | None = None
        self._request.registerProducer(self, True)

    def write(self, data: bytes) -> Deferred[None] | None:
        self._started = True
        self._request.write(data)
        return self._paused

    def pauseProducing(self) -> None:  # noqa: N802 - IPushProducer
        if self._paused is None:
            self._paused = Deferred()

    def resumeProducing(self) -> None:  # noqa: N802 - IPushProducer
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:  # noqa: N802 - IPushProducer
        self.resumeProducing()

    def done(self, result: Any) -> Any:
        """Unregister; turn a failure after the start into an in-band error."""
        self.resumeProducing()
        if self._request.channel is None:  # the client went away
            return None if isinstance(result, Failure) else result
        self._request.unregisterProducer()
        if not isinstance(result, Failure) or not self._started \
                or result.check(CancelledError):
            return result
        message = f"Error grabbing logs: {result.getErrorMessage()}".encode()
        self._request.write(encode_frame(Stream.SYSTEMERR, message))
        return None



_PATH_STAT = b"X-Docker-Container-Path-Stat"
_JSON = b"application/json"


def _path_stat_header(request: IRequest, found: dict[str, Any]) -> None:
    encoded = base64.b64encode(json.dumps(found).encode())
    request.setHeader(_PATH_STAT, encoded)


def _archive_path(call: ApiCall) -> str:
    """``path`` (required), as moby's ``ArchiveFormValues``."""
    path = call.query("path")
    if not path:
        raise InvalidParameter("bad parameter: pathcannot be empty")
    return path


def negotiate_encoding(accept: str) -> str:
    """``gzip``, ``deflate`` or ``""`` for an ``Accept-Encoding`` value: the offer
    with the highest quality, ``gzip`` on a tie (as moby's negotiation)."""
    qualities: dict[str, float] = {}
    for item in accept.split(","):
        coding, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[coding.strip().lower()] = quality
    best, chosen = 0.0, ""
    for offer in ("gzip", "deflate"):
        quality = qualities.get(offer, qualities.get("*", 0.0))
        if quality > best:
            best, chosen = quality, offer
    return chosen


def _start_archive(request: IRequest, encoding: str) -> StartArchive:
    """The stat header, then the tar (both set in the reactor thread)."""
    def start(found: dict[str, Any]) -> Begin:
        tar = start_tar(request)

        def begin(pump: Pump) -> Callable[[bytes], None]:
            _path_stat_header(request, found)
            if encoding:
                request.setHeader(b"content-encoding", encoding.encode())
            return cast(Callable[[bytes], None], tar(pump))

        return begin

    return start


def _no_content(_: object) -> Empty:
    return Empty(204)


class ContainerRouter:
    def __init__(self, containers: ContainerBackend, runs: RunBackend, copies: CopyBackend,
                 snapshots: SnapshotBackend, monitor: MonitorBackend,
                 clock: IReactorTime) -> None:
        self._clock = clock
        self._containers = containers
        self._runs = runs
        self._copies = copies
        self._snapshots = snapshots
        self._monitor = monitor
        self._inspected = EncodedViews(views.inspect_view)
        self._listed = EncodedViews(views.summary_view, suffix=b"")

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/containers/json", self.list_containers),
            Route("GET", "/containers/<path:name>/json", self.inspect),
            Route("POST", "/containers/create", self.create),
            Route("POST", "/containers/prune", self.prune),
            Route("POST", "/containers/<path:name>/rename", self.rename),
            Route("DELETE", "/containers/<path:name>", self.remove),
            Route("POST", "/containers/<path:name>/start", self.start),
            Route("POST", "/containers/<path:name>/stop", self.stop),
            Route("POST", "/containers/<path:name>/restart", self.restart),
            Route("POST", "/containers/<path:name>/kill", self.kill),
            Route("POST", "/containers/<path:name>/wait", self.wait),
            Route("GET", "/containers/<path:name>/logs", self.logs),
            Route("POST", "/containers/<path:name>/attach", self.attach),
            Route("POST", "/containers/<path:name>/update", self.update),
            Route("POST", "/containers/<path:name>/pause", self.pause),
            Route("POST", "/commit", self.commit),
            Route("GET", "/containers/<path:name>/changes", self.changes),
            Route("GET", "/containers/<path:name>/export", self.export),
            Route("HEAD", "/containers/<path:name>/archive", self.archive_head),
            Route("GET", "/containers/<path:name>/archive", self.archive_get),
            Route("PUT", "/containers/<path:name>/archive", self.archive_put,
                  streams_body=True),
            Route("POST", "/containers/<path:name>/unpause", self.unpause),
            Route("POST", "/containers/<path:name>/resize", self.resize),
            Route("GET", "/containers/<path:name>/top", self.top),
            Route("GET", "/containers/<path:name>/stats", self.stats),
        ]

    def create(self, call: ApiCall) -> Deferred[Json]:
        platform = call.query("platform") if since(call.version, "1.41") else ""
        options = CreateOptions(name=call.query("name"), platform=platform)
        body, warnings = views.create_body(call.json_body(), call.version)

        def answer(result: dict[str, Any]) -> Json:
            if warnings:
                result["Warnings"] = [*(result.get("Warnings") or []), *warnings]
            return Json(result, 201)

        return self._containers.create(body, options).addCallback(answer)

    def list_containers(self, call: ApiCall) -> Deferred[Any]:
        options = ListOptions(all=call.bool("all"), limit=_limit(call.query("limit")),
                              size=call.bool("size"), filters=call.filters(LIST_FILTERS))
        listed = self._containers.list_containers(options)
        if options.size:
            return listed.addCallback(
                lambda items: [views.summary_view(item, call.version) for item in items])
        return listed.addCallback(self._list_body, call.version)

    def _list_body(self, items: list[dict[str, Any]], version: str) -> Text:
        """The list, each item's view encoded once while the engine shares the item."""
        encoded = [self._listed.encoded(item["Id"], item, version) for item in items]
        return Text(b"[" + b",".join(encoded) + b"]\n", _JSON)

    def inspect(self, call: ApiCall) -> Deferred[Any]:
        size = call.bool("size")
        inspected = self._containers.inspect(call.params["name"], size=size)
        if size:
            return inspected.addCallback(views.inspect_view, call.version)
        return inspected.addCallback(
            lambda document: Text(self._inspected.encoded(document["Id"], document,
                                                          call.version), _JSON))

    def remove(self, call: ApiCall) -> Deferred[Empty]:
        removed = self._containers.remove(call.params["name"], force=call.bool("force"),
                                          volumes=call.bool("v"), link=call.bool("link"))
        return removed.addCallback(_no_content)

    def rename(self, call: ApiCall) -> Deferred[Empty]:
        renamed = self._containers.rename(call.params["name"], call.query("name"))
        return renamed.addCallback(_no_content)

    def prune(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._containers.prune(call.filters(PRUNE_FILTERS))

    def update(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._containers.update(call.params["name"],
                                       views.update_body(call.json_body(), call.version))

    def commit(self, call: ApiCall) -> Deferred[Json]:
        body = call.json_body()
        if body is not None and not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be a container config")
        options = CommitOptions(
            container=call.query("container"), repository=call.query("repo"),
            tag=call.query("tag"), author=call.query("author"),
            comment=call.query("comment"), pause=call.bool("pause", default=True),
            changes=tuple(call.query_all("changes")), config=body or {})
        committed = self._snapshots.commit(options)
        return committed.addCallback(lambda image_id: Json({"Id": image_id}, 201))

    def export(self, call: ApiCall) -> Deferred[None]:
        exported = self._snapshots.export(call.params["name"], start_tar(call.request))
        return exported.addBoth(stream_ended, call.request)

    def archive_head(self, call: ApiCall) -> Deferred[Empty]:
        def answer(found: dict[str, Any]) -> Empty:
            _path_stat_header(call.request, found)
            return Empty(200)

        stated = self._copies.stat_path(call.params["name"], _archive_path(call))
        return stated.addCallback(answer)

    def archive_get(self, call: ApiCall) -> Deferred[None]:
        accept = call.request.getHeader(b"accept-encoding") or b""
        encoding = negotiate_encoding(accept.decode("latin-1"))
        archived = self._copies.archive(call.params["name"], _archive_path(call),
                                        _start_archive(call.request, encoding), encoding)
        return archived.addBoth(stream_ended, call.request)

    def archive_put(self, call: ApiCall) -> Deferred[Empty]:
        options = CopyOptions(path=_archive_path(call),
                              no_overwrite_dir_non_dir=call.bool("noOverwriteDirNonDir"),
                              copy_uid_gid=call.bool("copyUIDGID"))
        body = call.request.content  # a BodyPipe: read as it arrives
        extracted = self._copies.extract(call.params["name"], options, body)
        return extracted.addCallback(lambda _: Empty(200))

    def changes(self, call: ApiCall) -> Deferred[Json]:
        return self._snapshots.changes(call.params["name"]).addCallback(Json)

    def pause(self, call: ApiCall) -> Deferred[Empty]:
        return self._runs.pause(call.params["name"]).addCallback(_no_content)

    def unpause(self, call: ApiCall) -> Deferred[Empty]:
        return self._runs.unpause(call.params["name"]).addCallback(_no_content)

    def start(self, call: ApiCall) -> Deferred[Empty]:
        length = call.request.getHeader(b"content-length")
        chunked = call.request.getHeader(b"transfer-encoding")
        if (length and int(length) > 7) or chunked:
            raise InvalidParameter("starting container with non-empty request body was "
                                   "deprecated since API v1.22 and removed in v1.24")
        started = self._runs.start(call.params["name"])
        return started.addCallback(lambda done: Empty(204 if done else 304))

    def stop(self, call: ApiCall) -> Deferred[Empty]:
        stopped = self._runs.stop(call.params["name"], _timeout(call.query("t")),
                                  _stop_signal(call))
        return stopped.addCallback(_no_content)

    def restart(self, call: ApiCall) -> Deferred[Empty]:
        done = self._runs.restart(call.params["name"], _timeout(call.query("t")),
                                  _stop_signal(call))
        return done.addCallback(_no_content)

    def kill(self, call: ApiCall) -> Deferred[Empty]:
        killed = self._runs.kill(call.params["name"], call.query("signal"))
        return killed.addCallback(_no_content)

    def wait(self, call: ApiCall) -> Deferred[None]:
        request = call.request

        def ready() -> None:
            request.setHeader(b"content-type", b"application/json")
            request.write(b"")

        def answer(result: dict[str, Any]) -> None:
            request.write(httputils.encode_json(result))

        waited = self._runs.wait(call.params["name"],
                                       call.query("condition") or "not-running", ready)
        return waited.addCallback(answer)

    def logs(self, call: ApiCall) -> Deferred[None]:
        options = LogOptions(
            stdout=call.bool("stdout"), stderr=call.bool("stderr"),
            follow=call.bool("follow"),
            since_ns=parse_timestamp(call.query("since"), "since") or 0,
            until_ns=parse_timestamp(call.query("until"), "until"),
            tail=_tail(call.query("tail")))
        request = call.request
        timestamps = call.bool("timestamps")
        if not (options.stdout or options.stderr):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        inspected = self._containers.inspect(call.params["name"])

        def stream(container: dict[str, Any]) -> Deferred[bool]:
            tty = bool(container["Config"].get("Tty"))
            request.setHeader(b"content-type", views.stream_content_type(tty, call.version))
            framing = Framing(tty=tty, timestamps=timestamps, coalesce=not options.follow)
            writer = _LogWriter(request, framing)
            sent = self._runs.logs(container["Id"], options, writer)
            return sent.addBoth(writer.done)

        return inspected.addCallback(stream).addCallback(lambda _: None)

    def resize(self, call: ApiCall) -> Deferred[Empty]:
        height, width = _atoi(call.query("h")), _atoi(call.query("w"))
        resized = self._runs.resize(call.params["name"], height, width)
        return resized.addCallback(lambda _: Empty(200))

    def attach(self, call: ApiCall) -> Deferred[None]:
        if call.bool("logs"):
            return ensureDeferred(self._attach_with_logs(call))
        attached = self._runs.attach(call.params["name"], call.bool("stdin"),
                                           call.bool("stdout"), call.bool("stderr"),
                                           _detach_keys(call.query("detachKeys")))

        def connect(result: tuple[Attachment, bool]) -> Deferred[None]:
            attachment, tty = result
            return connect_attachment(_hijack_attach(call, tty), attachment, mux=not tty)

        return attached.addCallback(connect)

    async def _attach_with_logs(self, call: ApiCall) -> None:
        """``logs=1``: the log so far first, then (``stream=1``) the live session, as
        moby (output in between is not sent twice, and may be missed, as there)."""
        detach_keys = _detach_keys(call.query("detachKeys"))
        container = await self._containers.inspect(call.params["name"])
        stdout, stderr = call.bool("stdout"), call.bool("stderr")
        attachment = None
        if call.bool("stream"):
            attachment, _ = await self._runs.attach(
                container["Id"], call.bool("stdin"), stdout, stderr, detach_keys)
        tty = bool(container["Config"].get("Tty"))
        stream = _hijack_attach(call, tty)
        await deferLater(self._clock, _HEAD_APART, lambda: None)
        sink = _StreamLogSink(stream, Framing(tty=tty, timestamps=False))
        with contextlib.suppress(DockerError):  # a log driver that cannot be read
            await self._runs.logs(container["Id"],
                                        LogOptions(stdout=stdout, stderr=stderr), sink)
        if attachment is None:
            stream.close()
            return
        await connect_attachment(stream, attachment, mux=not tty)

    def top(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._monitor.top(call.params["name"], call.query("ps_args"))

    def stats(self, call: ApiCall) -> Deferred[None]:
        one_shot = call.bool("one-shot") and since(call.version, "1.41")
        options = StatsOptions(stream=call.bool("stream", default=True), one_shot=one_shot)
        request = cast(server.Request, call.request)

        def ready() -> None:
            if not options.stream:
                request.setHeader(b"content-type", b"application/json")
                return
            request.defaultContentType = None  # moby's stream has no Content-Type,
            request.write(b"")  # and its headers go out at once

        def send(shown: dict[str, Any]) -> None:
            request.write(httputils.encode_json(shown))

        return self._monitor.stats(call.params["name"], options, send, ready)

"""Exec routes: create, start (hijacked or detached), resize and inspect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from dockertw.api.attaching import connect_attachment
from dockertw.api.hijack import hijack, upgrade_head
from dockertw.api.responses import Empty, Json
from dockertw.api.router import ApiCall, Route
from dockertw.api.views import containers as views
from dockertw.daemon.containers.running.execs import ExecRecord, console_size
from dockertw.daemon.containers.running.running import Attachment
from dockertw.errdefs import InvalidParameter
from dockertw.streams.detachkeys import DEFAULT_DETACH_KEYS
from dockertw.streams.stdcopy import Stream, encode_frame

__all__ = ["ExecRouter", "ExecBackend"]

# Headers Docker copies from the response writer onto the hijacked answer.
_COPIED_HEADERS = (b"Api-Version", b"Docker-Experimental", b"Ostype", b"Server")


class ExecBackend(Protocol):
    def create(self, name: str, body: Any) -> Deferred[dict[str, Any]]: ...
    def check(self, exec_id: str) -> Deferred[ExecRecord]: ...
    def start(self, exec_id: str, attachment: Attachment | None,
              size: tuple[int, int] | None = None) -> Deferred[None]: ...
    def resize(self, exec_id: str, height: int, width: int) -> Deferred[None]: ...
    def inspect(self, exec_id: str) -> dict[str, Any]: ...


def _size(raw: str) -> int:
    """``h``/``w``: integers as Go's ``strconv.Atoi`` reads them (400 otherwise)."""
    digits = raw[1:] if raw[:1] in ("+", "-") else raw
    if not digits.isdigit() or not digits.isascii():
        raise InvalidParameter(f'strconv.Atoi: parsing "{raw}": invalid syntax')
    return int(raw)


@attrs.frozen
class _StartOptions:
    detach: bool = False
    tty: bool = False
    size: tuple[int, int] | None = None


def _start_options(body: Any) -> _StartOptions:
    """``Detach``, ``Tty`` and ``ConsoleSize`` of the ``ExecStartCheck`` body."""
    if body is None:
        return _StartOptions()
    if not isinstance(body, dict):
        raise InvalidParameter("json: cannot unmarshal the exec start config: expected "
                               "an object")
    return _StartOptions(bool(body.get("Detach")), bool(body.get("Tty")),
                         console_size(body.get("ConsoleSize")))


def _copied_headers(call: ApiCall) -> tuple[tuple[bytes, bytes], ...]:
    headers = call.request.responseHeaders
    return tuple((name, value) for name in _COPIED_HEADERS
                 for value in headers.getRawHeaders(name, []))


def _attachment(record: ExecRecord) -> Attachment:
    request = record.request
    streams = {s for s, wanted in (("stdout", request.attach_stdout),
                                   ("stderr", request.attach_stderr)) if wanted}
    return Attachment(streams, request.attach_stdin, stdin_once=True, tty=request.tty,
                      detach_keys=record.detach_keys or DEFAULT_DETACH_KEYS)


class ExecRouter:
    def __init__(self, execs: ExecBackend) -> None:
        self._execs = execs

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/containers/<path:name>/exec", self.create),
            Route("POST", "/exec/<path:name>/start", self.start),
            Route("POST", "/exec/<path:name>/resize", self.resize),
            Route("GET", "/exec/<path:name>/json", self.inspect),
        ]

    def create(self, call: ApiCall) -> Deferred[Json]:
        created = self._execs.create(call.params["name"],
                                     views.exec_body(call.json_body(), call.version))
        return created.addCallback(lambda result: Json(result, 201))

    def inspect(self, call: ApiCall) -> dict[str, Any]:
        return self._execs.inspect(call.params["name"])

    def resize(self, call: ApiCall) -> Deferred[Empty]:
        height, width = _size(call.query("h")), _size(call.query("w"))
        resized = self._execs.resize(call.params["name"], height, width)
        return resized.addCallback(lambda _: Empty(200))

    def start(self, call: ApiCall) -> Deferred[Any]:
        options = _start_options(views.exec_start_body(call.json_body(), call.version))
        exec_id = call.params["name"]
        if options.detach:
            started = self._execs.start(exec_id, None, options.size)
            return started.addCallback(lambda _: Empty(200))
        checked = self._execs.check(exec_id)  # errors before the hijack are plain JSON
        return checked.addCallback(lambda record: self._run_attached(call, record, options))

    def _run_attached(self, call: ApiCall, record: ExecRecord, options: _StartOptions
                      ) -> Deferred[None]:
        tty = options.tty
        upgrade = call.request.getHeader(b"upgrade") is not None
        content_type = views.stream_content_type(tty, call.version) if upgrade \
            else views.RAW_STREAM
        head = upgrade_head(content_type, upgrade, _copied_headers(call))
        stream = hijack(call.request, head)
        attachment = _attachment(record)
        done = connect_attachment(stream, attachment, mux=not tty)

        def failed(failure: Failure) -> None:
            text = failure.getErrorMessage().encode() + b"\r\n"
            stream.write(text if tty else encode_frame(Stream.STDOUT, text))
            stream.close()

        self._execs.start(record.id, attachment, options.size).addErrback(failed)
        return done

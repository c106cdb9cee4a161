"""Routes, router classes and the one function that turns them into a Klein app.

A router is any object with a ``routes()`` method returning :class:`Route` values, as
moby's ``router.Router``.  :func:`build_app` serves every route bare and under
``/vX.Y``, runs the version middleware and maps typed errors to statuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, cast
from urllib.parse import unquote_to_bytes

import attrs
from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as _NoMethod
from werkzeug.exceptions import NotFound as _NoRoute
from werkzeug.routing import BaseConverter

from dockertw import __version__, errdefs, versions
from dockertw.api import httputils
from dockertw.api.httpstatus import status_for
from dockertw.api.responses import Empty, Json, Text
from dockertw.errdefs import DockerError, InvalidParameter
from dockertw.filters import Filters
from dockertw.loglevel import Logger

__all__ = ["Route", "Router", "ApiConfig", "ApiCall", "ApiResource", "build_app",
           "build_resource", "route_name"]

_log = Logger()

Handler = Callable[["ApiCall"], Any]

EXPERIMENTAL_DISABLED = (
    "This experimental feature is disabled by default. Start the Docker daemon in "
    "experimental mode in order to enable it."
)
_PAGE_NOT_FOUND = b'{"message":"page not found"}\n'


@attrs.frozen
class Route:
    """One method and path served by ``handler``.

    ``path`` uses werkzeug syntax (``/containers/<path:name>/json``); ``min_version``
    hides the route from older API versions; ``experimental`` routes answer 501 unless
    the daemon runs with ``--experimental``.  A ``streams_body`` handler is called
    once the headers are in and reads ``request.content`` (a
    :class:`~dockertw.daemon.bodypipe.BodyPipe`, from a worker thread) while the body
    still arrives; it must read it sequentially.  ``name`` is how policies and
    metrics call the route (see :func:`route_name`; empty: derived).
    """

    method: str
    path: str
    handler: Handler
    min_version: str | None = None
    experimental: bool = False
    streams_body: bool = False
    name: str = ""


def route_name(route: Route) -> str:
    """The route's name: ``route.name``, or ``<router module>.<handler>`` with a
    ``_<module>`` suffix dropped (``ContainerRouter.list_containers`` in
    ``routers/containers.py`` is ``containers.list``, ``ExecRouter.start`` is
    ``exec.start``)."""
    if route.name:
        return route.name
    handler = route.handler
    owner = getattr(handler, "__self__", None)
    module = (type(owner) if owner is not None else handler).__module__.rsplit(".", 1)[-1]
    action = getattr(handler, "__name__", "handler").removesuffix(f"_{module}")
    return f"{module}.{action}"


class Router(Protocol):
    def routes(self) -> Sequence[Route]: ...


@attrs.frozen
class ApiConfig:
    """What the version middleware needs to know about the daemon."""

    max_version: str = versions.MAX_API_VERSION
    min_version: str = versions.MIN_API_VERSION
    experimental: bool = False
    os_type: str = "linux"
    server: str = f"Docker/{__version__} (linux)"


@attrs.define
class ApiCall:
    """A routed request: the Twisted request, path variables and negotiated version."""

    request: IRequest
    params: dict[str, str]
    version: str

    def query(self, key: str, default: str = "") -> str:
        return httputils.form_value(self.request.args, key, default)

    def query_all(self, key: str) -> list[str]:
        return httputils.form_values(self.request.args, key)

    def has(self, key: str) -> bool:
        return httputils.has_form_value(self.request.args, key)

    def bool(self, key: str, default: bool = False) -> bool:
        return httputils.bool_value_or_default(self.request.args, key, default)

    def filters(self, accepted: Iterable[str]) -> Filters:
        """The ``filters`` argument, parsed and checked against ``accepted`` keys."""
        parsed = Filters.from_json(self.query("filters"))
        parsed.validate(accepted)
        return parsed

    def json_body(self) -> Any:
        """The decoded JSON body (``None`` when empty); bad JSON raises a 400."""
        content_type = self.request.getHeader(b"content-type")
        body = self.request.content.read() if self.request.content is not None else b""
        return httputils.decode_json_body(
            content_type.decode("latin-1") if content_type else None, body
        )


class _VersionConverter(BaseConverter):
    regex = r"[0-9.]+"


def _route_tables(routers: Iterable[Router]) -> dict[str, dict[str, Route]]:
    """Routes grouped by path, then method; the first registration of a pair wins."""
    tables: dict[str, dict[str, Route]] = {}
    for router in routers:
        for route in router.routes():
            tables.setdefault(route.path, {}).setdefault(route.method.upper(), route)
    return tables


def _endpoint_names(index: int) -> tuple[str, str]:
    """The Klein endpoint names of the ``index``-th path: bare and under ``/vX.Y``."""
    return f"r{index}", f"r{index}v"


def _klein_app(tables: dict[str, dict[str, Route]], dispatcher: _Dispatcher) -> Klein:
    app = Klein()
    app.url_map.converters["apiversion"] = _VersionConverter
    for index, (path, table) in enumerate(tables.items()):
        endpoint = dispatcher.endpoint_for(table)
        methods = sorted(table)  # so DELETE /images/a/json is not taken by GET .../json
        bare, versioned = _endpoint_names(index)
        app.route(path, endpoint=bare, methods=methods)(endpoint)
        app.route("/v<apiversion:version>" + path, endpoint=versioned,
                  methods=methods)(endpoint)
    app.handle_errors(_NoRoute, _NoMethod)(lambda request, failure: page_not_found(request))
    return app


def build_app(routers: Iterable[Router], config: ApiConfig) -> Klein:
    """One Klein app serving every route of ``routers`` bare and under ``/vX.Y``."""
    return _klein_app(_route_tables(routers), _Dispatcher(config))


def build_resource(routers: Iterable[Router], config: ApiConfig) -> ApiResource:
    """The daemon's root resource for ``routers`` (see :class:`ApiResource`)."""
    tables = _route_tables(routers)
    dispatcher = _Dispatcher(config)
    return ApiResource(_klein_app(tables, dispatcher), dispatcher, tables)


_VERSIONED = re.compile(rb"^/v([0-9.]+)(/.*)$")


class ApiResource(Resource):
    """The daemon's root resource.

    Paths without variables (``/_ping``, ``/version``, ``/containers/json``, ...) are
    looked up in a dictionary and dispatched at once; the others are matched by the
    Klein app's URL map (werkzeug), whose endpoints are called directly.  Paths that
    are not UTF-8 are refused with a JSON 400.
    """

    isLeaf = True

    def __init__(self, app: Klein, dispatcher: _Dispatcher,
                 tables: dict[str, dict[str, Route]]) -> None:
        super().__init__()
        self._urls = app.url_map.bind("localhost")
        self._streamed = {(name, method.encode())
                          for index, table in enumerate(tables.values())
                          for method, route in table.items() if route.streams_body
                          for name in _endpoint_names(index)}
        self._static = {(path.encode(), method.encode()): dispatcher.endpoint_for(table)
                        for path, table in tables.items() if "<" not in path
                        for method in table}
        self._endpoints = {name: dispatcher.endpoint_for(table)
                           for index, table in enumerate(tables.values())
                           for name in _endpoint_names(index)}

    def streams_body(self, method: bytes, path: bytes) -> bool:
        """Whether the route of ``method`` ``path`` reads its body as it arrives."""
        if not self._streamed:
            return False
        try:
            endpoint, _ = self._urls.match(unquote_to_bytes(path).decode("utf-8"),
                                           method=method.decode("ascii"))
        except (UnicodeDecodeError, HTTPException):
            return False
        return (endpoint, method) in self._streamed

    def render(self, request: IRequest) -> Any:
        path = request.path
        if b"%" in path:
            try:
                unquote_to_bytes(path).decode("utf-8")
            except UnicodeDecodeError:
                return _write_body(request, 400, b"application/json", httputils.encode_json(
                    {"message": "invalid URL: the path is not UTF-8"}))
        version, bare = None, path
        versioned = _VERSIONED.match(path)
        if versioned is not None:
            version, bare = versioned.group(1).decode(), versioned.group(2)
        endpoint = self._static.get((bare, request.method))
        if endpoint is not None:
            result = endpoint(request, version)
        else:
            try:
                name, params = self._urls.match(unquote_to_bytes(path).decode("utf-8"),
                                                method=request.method.decode("latin-1"))
            except (_NoRoute, _NoMethod):
                return page_not_found(request)
            except HTTPException as error:  # a redirect: werkzeug's answer, as Klein's
                return _werkzeug_answer(request, error)
            result = self._endpoints[name](request, **params)
        if isinstance(result, Deferred):
            if not _fired(result):
                return _finish_later(request, result)
            result = result.result  # answered from memory: no need to wait
        if result is None:  # the handler wrote a complete stream itself
            request.finish()
            return NOT_DONE_YET
        return result


def _werkzeug_answer(request: IRequest, error: HTTPException) -> bytes:
    """werkzeug's own answer to ``error`` (a redirect to the path with slashes merged),
    as Klein writes it."""
    answer = error.get_response({})
    request.setResponseCode(error.code or 500)
    for header, value in answer.headers:
        request.setHeader(header.encode("latin-1"), value.encode("latin-1"))
    return b"".join(answer.iter_encoded())


def _fired(result: Deferred[Any]) -> bool:
    """Whether ``result`` holds its final value already (neither a failure, which the
    error table turned into an answer anyway, nor a Deferred it waits on)."""
    return bool(result.called and not result.paused
                and isinstance(getattr(result, "result", None), bytes | type(None)))


def _finish_later(request: IRequest, result: Deferred[Any]) -> Any:
    """Write and finish when ``result`` fires; cancel it if the client goes away."""
    gone: list[bool] = []

    def lost(failure: Failure) -> None:
        gone.append(True)
        result.cancel()

    def finish(body: bytes | None) -> None:
        if gone:
            return
        if body:
            request.write(body)
        request.finish()

    def failed(failure: Failure) -> None:
        _log.failure("Writing a response failed", failure)

    cast(server.Request, request).notifyFinish().addErrback(lost)
    result.addCallback(finish).addErrback(failed)
    return NOT_DONE_YET


def page_not_found(request: IRequest) -> bytes:
    """Docker's answer for an unknown path or method: no middleware headers at all."""
    request.setResponseCode(404)
    request.responseHeaders.removeHeader(b"server")
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", str(len(_PAGE_NOT_FOUND)).encode())
    return _PAGE_NOT_FOUND


class _Dispatcher:
    """The version middleware, the error table and result rendering, for every route."""

    def __init__(self, config: ApiConfig) -> None:
        self._config = config
        self._experimental = b"true" if config.experimental else b"false"
        self._common = ((b"server", config.server.encode()),  # encoded once
                        (b"api-version", config.max_version.encode()),
                        (b"ostype", config.os_type.encode()))

    def endpoint_for(self, table: dict[str, Route]) -> Callable[..., Any]:
        def endpoint(request: IRequest, version: str | None = None, **params: str) -> Any:
            route = table.get(request.method.decode("ascii", "replace"))
            if route is None:
                return page_not_found(request)
            return self._dispatch(route, request, version, params)

        return endpoint

    def _dispatch(
        self, route: Route, request: IRequest, version: str | None, params: dict[str, str]
    ) -> Any:
        for name, value in self._common:
            request.setHeader(name, value)
        try:
            api_version = self._check_version(version)
        except DockerError as error:  # plain text for a client older than 1.24, as moby
            return self._write_error(
                request, error, json_body=version is None or versions.is_greater(version, "1.23"))
        request.setHeader(b"docker-experimental", self._experimental)
        call = ApiCall(request=request, params=params, version=api_version)
        if route.min_version and versions.is_less(api_version, route.min_version):
            return self._write_error(request, _TooOld(route), self._json_errors(call))
        if route.experimental and not self._config.experimental:
            return self._write_error(request, _ExperimentalDisabled(), self._json_errors(call))
        try:
            result = _handle(route, call)
        except Exception:
            return self._render_failure(Failure(), call)
        if not isinstance(result, Deferred):
            try:
                return self._render(result, request)
            except Exception:
                return self._render_failure(Failure(), call)
        result.addCallback(self._render, request)
        result.addErrback(self._render_failure, call)
        return result

    def _check_version(self, version: str | None) -> str:
        if version is None:
            return self._config.max_version
        if versions.is_less(version, self._config.min_version):
            raise InvalidParameter(
                f"client version {version} is too old. Minimum supported API version is "
                f"{self._config.min_version}, please upgrade your client to a newer version"
            )
        if versions.is_greater(version, self._config.max_version):
            raise InvalidParameter(
                f"client version {version} is too new. Maximum supported API version is "
                f"{self._config.max_version}"
            )
        return version

    @staticmethod
    def _json_errors(call: ApiCall) -> bool:
        """API 1.23 and older get plain-text error bodies, as Docker 20.10 sends them."""
        return versions.is_greater(call.version, "1.23")

    def _render(self, result: Any, request: IRequest) -> bytes | None:
        if isinstance(result, dict | list):
            result = Json(result)
        if isinstance(result, Json):
            return _write_body(request, result.status, b"application/json",
                               httputils.encode_json(result.body))
        if isinstance(result, Text):
            return _write_body(request, result.status, result.content_type, result.body)
        if isinstance(result, Empty):
            return _write_empty(request, result.status)
        if result is None:
            return None if _started_writing(request) else _write_empty(request, 200)
        raise TypeError(f"route handler returned {type(result).__name__}")

    def _render_failure(self, failure: Failure, call: ApiCall) -> bytes | None:
        request = call.request
        if failure.check(CancelledError):
            return None
        error = failure.value
        assert error is not None
        if errdefs.is_storage_full(error):
            assert isinstance(error, OSError)
            error = errdefs.from_os_error(error)
            _log.warn("{method} {path}: {error}", method=request.method,
                      path=request.path, error=str(error))
        elif not isinstance(error, DockerError):
            _log.failure("Unexpected error in {method} {path}", failure,
                         method=request.method, path=request.path)
        if _started_writing(request):
            _log.warn("Stream {path} ended by error: {error}", path=request.path, error=error)
            return None
        return self._write_error(request, error, self._json_errors(call))

    @staticmethod
    def _write_error(request: IRequest, error: BaseException, json_body: bool) -> bytes:
        status = status_for(error)
        message = str(error) or type(error).__name__
        if status == 304:
            return _write_empty(request, 304)
        if json_body:
            return _write_body(request, status, b"application/json",
                               httputils.encode_json({"message": message}))
        request.setHeader(b"x-content-type-options", b"nosniff")
        return _write_body(request, status, b"text/plain; charset=utf-8",
                           message.encode() + b"\n")


_VARIABLE = re.compile(r"<(?:[a-z]+:)?([A-Za-z_]+)>")


class _TooOld(errdefs.InvalidParameter):
    """A route newer than the request's version (moby's ``WithMinimumAPIVersion``)."""

    def __init__(self, route: Route) -> None:
        path = _VARIABLE.sub(r"{\1:.*}", route.path)
        super().__init__(f"{route.method} {path} requires minimum API version "
                         f"{route.min_version}")


def _handle(route: Route, call: ApiCall) -> Any:
    """The route's handler, through its listener's gate (policy, metrics) if any."""
    gate = getattr(call.request, "gate", None)
    return route.handler(call) if gate is None else gate(route, call)


class _ExperimentalDisabled(errdefs.NotImplemented):
    def __init__(self) -> None:
        super().__init__(EXPERIMENTAL_DISABLED)


def _started_writing(request: IRequest) -> bool:
    """True once the status line and headers have gone out (a stream has begun)."""
    return bool(getattr(request, "startedWriting", False))


def _write_body(request: IRequest, status: int, content_type: bytes, body: bytes) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"content-length", str(len(body)).encode())
    return body


def _write_empty(request: IRequest, status: int) -> bytes:
    request.setResponseCode(status)
    if status not in (204, 304):
        request.setHeader(b"content-length", b"0")
    return b""

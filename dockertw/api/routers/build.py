"""Build routes: ``POST /build`` (Docker's classic builder) and ``POST /build/prune``.

The query becomes :class:`~dockertw.daemon.builder.options.BuildOptions` (bad values
answer 400 before the body is read); the build's messages are Docker's JSON messages.
As moby's ``postBuild``: an error before the first message is an HTTP error, after it
an in-band one; with ``q`` the messages are held back and only the image ID is sent
(the held messages too, before an error).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Sequence
from typing import IO, Any, Protocol, cast

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest

from dockertw import versions
from dockertw.api.router import ApiCall, Route
from dockertw.daemon.builder.options import BuildOptions, BuildOutput, PruneOptions
from dockertw.errdefs import InvalidParameter
from dockertw.streams.jsonmessage import encode_message, format_error, progress_bar

__all__ = ["BuildRouter", "BuildBackend", "BuildMessages"]

_FALSE = ("", "0", "no", "false", "none")


class BuildBackend(Protocol):
    def build(self, body: IO[bytes], options: BuildOptions, output: BuildOutput
              ) -> Deferred[str]: ...
    def prune(self, options: PruneOptions) -> Deferred[dict[str, Any]]: ...


def _bool(call: ApiCall, key: str) -> bool:
    """Go's ``httputils.BoolValue``."""
    return call.query(key).strip().lower() not in _FALSE


def _int(call: ApiCall, key: str) -> int:
    """``Int64ValueOrZero``: 0 when missing or not a number."""
    try:
        return int(call.query(key), 10)
    except ValueError:
        return 0


def _json(call: ApiCall, key: str, what: str, default: Any) -> Any:
    text = call.query(key)
    if not text:
        return default
    try:
        value = json.loads(text)
    except ValueError as error:
        raise InvalidParameter(f"error reading {what}: {error}") from None
    return default if value is None else value  # null leaves Go's value alone


def _string_map(value: Any, what: str, nulls: bool = False) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or (nulls and v is None) for v in value.values()):
        raise InvalidParameter(f"error reading {what}: expected a JSON object of strings")
    return dict(value)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidParameter(f"error reading {what}: expected a JSON array of strings")
    return tuple(value)


def _auth_configs(request: IRequest) -> dict[str, Any]:
    """``X-Registry-Config``: base64url JSON; unreadable is empty, as moby."""
    header = request.getHeader(b"x-registry-config")
    if not header:
        return {}
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _shm_size(call: ApiCall) -> int:
    text = call.query("shmsize")
    if not text:
        return 0
    try:
        return int(text, 10)
    except ValueError:
        raise InvalidParameter(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def _checked(call: ApiCall, experimental: bool) -> None:
    """The refusals moby's ``postBuild`` answers before reading anything."""
    version = call.query("version")
    if version not in ("", "1", "2"):
        raise InvalidParameter(f'invalid version "{version}"')
    if version == "2":
        raise InvalidParameter("buildkit is not supported by this daemon: build with the "
                               "classic builder (version=1)")
    isolation = call.query("isolation")
    if isolation and isolation.lower() != "default":
        raise InvalidParameter(f'Unsupported isolation: "{isolation}"')
    if call.query_all("securityopt"):
        raise InvalidParameter("The daemon on this platform does not support setting "
                               "security options on build")
    if _bool(call, "squash") and not experimental:
        raise InvalidParameter("squash is only supported with experimental mode")


def _platform(call: ApiCall) -> str:
    platform = call.query("platform") if not versions.is_less(call.version, "1.32") else ""
    if platform and platform.split("/", 1)[0].lower() != "linux":
        raise InvalidParameter(f'"{platform}": unknown operating system or architecture: '
                               "invalid argument")
    return platform


def build_options(call: ApiCall, experimental: bool = False) -> BuildOptions:
    """moby's ``newImageBuildOptions``."""
    _checked(call, experimental)
    force_remove = _bool(call, "forcerm")
    cache_from = _json(call, "cachefrom", "cache from", None)
    return BuildOptions(
        tags=tuple(call.query_all("t")), dockerfile=call.query("dockerfile"),
        remote=call.query("remote"), no_cache=_bool(call, "nocache"),
        cache_from=None if cache_from is None else _strings(cache_from, "cache from"),
        pull=_bool(call, "pull"), remove=force_remove or not call.query("rm") or
        _bool(call, "rm"), force_remove=force_remove, memory=_int(call, "memory"),
        memory_swap=_int(call, "memswap"), cpu_shares=_int(call, "cpushares"),
        cpu_period=_int(call, "cpuperiod"), cpu_quota=_int(call, "cpuquota"),
        cpuset_cpus=call.query("cpusetcpus"), cpuset_mems=call.query("cpusetmems"),
        cgroup_parent=call.query("cgroupparent"), shm_size=_shm_size(call),
        ulimits=tuple(_json(call, "ulimits", "ulimit settings", [])),
        build_args=_string_map(_json(call, "buildargs", "build args", {}), "build args",
                               nulls=True),
        labels=_string_map(_json(call, "labels", "labels", {}), "labels"),
        network_mode=call.query("networkmode"),
        extra_hosts=tuple(call.query_all("extrahosts")), platform=_platform(call),
        target=call.query("target"), squash=_bool(call, "squash"),
        isolation=call.query("isolation"), auth_configs=_auth_configs(call.request))


class BuildMessages:
    """A build's output as Docker's JSON messages on the response; held back with
    ``q``; nothing is written once the client has gone."""

    def __init__(self, request: IRequest, quiet: bool, want_aux: bool) -> None:
        self._request = request
        self._quiet = quiet
        self._want_aux = want_aux
        self._held: list[bytes] = []
        self.gone = False

    def _write(self, data: bytes) -> None:
        if self._quiet:
            self._held.append(data)
        elif not self.gone:
            self._request.write(data)

    def stream(self, text: str) -> None:
        self._write(encode_message(stream=text))

    def aux(self, value: Any, id: str = "") -> None:  # noqa: A002 - Docker's name
        if self._want_aux:
            self._write(encode_message(id=id, aux=value))

    def status(self, text: str, id: str = "") -> None:  # noqa: A002 - Docker's name
        self._write(encode_message(status=text, id=id))

    def progress(self, action: str, current: int, total: int,
                 id: str = "") -> None:  # noqa: A002
        self._write(encode_message(status=action, progressDetail={
            "current": current, "total": total}, progress=progress_bar(current, total), id=id))

    def finished(self, image_id: str) -> None:
        """With ``q``: the image ID alone."""
        if self._quiet and not self.gone:
            self._request.write(encode_message(stream=image_id + "\n"))

    def failed(self, failure: Failure) -> Failure | None:
        """An error in-band once something was written (the held messages first);
        else ``failure`` again, for an HTTP error."""
        if self._held and not self.gone:
            self._request.write(b"".join(self._held))
        if not getattr(self._request, "startedWriting", False):
            return failure
        if not self.gone:
            message = str(failure.value) or type(failure.value).__name__
            self._request.write(format_error(message, int(getattr(failure.value, "code", 0))))
        return None


class BuildRouter:
    def __init__(self, builder: BuildBackend, experimental: bool = False) -> None:
        self._builder = builder
        self._experimental = experimental

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/build", self.build, streams_body=True),
            Route("POST", "/build/prune", self.prune, min_version="1.31"),
        ]

    def build(self, call: ApiCall) -> Deferred[None]:
        """The build's JSON messages; 200 once they start."""
        options = build_options(call, self._experimental)
        request = call.request
        request.setHeader(b"content-type", b"application/json")
        messages = BuildMessages(request, _bool(call, "q"),
                                 not versions.is_less(call.version, "1.30"))

        def lost(_: object) -> None:
            messages.gone = True

        cast(server.Request, request).notifyFinish().addErrback(lost)
        body = request.content if request.content is not None else io.BytesIO()
        built = self._builder.build(body, options, messages)
        return built.addCallbacks(messages.finished, messages.failed)

    def prune(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        """``POST /build/prune``: ``{"CachesDeleted": [...], "SpaceReclaimed": N}``."""
        filters = call.filters(("until", "id", "parent", "type", "description", "inuse",
                                "shared", "private"))
        until = filters.get("until")
        return self._builder.prune(PruneOptions(
            all=_bool(call, "all"), until=sorted(until)[0] if until else "",
            keep_storage=_int(call, "keep-storage")))

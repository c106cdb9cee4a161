"""Image routes: list, create (import, and pull on the distribution backend), inspect,
history, tag, delete, prune, load and save."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import IO, Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from dockertw import errdefs
from dockertw.api.progress import JsonProgress
from dockertw.api.responses import Empty, Text
from dockertw.api.router import ApiCall, Route
from dockertw.api.routers.distribution import registry_auth
from dockertw.api.tarstream import start_tar, stream_ended
from dockertw.api.versions import before, since
from dockertw.api.views import images as views
from dockertw.daemon.distribution.auth import AuthConfig
from dockertw.daemon.distribution.progress import ProgressOutput
from dockertw.daemon.images.loading import LoadOutput
from dockertw.daemon.images.platforms import Platform
from dockertw.daemon.images.service import ImportOptions
from dockertw.daemon.images.views import LIST_FILTERS, PRUNE_FILTERS
from dockertw.daemon.pump import Begin
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters
from dockertw.loglevel import Logger
from dockertw.streams.jsonmessage import (
    encode_message,
    format_error,
    format_progress,
    format_status,
)

__all__ = ["ImageRouter", "ImageBackend"]


class ImageBackend(Protocol):
    def list_images(self, filters: Filters, shown_all: bool = False,
                    placeholders: bool = True, shared_size: bool = False
                    ) -> Deferred[list[dict[str, Any]]]: ...
    def inspect(self, name: str, platform: Platform | None = None
                ) -> Deferred[dict[str, Any]]: ...
    def history(self, name: str, platform: Platform | None = None
                ) -> Deferred[list[dict[str, Any]]]: ...
    def attestations(self, name: str, platform: Platform | None = None
                     ) -> Deferred[list[dict[str, Any]]]: ...
    def import_image(self, body: IO[bytes], options: ImportOptions) -> Deferred[str]: ...
    def tag(self, source: str, repository: str, tag: str = "") -> Deferred[str]: ...
    def delete(self, name: str, force: bool = False, prune: bool = True,
               platforms: Sequence[Platform] = ()) -> Deferred[list[dict[str, str]]]: ...
    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]: ...
    def load_images(self, body: IO[bytes], output: LoadOutput, quiet: bool = True,
                    platforms: Sequence[Platform] = ()) -> Deferred[None]: ...
    def save_images(self, names: Sequence[str], begin: Begin,
                    platforms: Sequence[Platform] = ()) -> Deferred[None]: ...


_log = Logger()


def _with_reference(filters: Filters, pattern: str) -> Filters:
    """The legacy ``filter=PATTERN`` (API < 1.25), added as a ``reference`` filter."""
    fields = {key: filters.get(key) for key in sorted(filters.keys())}
    fields["reference"] = filters.get("reference") | {pattern}
    return Filters(fields)


def _platform(call: ApiCall, gate: str) -> Platform | None:
    """The one JSON ``platform`` parameter, read from API ``gate`` on."""
    raw = call.query("platform")
    return views.decode_platform(raw) if raw and since(call.version, gate) else None


def _platforms(call: ApiCall) -> list[Platform]:
    """``platform`` of save and load: one from API 1.48, several from 1.52."""
    if before(call.version, "1.48"):
        return []
    raws = call.query_all("platform")
    if before(call.version, "1.52") and len(raws) > 1:
        raise InvalidParameter("multiple platform parameters are not supported in this API "
                               "version; use API version 1.52 or later")
    return views.decode_platforms(raws)


def _status_stream(image_id: str) -> Text:
    return Text(format_status(image_id), b"application/json")


def _created(_: object) -> Empty:
    return Empty(201)


class _LoadMessages:
    """``docker load`` output as Docker's JSON messages, written to the response; the
    legacy ``progress`` text only until API 1.51 (moby's API 1.52 dropped it)."""

    def __init__(self, request: IRequest, version: str) -> None:
        self._request = request
        self._legacy = before(version, "1.52")

    def text(self, line: str) -> None:
        self._request.write(encode_message(stream=line))

    def progress(self, layer: str, current: int, total: int) -> None:
        self._request.write(format_progress("Loading layer", layer, current, total,
                                            legacy=self._legacy))


def _load_failed(failure: Failure, request: IRequest, version: str) -> None:
    """``images/load`` reports every error in the stream, after a 200 (the legacy
    ``error`` text beside ``errorDetail`` until API 1.51)."""
    if failure.check(CancelledError):
        return
    if not failure.check(errdefs.DockerError):
        _log.failure("Loading images failed", failure)
    message = str(failure.value) or type(failure.value).__name__
    request.write(format_error(message, legacy=before(version, "1.52")))


class PullBackend(Protocol):
    def pull(self, image: str, tag: str, auth: AuthConfig, output: ProgressOutput,
             platform: str = "") -> Deferred[None]: ...


class ImageRouter:
    def __init__(self, images: ImageBackend, pulls: PullBackend) -> None:
        self._images = images
        self._pulls = pulls

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/images/json", self.list_images),
            Route("GET", "/images/<path:name>/history", self.history),
            Route("GET", "/images/<path:name>/json", self.inspect),
            Route("GET", "/images/<path:name>/attestations", self.attestations,
                  min_version="1.55"),
            Route("POST", "/images/create", self.create, streams_body=True),
            Route("POST", "/images/<path:name>/tag", self.tag),
            Route("POST", "/images/prune", self.prune),
            Route("DELETE", "/images/<path:name>", self.delete),
            Route("GET", "/images/get", self.save_all),
            Route("GET", "/images/<path:name>/get", self.save),
            Route("POST", "/images/load", self.load, streams_body=True),
        ]

    def list_images(self, call: ApiCall) -> Deferred[list[dict[str, Any]]]:
        filters = call.filters(LIST_FILTERS)
        if before(call.version, "1.25") and call.query("filter") \
                and "reference" not in filters:
            filters = _with_reference(filters, call.query("filter"))
        manifests = call.bool("manifests") and since(call.version, "1.47")
        if since(call.version, "1.54") and call.bool("identity") and not manifests:
            raise InvalidParameter("conflicting options: identity requires manifests=1")
        listed = self._images.list_images(
            filters, shown_all=call.bool("all"), placeholders=before(call.version, "1.43"),
            shared_size=call.bool("shared-size") and since(call.version, "1.42"))
        return listed.addCallback(
            lambda items: [views.summary_view(item, call.version) for item in items])

    def inspect(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        manifests = call.has("manifests") and since(call.version, "1.48") \
            and call.bool("manifests")
        platform = _platform(call, "1.49") if call.query("platform") else None
        if manifests and platform is not None:
            raise InvalidParameter(
                "conflicting options: manifests and platform options cannot both be set")
        inspected = self._images.inspect(call.params["name"], platform)
        return inspected.addCallback(views.inspect_view, call.version)

    def history(self, call: ApiCall) -> Deferred[list[dict[str, Any]]]:
        return self._images.history(call.params["name"], _platform(call, "1.48"))

    def attestations(self, call: ApiCall) -> Deferred[list[dict[str, Any]]]:
        """API 1.55: this store keeps no attestations; an image found answers ``[]``."""
        raws = call.query_all("platform")
        if len(raws) > 1:
            raise InvalidParameter("only one platform value is currently supported")
        platform = views.decode_platform(raws[0]) if raws and raws[0] else None
        return self._images.attestations(call.params["name"], platform)

    def create(self, call: ApiCall) -> Deferred[Text] | Deferred[None]:
        """Pull (``fromImage``) or import (``fromSrc``); both answer a JSON message
        stream (the import's ends with the image ID)."""
        platform = call.query("platform") if since(call.version, "1.32") else ""
        if call.query("fromImage"):
            return self._pull(call, platform)
        options = ImportOptions(
            source=call.query("fromSrc"), repository=call.query("repo"),
            tag=call.query("tag"), message=call.query("message"),
            changes=tuple(call.query_all("changes")), platform=platform)
        body = call.request.content if call.request.content is not None else io.BytesIO()
        return self._images.import_image(body, options).addCallback(_status_stream)

    def _pull(self, call: ApiCall, platform: str) -> Deferred[None]:
        output = JsonProgress(call.request, call.version)
        pulled = self._pulls.pull(call.query("fromImage"), call.query("tag"),
                                  registry_auth(call), output, platform)
        return pulled.addBoth(output.ended)

    def tag(self, call: ApiCall) -> Deferred[Empty]:
        tagged = self._images.tag(call.params["name"], call.query("repo"), call.query("tag"))
        return tagged.addCallback(_created)

    def delete(self, call: ApiCall) -> Deferred[list[dict[str, str]]]:
        name = call.params["name"]
        if not name.strip():
            raise InvalidParameter("image name cannot be blank")
        platforms = views.decode_platforms(call.query_all("platforms")) \
            if since(call.version, "1.50") else []
        return self._images.delete(name, force=call.bool("force"),
                                   prune=not call.bool("noprune"), platforms=platforms)

    def prune(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._images.prune(call.filters(PRUNE_FILTERS))

    def load(self, call: ApiCall) -> Deferred[None]:
        """Always 200: messages, then any error in-band, as Docker's ``postImagesLoad``."""
        platforms = _platforms(call)
        request = call.request
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")
        body = request.content if request.content is not None else io.BytesIO()
        loaded = self._images.load_images(body, _LoadMessages(request, call.version),
                                          quiet=call.bool("quiet", True), platforms=platforms)
        return loaded.addErrback(_load_failed, request, call.version)

    def save(self, call: ApiCall) -> Deferred[None]:
        return self._save(call, [call.params["name"]])

    def save_all(self, call: ApiCall) -> Deferred[None]:
        return self._save(call, call.query_all("names"))

    def _save(self, call: ApiCall, names: list[str]) -> Deferred[None]:
        saved = self._images.save_images(names, start_tar(call.request), _platforms(call))
        return saved.addBoth(stream_ended, call.request)

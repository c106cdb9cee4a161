"""Image routes: list, create (import, and pull on the distribution backend), inspect,
history, tag, delete, prune, load and save."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import IO, Any, Protocol

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from dockertw import errdefs, versions
from dockertw.api.progress import JsonProgress
from dockertw.api.responses import Empty, Text
from dockertw.api.router import ApiCall, Route
from dockertw.api.routers.distribution import registry_auth
from dockertw.api.tarstream import start_tar, stream_ended
from dockertw.daemon.distribution.auth import AuthConfig
from dockertw.daemon.distribution.progress import ProgressOutput
from dockertw.daemon.images.loading import LoadOutput
from dockertw.daemon.images.service import ImportOptions
from dockertw.daemon.images.views import LIST_FILTERS, PRUNE_FILTERS
from dockertw.daemon.pump import Begin
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters
from dockertw.streams.jsonmessage import (
    encode_message,
    format_error,
    format_progress,
    format_status,
)

__all__ = ["ImageRouter", "ImageBackend"]


class ImageBackend(Protocol):
    def list_images(self, filters: Filters, shown_all: bool = False,
             placeholders: bool = True) -> Deferred[list[dict[str, Any]]]: ...
    def inspect(self, name: str) -> Deferred[dict[str, Any]]: ...
    def history(self, name: str) -> Deferred[list[dict[str, Any]]]: ...
    def import_image(self, body: IO[bytes], options: ImportOptions) -> Deferred[str]: ...
    def tag(self, source: str, repository: str, tag: str = "") -> Deferred[str]: ...
    def delete(self, name: str, force: bool = False, prune: bool = True
               ) -> Deferred[list[dict[str, str]]]: ...
    def prune(self, filters: Filters) -> Deferred[dict[str, Any]]: ...
    def load_images(self, body: IO[bytes], output: LoadOutput, quiet: bool = True
                    ) -> Deferred[None]: ...
    def save_images(self, names: Sequence[str], begin: Begin) -> Deferred[None]: ...


_log = Logger()


def _with_reference(filters: Filters, pattern: str) -> Filters:
    """The legacy ``filter=PATTERN`` of API < 1.41, added as a ``reference`` filter."""
    fields = {key: filters.get(key) for key in sorted(filters.keys())}
    fields["reference"] = filters.get("reference") | {pattern}
    return Filters(fields)


def _status_stream(image_id: str) -> Text:
    return Text(format_status(image_id), b"application/json")


def _created(_: object) -> Empty:
    return Empty(201)


class _LoadMessages:
    """``docker load`` output as Docker's JSON messages, written to the response."""

    def __init__(self, request: IRequest) -> None:
        self._request = request

    def text(self, line: str) -> None:
        self._request.write(encode_message(stream=line))

    def progress(self, layer: str, current: int, total: int) -> None:
        self._request.write(format_progress("Loading layer", layer, current, total))


def _load_failed(failure: Failure, request: IRequest) -> None:
    """``images/load`` reports every error in the stream, after a 200."""
    if failure.check(CancelledError):
        return
    if not failure.check(errdefs.DockerError):
        _log.failure("Loading images failed", failure)
    request.write(format_error(str(failure.value) or type(failure.value).__name__))


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
        if versions.is_less(call.version, "1.41") and call.query("filter"):
            filters = _with_reference(filters, call.query("filter"))
        return self._images.list_images(filters, shown_all=call.bool("all"),
                                 placeholders=versions.is_less(call.version, "1.43"))

    def inspect(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._images.inspect(call.params["name"])

    def history(self, call: ApiCall) -> Deferred[list[dict[str, Any]]]:
        return self._images.history(call.params["name"])

    def create(self, call: ApiCall) -> Deferred[Text] | Deferred[None]:
        """Pull (``fromImage``) or import (``fromSrc``); both answer a JSON message
        stream (the import's ends with the image ID)."""
        platform = call.query("platform") if not versions.is_less(call.version, "1.32") else ""
        if call.query("fromImage"):
            return self._pull(call, platform)
        options = ImportOptions(
            source=call.query("fromSrc"), repository=call.query("repo"),
            tag=call.query("tag"), message=call.query("message"),
            changes=tuple(call.query_all("changes")), platform=platform)
        body = call.request.content if call.request.content is not None else io.BytesIO()
        return self._images.import_image(body, options).addCallback(_status_stream)

    def _pull(self, call: ApiCall, platform: str) -> Deferred[None]:
        output = JsonProgress(call.request)
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
        return self._images.delete(name, force=call.bool("force"),
                                   prune=not call.bool("noprune"))

    def prune(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._images.prune(call.filters(PRUNE_FILTERS))

    def load(self, call: ApiCall) -> Deferred[None]:
        """Always 200: messages, then any error in-band, as Docker's ``postImagesLoad``."""
        request = call.request
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")
        body = request.content if request.content is not None else io.BytesIO()
        loaded = self._images.load_images(body, _LoadMessages(request),
                                          quiet=call.bool("quiet", True))
        return loaded.addErrback(_load_failed, request)

    def save(self, call: ApiCall) -> Deferred[None]:
        return self._save(call, [call.params["name"]])

    def save_all(self, call: ApiCall) -> Deferred[None]:
        return self._save(call, call.query_all("names"))

    def _save(self, call: ApiCall, names: list[str]) -> Deferred[None]:
        saved = self._images.save_images(names, start_tar(call.request))
        return saved.addBoth(stream_ended, call.request)

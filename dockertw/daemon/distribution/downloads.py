"""Layer downloads: at most N at once, streamed into the store's staging, shared.

A blob's response body goes through a :class:`~dockertw.daemon.bodypipe.BodyPipe` to
a worker thread that hashes the compressed bytes, undoes the compression and unpacks
the tar into staging (:meth:`ImageStore.stage_layer`), all as the bytes arrive: no
copy of the blob is ever written.  At the end the blob's digest and the layer's diff
ID are checked; a mismatch discards the staging (Docker's ``filesystem layer
verification failed for digest``).  Transient failures (connection lost, 5xx) are
retried with backoff.  Two pulls wanting the same layer share one download.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from dockertw import meters
from dockertw.daemon.bodypipe import BodyLost, BodyPipe
from dockertw.daemon.distribution.client import RegistryError, Session
from dockertw.daemon.distribution.progress import LayerProgress, ProgressOutput
from dockertw.daemon.images.layers import Digesting
from dockertw.daemon.images.store import ImageStore, StagedLayer
from dockertw.daemon.workers import Runner
from dockertw.errdefs import DockerError, InvalidParameter

__all__ = ["Downloads", "LayerDownload", "verification_failed"]

_ATTEMPTS = 5
_DONE = Failure(ConnectionDone())


def verification_failed(digest: str) -> InvalidParameter:
    return InvalidParameter(f"filesystem layer verification failed for digest {digest}")


class _ToPipe(Protocol):
    """Delivers a response body into a pipe (which pauses the response while the
    reading thread is behind), counting progress on the way."""

    def __init__(self, progress: LayerProgress, call_from_thread: Callable[..., Any]) -> None:
        self._progress = progress
        self.pipe = BodyPipe(self._pause, self._resume, call_from_thread)

    def _pause(self) -> None:
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def _resume(self) -> None:
        if self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def stop(self) -> None:
        """Give the body up: the reading thread fails, the response stops."""
        self.pipe.fail(CancelledError())
        if self.transport is not None:
            self.transport.stopProducing()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's interface
        self.pipe.write(data)
        self._progress.advance(len(data))
        meters.count(meters.PULL_BYTES, amount=len(data))

    def connectionLost(self, reason: Failure = _DONE) -> None:  # noqa: N802
        if reason.check(ResponseDone):
            self.pipe.end()
        else:
            self.pipe.fail(BodyLost(f"the registry connection was lost: {reason.value}"))


def _transient(error: Exception) -> bool:
    """Worth another try: a server error (5xx, 429) or no answer at all (connection
    refused or lost); not a refusal the registry meant."""
    if isinstance(error, RegistryError):
        return error.status >= 500 or error.status == 429
    return not isinstance(error, DockerError | CancelledError)


class LayerDownload:
    """One layer being fetched and unpacked; pulls subscribe to its result."""

    def __init__(self, downloads: Downloads, session: Session, digest: str, size: int,
                 diff_id: str) -> None:
        self._downloads = downloads
        self._session = session
        self.digest = digest
        self.diff_id = diff_id
        self.progress = LayerProgress(digest.removeprefix("sha256:")[:12], "Downloading", size)
        self.subscribers = 0
        self.started = False
        self._result: Deferred[StagedLayer] | None = None
        self._waiters: list[Deferred[StagedLayer]] = []
        self._outcome: StagedLayer | Failure | None = None

    def subscribe(self, output: ProgressOutput) -> Deferred[StagedLayer]:
        """The staged layer, once here; cancelling it unsubscribes."""
        self.subscribers += 1
        self.progress.outputs.append(output)
        waiter: Deferred[StagedLayer] = Deferred(lambda d: self._leave(d, output))
        if self._outcome is not None:
            waiter.callback(self._outcome)
        else:
            self._waiters.append(waiter)
        if self._result is None:
            self._result = self._downloads.schedule(self)
            self._result.addBoth(self._settle)
        return waiter

    def release(self, output: ProgressOutput) -> None:
        """A pull is done with this layer (committed, or gave up)."""
        self._drop(output)

    def _leave(self, waiter: Deferred[StagedLayer], output: ProgressOutput) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        self._drop(output)

    def _drop(self, output: ProgressOutput) -> None:
        if output in self.progress.outputs:
            self.progress.outputs.remove(output)
            self.subscribers -= 1
        if self.subscribers <= 0:
            self._downloads.forget(self)
            if self._result is not None and not self._result.called:
                self._result.cancel()
            if isinstance(self._outcome, StagedLayer):
                self._outcome.discard()

    def _settle(self, outcome: StagedLayer | Failure) -> None:
        self._outcome = outcome
        if isinstance(outcome, Failure):
            self._downloads.forget(self)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(outcome)
        if isinstance(outcome, StagedLayer) and self.subscribers <= 0:
            outcome.discard()

    # -- the work --------------------------------------------------------------------

    async def run(self) -> StagedLayer:
        """Fetch and unpack, retrying transient failures with backoff."""
        self.started = True
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._attempt()
            except Exception as error:  # noqa: BLE001 - sorted just below
                if attempt == _ATTEMPTS or not _transient(error):
                    raise
                self.progress.layer(f"Retrying in {attempt} second"
                                    + ("s" if attempt > 1 else ""))
                self.progress.current = 0
                await deferLater(self._downloads.clock, 0.2 * attempt, lambda: None)
        raise AssertionError("unreachable")

    async def _attempt(self) -> StagedLayer:
        response = await self._session.blob(self.digest)
        protocol = _ToPipe(self.progress, self._downloads.call_from_thread)
        unpacked = self._downloads.unpacker(lambda: self._unpack(protocol.pipe))
        response.deliverBody(protocol)
        try:
            staged = await unpacked
        except CancelledError:
            protocol.stop()
            raise
        self.progress.layer("Verifying Checksum")
        self.progress.layer("Download complete")
        return staged

    def _unpack(self, pipe: BodyPipe) -> StagedLayer:
        """In a worker thread: stage the layer from the verified stream."""
        source = Digesting(pipe)
        try:
            staged = self._downloads.store.stage_layer(source)
            source.drain()
        except (BodyLost, CancelledError):
            raise
        except DockerError:
            source.drain()
            if source.digest != self.digest:
                raise verification_failed(self.digest) from None
            raise
        if source.digest != self.digest:
            staged.discard()
            raise verification_failed(self.digest)
        if staged.diff_id != self.diff_id:
            staged.discard()
            raise InvalidParameter(f"layer {self.digest} has diff ID {staged.diff_id}, "
                                   f"the image config says {self.diff_id}")
        return staged


class Downloads:
    """The daemon's layer downloads: a limit on how many run, and the ones running."""

    def __init__(self, store: ImageStore, unpacker: Runner, clock: Any,
                 call_from_thread: Callable[..., Any], limit: int) -> None:
        self.store = store
        self.unpacker = unpacker
        self.clock = clock
        self.call_from_thread = call_from_thread
        self._limit = DeferredSemaphore(max(1, limit))
        self._running: dict[tuple[str, str], LayerDownload] = {}

    def get(self, session: Session, digest: str, size: int, diff_id: str) -> LayerDownload:
        """The download of blob ``digest`` as layer ``diff_id`` (shared if running)."""
        key = (digest, diff_id)
        download = self._running.get(key)
        if download is None:
            download = self._running[key] = LayerDownload(self, session, digest, size,
                                                          diff_id)
        return download

    def forget(self, download: LayerDownload) -> None:
        key = (download.digest, download.diff_id)
        if self._running.get(key) is download:
            del self._running[key]

    def schedule(self, download: LayerDownload) -> Deferred[StagedLayer]:
        return self._limit.run(lambda: Deferred.fromCoroutine(download.run()))

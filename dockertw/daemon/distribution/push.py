"""``docker push``: the layers (skipped when the registry has them, mounted from
another repository of the same registry, or compressed and uploaded), the config,
then the manifest under the tag.

A layer's tar is rebuilt from the store (``tar-split``) and gzip-compressed in a worker
thread while it uploads; the blob it became is remembered (:class:`BlobMetadata`),
so pushing the same layer again compresses nothing.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from typing import Any

from isal import isal_zlib
from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.web._newclient import RequestGenerationFailed
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from dockertw.daemon.distribution.blobmeta import BlobMetadata, KnownBlob
from dockertw.daemon.distribution.client import Session
from dockertw.daemon.distribution.manifests import DOCKER_MANIFEST, digest_of, image_manifest
from dockertw.daemon.distribution.progress import LayerProgress, ProgressOutput
from dockertw.daemon.images.reference import Reference
from dockertw.daemon.images.store import Image, ImageStore
from dockertw.daemon.pump import Pump
from dockertw.daemon.workers import Runner

__all__ = ["Pusher", "PushResult"]

#: ISA-L's deflate at its default level: about 8 times zlib's speed (level 6, which
#: Docker uses), for blobs about a tenth larger.
_GZIP_LEVEL = 2
_BATCH = 1 << 20


@implementer(IBodyProducer)
class _ThreadBody:
    """A request body made by ``work(pump)`` in a worker thread, sent as it comes."""

    length = UNKNOWN_LENGTH

    def __init__(self, runner: Runner, call_from_thread: Callable[..., Any],
                 work: Callable[[Pump], None]) -> None:
        self._runner = runner
        self._pump = Pump(call_from_thread)
        self._work = work

    def startProducing(self, consumer: Any) -> Deferred[None]:  # noqa: N802
        pump = self._pump

        def run() -> None:
            pump.begin(lambda _: consumer.write)
            self._work(pump)

        return self._runner(run)

    def pauseProducing(self) -> None:  # noqa: N802
        self._pump.pauseProducing()

    def resumeProducing(self) -> None:  # noqa: N802
        self._pump.resumeProducing()

    def stopProducing(self) -> None:  # noqa: N802
        self._pump.stopProducing()


class _Compressed:
    """The gzip stream of a layer tar, pushed into a pump: digest and size at the end."""

    def __init__(self, store: ImageStore, chain: str, advance: Callable[[int], None]) -> None:
        self._store = store
        self._chain = chain
        self._advance = advance
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def _send(self, pump: Pump, pending: list[bytes], read: int) -> None:
        """Send what was compressed (hashed and counted), then show ``read`` more
        bytes of the tar done."""
        data = b"".join(pending)
        pending.clear()
        if data:
            self._hash.update(data)
            self.size += len(data)
            pump.push(data)
        self._advance(read)

    def __call__(self, pump: Pump) -> None:
        _, chunks = self._store.layer_tar(self._chain)
        compressor = isal_zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, 31)
        pending: list[bytes] = []
        pending_size = read = 0
        for chunk in chunks:
            out = compressor.compress(chunk)
            read += len(chunk)
            pending.append(out)
            pending_size += len(out)
            if pending_size >= _BATCH:
                self._send(pump, pending, read)
                pending_size = read = 0
        pending.append(compressor.flush())
        self._send(pump, pending, read)


class PushResult:
    def __init__(self, tag: str, digest: str, size: int) -> None:
        self.tag, self.digest, self.size = tag, digest, size


class Pusher:
    """Pushes images to one session (endpoint and repository)."""

    def __init__(self, session: Session, store: ImageStore, compressor: Runner,
                 call_from_thread: Callable[..., Any], limit: DeferredSemaphore,
                 metadata: BlobMetadata, output: ProgressOutput,
                 write: Callable[[Callable[[], Any]], Deferred[Any]]) -> None:
        self._session = session
        self._store = store
        self._compressor = compressor
        self._call = call_from_thread
        self._limit = limit
        self._metadata = metadata
        self._output = output
        self._write = write
        self._started: set[str] = set()  # diff IDs whose upload has begun

    @property
    def _host(self) -> str:
        return self._session.endpoint.host

    async def push(self, reference: Reference, image: Image) -> PushResult:
        layers = [self._store.layer(chain) for chain in image.chain]
        for layer in layers:
            self._output.layer(_short(layer.diff_id), "Preparing")
        pushed = [self._limit.run(self._push_layer, layer.chain_id, layer.diff_id, layer.size)
                  for layer in layers]
        for layer in layers:
            if layer.diff_id not in self._started:
                self._output.layer(_short(layer.diff_id), "Waiting")
        blobs: list[KnownBlob] = []
        try:
            for done in pushed:
                blobs.append(await done)
        except BaseException:
            for done in pushed:
                done.cancel()
            raise
        await self._push_config(image.raw_config)
        manifest = image_manifest(image.raw_config, [(b.digest, b.size) for b in blobs])
        await self._session.put_manifest(reference.tag, manifest, DOCKER_MANIFEST)
        return PushResult(reference.tag, digest_of(manifest), len(manifest))

    async def _push_layer(self, chain: str, diff_id: str, size: int) -> KnownBlob:
        self._started.add(diff_id)
        short = _short(diff_id)
        known = await self._call_thread(lambda: self._metadata.known(diff_id))
        existing = await self._existing(known)
        if existing is not None:
            self._output.layer(short, "Layer already exists")
            return existing
        mounted = await self._mount(known, short, diff_id)
        if mounted is not None:
            return mounted
        return await self._upload(chain, diff_id, size, short)

    async def _call_thread(self, work: Callable[[], Any]) -> Any:
        return await self._compressor(work)

    async def _existing(self, known: list[KnownBlob]) -> KnownBlob | None:
        """A known blob of the layer the target repository already has."""
        candidates = [b for b in known if b.registry == self._host
                      and b.repository == self._session.repository]
        candidates += [b for b in known if b not in candidates]
        seen = set()
        for blob in candidates[:4]:
            if blob.digest in seen:
                continue
            seen.add(blob.digest)
            size = await self._session.has_blob(blob.digest)
            if size is not None:
                return KnownBlob(blob.digest, size or blob.size, self._host,
                                 self._session.repository)
        return None

    async def _mount(self, known: list[KnownBlob], short: str, diff_id: str
                     ) -> KnownBlob | None:
        """Mount the first known blob from another repository of this registry."""
        for blob in known:
            if blob.registry != self._host or blob.repository == self._session.repository:
                continue
            self._session.extra_scopes = [f"repository:{blob.repository}:pull"]
            mounted, _ = await self._session.start_upload(blob.digest, blob.repository)
            if mounted:
                self._output.layer(short, f"Mounted from {blob.repository}")
                return self._remember_blob(blob.digest, blob.size, diff_id)
            return None
        return None

    async def _upload(self, chain: str, diff_id: str, size: int, short: str) -> KnownBlob:
        progress = LayerProgress(short, "Pushing", size)
        progress.outputs.append(self._output)
        _, location = await self._session.start_upload()
        compressed = _Compressed(self._store, chain,
                                 lambda count: self._call(progress.advance, count))
        body = _ThreadBody(self._compressor, self._call, compressed)
        try:
            location = await self._session.upload(location, body)
        except RequestGenerationFailed as failed:
            failed.reasons[0].raiseException()  # the layer could not be read: say why
        await self._session.finish_upload(location, compressed.digest)
        self._output.layer(short, "Pushed")
        return self._remember_blob(compressed.digest, compressed.size, diff_id)

    def _remember_blob(self, digest: str, size: int, diff_id: str) -> KnownBlob:
        blob = KnownBlob(digest, size, self._host, self._session.repository)
        if diff_id:
            self._write(lambda: self._metadata.add(diff_id, blob))
        return blob

    async def _push_config(self, config: bytes) -> None:
        digest = digest_of(config)
        if await self._session.has_blob(digest) is not None:
            return
        _, location = await self._session.start_upload()
        location = await self._session.upload(location, config)
        await self._session.finish_upload(location, digest)


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]

"""``docker pull``: resolve the manifest, fetch the config, download the layers
(shared, concurrent, unpacked as they arrive), then commit layers, image and names.

Nothing of a pull exists in the store before it is whole: layers are unpacked into
staging and put in place bottom first; the image config is written once every layer
is there; names come last.  A pull that fails or is cancelled discards its staging
and removes the layers it put in place that no image uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from twisted.internet.defer import Deferred

from dockertw.daemon.distribution.blobmeta import BlobMetadata, KnownBlob
from dockertw.daemon.distribution.client import RegistryError, Session
from dockertw.daemon.distribution.downloads import Downloads, LayerDownload
from dockertw.daemon.distribution.manifests import (
    Descriptor,
    ImageManifest,
    ManifestList,
    Platform,
    check_layer_type,
    decode_manifest,
)
from dockertw.daemon.distribution.progress import ProgressOutput
from dockertw.daemon.images.layers import chain_ids
from dockertw.daemon.images.reference import Reference
from dockertw.daemon.images.store import ImageStore, Layer, StagedLayer, decode_config
from dockertw.errdefs import InvalidParameter, NotFound

__all__ = ["Puller", "PullTarget", "translate_pull_error", "remote_name", "up_to_date_status",
           "config_platform"]

#: Runs ``work(store)`` in the image writer thread.
StoreWriter = Callable[[Callable[[ImageStore], Any]], Deferred[Any]]


def remote_name(reference: Reference) -> str:
    """The repository's path in its registry (``library/busybox``)."""
    return reference.path


def translate_pull_error(error: BaseException, reference: Reference) -> BaseException:
    """moby's ``translatePullError``: registry refusals in Docker's words."""
    if not isinstance(error, RegistryError):
        return error
    if error.has("MANIFEST_UNKNOWN"):
        return NotFound(f"manifest for {reference.familiar()} not found: {error}")
    if error.has("NAME_UNKNOWN"):
        return NotFound(f"repository {reference.repository} not found: {error}")
    if error.has("DENIED") or error.has("UNAUTHORIZED") or error.status == 401:
        return NotFound(f"pull access denied for {reference.repository}, repository does "
                        f"not exist or may require 'docker login': {error}")
    return error


@attrs.frozen
class PullTarget:
    """What one manifest resolved to."""

    manifest_digest: str  # the digest the reference names (a list's own, for a list)
    manifest: ImageManifest
    config: bytes


def _diff_ids(config: bytes) -> list[str]:
    document = decode_config(config)
    rootfs = document.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidParameter("invalid image config: no rootfs.diff_ids")
    return diff_ids


def config_platform(config: bytes) -> Platform:
    document = json.loads(config)
    return Platform(str(document.get("os", "")), str(document.get("architecture", "")),
                    str(document.get("variant", "") or ""))


class Puller:
    """Pulls one reference from one session (endpoint and repository)."""

    def __init__(self, session: Session, store: ImageStore, write: StoreWriter,
                 downloads: Downloads, metadata: BlobMetadata, output: ProgressOutput,
                 platform: Platform, explicit_platform: bool = False) -> None:
        self._session = session
        self._store = store
        self._write = write
        self._downloads = downloads
        self._metadata = metadata
        self._output = output
        self._platform = platform
        self._explicit = explicit_platform

    # -- resolving -------------------------------------------------------------------

    async def resolve(self, reference: Reference, name: str) -> tuple[str, ImageManifest
                                                                       | ManifestList, str]:
        """The manifest ``reference`` names: ``(digest, manifest or list, media type)``."""
        wanted = reference.digest or reference.tag or "latest"
        body, media_type, digest = await self._session.get_manifest(wanted)
        return digest, decode_manifest(body, media_type, name), media_type

    async def target(self, reference: Reference) -> PullTarget:
        """The image manifest for this daemon's platform, with its config."""
        name = reference.familiar()
        digest, manifest, _ = await self.resolve(reference, name)
        if isinstance(manifest, ManifestList):
            entry = manifest.select(self._platform, name)
            body, media_type, _ = await self._session.get_manifest(entry.digest)
            chosen = decode_manifest(body, media_type, name)
            if not isinstance(chosen, ImageManifest):
                raise InvalidParameter(f"manifest list entry {entry.digest} is not an image")
            manifest = chosen
        config = await self._session.small_blob(manifest.config.digest)
        self._check_platform(config, reference)
        return PullTarget(digest, manifest, config)

    def _check_platform(self, config: bytes, reference: Reference) -> None:
        actual = config_platform(config)
        if self._explicit and not actual.matches(self._platform) and actual.os:
            raise NotFound(f"image with reference {reference.familiar()} was found but does "
                           f"not match the specified platform: wanted {self._platform}, "
                           f"actual: {actual}")

    # -- pulling ---------------------------------------------------------------------

    async def pull(self, reference: Reference, shown: str) -> tuple[str, bool]:
        """Pull ``reference`` (tag or digest); answers (manifest digest, whether the
        tag changed or layers came down)."""
        target = await self.target(reference)
        self._output.status(f"Pulling from {remote_name(reference)}", id=shown)
        diff_ids = _diff_ids(target.config)
        layers = target.manifest.layers
        if len(diff_ids) != len(layers):
            raise InvalidParameter("layers from manifest don't match image configuration")
        for layer in layers:
            check_layer_type(layer)
        held: list[str] = []
        try:
            downloaded = await self._fetch_layers(layers, diff_ids, held)
            changed = await self._write(lambda store: self._commit_image(
                store, target, reference))
        finally:
            await self._write(lambda store: _let_go(store, held))
        return target.manifest_digest, changed or downloaded

    async def _fetch_layers(self, layers: Sequence[Descriptor], diff_ids: list[str],
                            held: list[str]) -> bool:
        """Download and commit the layers missing; every layer of the image is held
        (no cleanup of another failed pull or load takes it) until ``held`` is let go."""
        chains = chain_ids(diff_ids)
        held += await self._write(lambda store: store.hold_present(chains))
        wanted = self._schedule(layers, diff_ids, chains, set(held))
        try:
            for index, download in enumerate(wanted):
                await self._commit_layer(download, chains, index, held)
        except BaseException:
            for item in wanted:
                if item is not None:
                    item[0].release(self._output)
            raise
        return any(download is not None for download in wanted)

    def _schedule(self, layers: Sequence[Descriptor], diff_ids: list[str],
                  chains: list[str], present: set[str]
                  ) -> list[tuple[LayerDownload, Deferred[StagedLayer]] | None]:
        found: list[Any] = []
        for layer, diff_id, chain in zip(layers, diff_ids, chains, strict=True):
            short = layer.digest.removeprefix("sha256:")[:12]
            if chain in present:
                self._output.layer(short, "Already exists")
                found.append(None)
                continue
            self._output.layer(short, "Pulling fs layer")
            download = self._downloads.get(self._session, layer.digest, layer.size, diff_id)
            found.append((download, download.subscribe(self._output)))
        for item in found:
            if item is not None and not item[0].started:
                self._output.layer(item[0].progress.id, "Waiting")
        return found

    async def _commit_layer(self, item: tuple[LayerDownload, Deferred[StagedLayer]] | None,
                            chains: list[str], index: int, held: list[str]) -> None:
        parent = chains[index - 1] if index else None
        if item is None:
            return
        download, staged_later = item
        staged = await staged_later
        short = download.progress.id
        self._output.progress(short, "Extracting", download.progress.total,
                              download.progress.total)

        def commit(store: ImageStore) -> Layer:
            layer = store.commit_layer(staged, parent)
            held.extend(store.hold_present([layer.chain_id]))
            return layer

        layer: Layer = await self._write(commit)
        self._record(download, layer.diff_id)
        download.release(self._output)
        self._output.layer(short, "Pull complete")

    def _record(self, download: LayerDownload, diff_id: str) -> None:
        blob = KnownBlob(download.digest, download.progress.total,
                         self._session.endpoint.host, self._session.repository)
        self._write(lambda store: self._metadata.add(diff_id, blob))

    def _commit_image(self, store: ImageStore, target: PullTarget,
                      reference: Reference) -> bool:
        """In the writer: the config, then the digest and tag; True if a name moved."""
        image_id = store.create_image(target.config)
        digested = reference.trimmed().with_digest(target.manifest_digest)
        if store.lookup(digested) not in (None, image_id):
            store.remove_reference(digested)
        store.add_reference(digested, image_id)
        if reference.digest:
            return False
        previous = store.lookup(reference)
        if previous == image_id:
            return False
        store.add_reference(reference, image_id)
        return True


def _let_go(store: ImageStore, held: list[str]) -> None:
    """Release a pull's layers; those no image took (a failed pull's) are removed."""
    store.release(held)
    if store.unused(held):
        store.delete_unused_layers()


def up_to_date_status(changed: bool, shown: str) -> str:
    if changed:
        return f"Status: Downloaded newer image for {shown}"
    return f"Status: Image is up to date for {shown}"

"""The distribution service: pull, push, login and registry inspection, for the API.

Each operation tries the registry's endpoints in Docker's order (mirrors, then the
registry; HTTPS, then HTTP for insecure registries) and falls back as Docker does.
Progress goes to a :class:`ProgressOutput` in the reactor thread; errors raised
before its first call can still be answered as HTTP errors.
"""

from __future__ import annotations

import http.client
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore

from dockertw.daemon.distribution.auth import AuthConfig
from dockertw.daemon.distribution.blobmeta import BlobMetadata
from dockertw.daemon.distribution.client import (
    LoginFailed,
    RegistryClient,
    Session,
    is_fallback,
    read_body,
)
from dockertw.daemon.distribution.config import (
    INDEX_SERVER,
    Endpoint,
    RegistryConfig,
    registry_host_of,
)
from dockertw.daemon.distribution.downloads import Downloads
from dockertw.daemon.distribution.manifests import (
    ImageManifest,
    ManifestList,
    Platform,
    decode_manifest,
    parse_platform,
)
from dockertw.daemon.distribution.progress import ProgressOutput
from dockertw.daemon.distribution.pull import (
    Puller,
    config_platform,
    remote_name,
    translate_pull_error,
    up_to_date_status,
)
from dockertw.daemon.distribution.push import Pusher
from dockertw.daemon.images.reference import Reference, parse_normalized
from dockertw.daemon.images.service import ImageService
from dockertw.daemon.images.store import ImageStore
from dockertw.daemon.workers import PoolRunner, WorkerReactor
from dockertw.errdefs import DockerError, NotFound, System
from dockertw.loglevel import Logger

__all__ = ["DistributionService", "pull_reference"]

_T = TypeVar("_T")
_log = Logger()


def pull_reference(image: str, tag: str) -> Reference:
    """``fromImage`` and ``tag`` as Docker reads them: a tag containing ``:`` is a
    digest; no tag at all means every tag."""
    reference = parse_normalized(image)
    if tag:
        reference = (reference.trimmed().with_digest(tag) if ":" in tag
                     else reference.trimmed().with_tag(tag))
    return reference


def _unreachable(error: BaseException, endpoint: Endpoint) -> DockerError:
    """A failure to reach ``endpoint`` (no registry answer), as Docker words it."""
    if isinstance(error, DockerError):
        return error
    text = str(error)
    if "certificate verify failed" in text:
        text = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    elif "ConnectionRefusedError" in text or "Connection was refused" in text:
        text = f"dial tcp {endpoint.host}: connect: connection refused"
    return System(f'Get "{endpoint.url}/v2/": {text}')


class DistributionService:
    """Registries for the engine: the client, the download limit, the blob records."""

    def __init__(self, images: ImageService, config: RegistryConfig, reactor: Any, *,
                 platform: Platform, max_downloads: int = 3, max_uploads: int = 5) -> None:
        self._images = images
        self.config = config
        self._reactor = reactor
        self._platform = platform
        self.client = RegistryClient(reactor, config)
        store = images.store
        self._metadata = BlobMetadata(store.root / "distribution")
        self._downloads = Downloads(
            store, PoolRunner(reactor, max(1, max_downloads), "dockertw-pull"), reactor,
            reactor.callFromThread, max_downloads)
        self._compressor = PoolRunner(reactor, max(1, max_uploads) + 1, "dockertw-push")
        self._uploads = DeferredSemaphore(max(1, max_uploads))

    @classmethod
    def open(cls, images: ImageService, config: RegistryConfig, reactor: WorkerReactor, *,
             architecture: str, max_downloads: int = 3, max_uploads: int = 5
             ) -> DistributionService:
        return cls(images, config, reactor, platform=Platform("linux", architecture),
                   max_downloads=max_downloads, max_uploads=max_uploads)

    def reconfigure(self, config: RegistryConfig) -> None:
        """New registry options (a reload): pulls and pushes from now on use them."""
        if config != self.config:
            self.config = config
            self.client = RegistryClient(self._reactor, config)

    @property
    def _store(self) -> ImageStore:
        return self._images.store

    def _write(self, work: Callable[[ImageStore], _T]) -> Deferred[_T]:
        return self._images.run_write(work)

    async def _each_endpoint(self, endpoints: list[Endpoint],
                             attempt: Callable[[Endpoint], Awaitable[_T]]) -> _T:
        """``attempt`` on each endpoint in turn until one answers (Docker's fallback)."""
        for index, endpoint in enumerate(endpoints):
            try:
                return await attempt(endpoint)
            except CancelledError:
                raise
            except Exception as error:
                if index + 1 == len(endpoints) or not is_fallback(error, endpoint):
                    raise _unreachable(error, endpoint) from error
                _log.info("Trying the next endpoint after {url}: {error}", url=endpoint.url,
                          error=error)
        raise NotFound("no registry endpoint to try")

    # -- pull ------------------------------------------------------------------------

    def pull(self, image: str, tag: str, auth: AuthConfig, output: ProgressOutput,
             platform: str = "") -> Deferred[None]:
        """``POST /images/create?fromImage=``: names are checked before anything else."""
        reference = pull_reference(image, tag)
        wanted = parse_platform(platform, self._platform)
        return Deferred.fromCoroutine(self._pull(reference, auth, output, wanted,
                                                 bool(platform)))

    async def _pull(self, reference: Reference, auth: AuthConfig, output: ProgressOutput,
                    platform: Platform, explicit: bool) -> None:
        async def attempt(endpoint: Endpoint) -> None:
            session = self.client.session(endpoint, remote_name(reference), auth)
            puller = Puller(session, self._store, self._write, self._downloads,
                            self._metadata, output, platform, explicit)
            if reference.is_name_only:
                await self._pull_all_tags(puller, session, reference, output)
            else:
                await self._pull_one(puller, reference, output)

        try:
            await self._each_endpoint(self.config.endpoints(reference.domain), attempt)
        except DockerError as error:
            raise translate_pull_error(error, reference) from None

    async def _pull_one(self, puller: Puller, reference: Reference,
                        output: ProgressOutput) -> None:
        shown = reference.digest or reference.tag
        digest, changed = await puller.pull(reference, shown)
        output.status(f"Digest: {digest}")
        self._images.publish("pull", reference.familiar(), {"name": reference.repository})
        output.status(up_to_date_status(changed, reference.familiar()))

    async def _pull_all_tags(self, puller: Puller, session: Session, reference: Reference,
                             output: ProgressOutput) -> None:
        changed = False
        for tag in await session.tags():
            tagged = reference.with_tag(tag)
            digest, moved = await puller.pull(tagged, tag)
            output.status(f"Digest: {digest}")
            self._images.publish("pull", tagged.familiar(), {"name": tagged.repository})
            changed = changed or moved
        output.status(up_to_date_status(changed, reference.repository))

    # -- push ------------------------------------------------------------------------

    def push(self, name: str, tag: str, auth: AuthConfig, output: ProgressOutput
             ) -> Deferred[None]:
        """``POST /images/{name}/push``: one tag, or every tag of the repository."""
        reference = parse_normalized(name)
        if tag:
            reference = reference.trimmed().with_tag(tag)
        tagged = self._push_targets(reference)
        return Deferred.fromCoroutine(self._push(reference, tagged, auth, output))

    def _push_targets(self, reference: Reference) -> list[tuple[Reference, str]]:
        if reference.tag:
            image_id = self._store.lookup(reference)
            found = [] if image_id is None else [(reference, image_id)]
        else:
            found = self._store.tags_of_repository(reference)
        if not found:
            raise NotFound(f"An image does not exist locally with the tag: "
                           f"{reference.repository}")
        return found

    async def _push(self, reference: Reference, tagged: list[tuple[Reference, str]],
                    auth: AuthConfig, output: ProgressOutput) -> None:
        output.status(f"The push refers to repository [{reference.name}]")

        async def attempt(endpoint: Endpoint) -> None:
            session = self.client.session(endpoint, remote_name(reference), auth,
                                          ("pull", "push"))
            await session.ping()  # an endpoint that cannot answer shows no progress
            pusher = Pusher(session, self._store, self._compressor,
                            self._reactor.callFromThread, self._uploads, self._metadata,
                            output, lambda work: self._write(lambda _: work()))
            for target, image_id in tagged:
                await self._push_one(pusher, target, image_id, output)

        endpoints = [e for e in self.config.endpoints(reference.domain) if not e.mirror]
        await self._each_endpoint(endpoints, attempt)

    async def _push_one(self, pusher: Pusher, target: Reference, image_id: str,
                        output: ProgressOutput) -> None:
        image = self._store.get(image_id)
        result = await pusher.push(target, image)
        output.status(f"{result.tag}: digest: {result.digest} size: {result.size}")
        output.aux({"Tag": result.tag, "Digest": result.digest, "Size": result.size})
        digested = target.trimmed().with_digest(result.digest)
        await self._write(lambda store: _set_digest(store, digested, image.id))
        self._images.publish("push", target.familiar(), {"name": target.repository})

    # -- login -----------------------------------------------------------------------

    def login(self, auth: AuthConfig) -> Deferred[dict[str, str]]:
        """``POST /auth``: check the credentials against the registry as Docker does."""
        host = registry_host_of(auth.server_address or INDEX_SERVER)
        return Deferred.fromCoroutine(self._login(host, auth))

    async def _login(self, host: str, auth: AuthConfig) -> dict[str, str]:
        async def attempt(endpoint: Endpoint) -> str:
            session = self.client.session(endpoint, "", auth, ())
            authorization = await session.authorization(fresh=True, offline=True)
            headers = {"Authorization": authorization} if authorization else {}
            response = await self.client.request("GET", f"{endpoint.url}/v2/", headers)
            await read_body(response)
            if response.code != 200:
                reason = http.client.responses.get(response.code, "")
                raise LoginFailed(f"login attempt to {endpoint.url}/v2/ failed with "
                                  f"status: {response.code} {reason}")
            return session.refresh_token

        token = await self._each_endpoint(self.config.login_endpoints(host), attempt)
        answer = {"Status": "Login Succeeded"}
        if token:
            answer["IdentityToken"] = token
        return answer

    # -- inspect ---------------------------------------------------------------------

    def inspect(self, name: str, auth: AuthConfig) -> Deferred[dict[str, Any]]:
        """``GET /distribution/{name}/json``: the descriptor and platforms."""
        reference = parse_normalized(name)
        if reference.is_name_only:
            reference = reference.with_default_tag()
        return Deferred.fromCoroutine(self._inspect(reference, auth))

    async def _inspect(self, reference: Reference, auth: AuthConfig) -> dict[str, Any]:
        async def attempt(endpoint: Endpoint) -> dict[str, Any]:
            session = self.client.session(endpoint, remote_name(reference), auth)
            body, media_type, digest = await session.get_manifest(
                reference.digest or reference.tag)
            manifest = decode_manifest(body, media_type, reference.familiar())
            platforms = await self._platforms(session, manifest)
            kind = getattr(manifest, "media_type", media_type)
            return {"Descriptor": {"mediaType": kind, "digest": digest, "size": len(body)},
                    "Platforms": [p.view() for p in platforms]}

        try:
            return await self._each_endpoint(self.config.endpoints(reference.domain),
                                             attempt)
        except DockerError as error:
            raise translate_pull_error(error, reference) from None

    @staticmethod
    async def _platforms(session: Session, manifest: ImageManifest | ManifestList
                         ) -> list[Platform]:
        if isinstance(manifest, ManifestList):
            return manifest.platforms()
        return [config_platform(await session.small_blob(manifest.config.digest))]


def _set_digest(store: ImageStore, digested: Reference, image_id: str) -> None:
    if store.lookup(digested) not in (None, image_id):
        store.remove_reference(digested)
    store.add_reference(digested, image_id)


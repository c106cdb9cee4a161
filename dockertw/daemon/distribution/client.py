"""A Registry HTTP API v2 client on treq: ping, manifests, blobs, uploads, tokens.

One :class:`RegistryClient` serves the daemon: a pooled agent whose TLS settings come
from :class:`~dockertw.daemon.distribution.config.RegistryConfig` per host, and one
token cache.  A :class:`Session` talks to one repository on one endpoint with one set
of credentials: it pings ``/v2/`` for the registry's challenges, then adds Basic or
Bearer authorization to every request, fetching a token for its scope when needed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import treq
from treq.client import HTTPClient
from twisted.web._newclient import RequestTransmissionFailed, ResponseNeverReceived
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed, _HTTP11ClientFactory
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from dockertw.daemon.distribution.auth import (
    AuthConfig,
    Challenge,
    Token,
    TokenCache,
    parse_challenges,
    parse_token,
    scope_for,
    token_request,
)
from dockertw.daemon.distribution.config import Endpoint, RegistryConfig
from dockertw.daemon.distribution.manifests import ACCEPTED, digest_of
from dockertw.errdefs import DockerError, InvalidParameter, NotFound, Unauthorized

__all__ = ["RegistryClient", "Session", "RegistryError", "LoginFailed", "is_fallback"]

_USER_AGENT = "docker/28.0.0 go/go1.23 (dockertw)"
_CONNECT_TIMEOUT = 30
_ERROR_BODY_LIMIT = 1 << 20


class RegistryError(DockerError):
    """An error answer of the registry (``{"errors": [...]}``), in Docker's words."""

    def __init__(self, status: int, codes: Sequence[str], message: str) -> None:
        super().__init__(message)
        self.status = status
        self.codes = tuple(codes)

    def has(self, code: str) -> bool:
        return code in self.codes


class LoginFailed(Unauthorized):
    """Credentials refused at login."""


def _describe(error: Mapping[str, Any]) -> str:
    code = str(error.get("code") or "UNKNOWN")
    return f"{code.lower().replace('_', ' ')}: {error.get('message', '')}"


def registry_error(status: int, body: bytes) -> RegistryError:
    """distribution's ``HandleErrorResponse``: the ``errors`` list, or the status."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError, UnicodeDecodeError):
        errors = None
    if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
        texts = [_describe(e) for e in errors]
        message = texts[0] if len(texts) == 1 else "errors:\n" + "\n".join(texts) + "\n"
        return RegistryError(status, [str(e.get("code", "")) for e in errors], message)
    if status == 401:
        return RegistryError(status, ["UNAUTHORIZED"], "unauthorized: authentication required")
    if status == 404:
        return RegistryError(status, ["NOT_FOUND"], "not found")
    shown = body[:200].decode("utf-8", "replace").strip()
    return RegistryError(status, [], f"received unexpected HTTP status: {status} "
                                     f"{shown}".rstrip())


def is_fallback(error: BaseException, endpoint: Endpoint) -> bool:
    """Whether a failure on ``endpoint`` should make Docker try the next endpoint:
    always from a mirror; otherwise only when the registry gave no answer (TLS or
    connection failures, as when an insecure registry speaks plain HTTP)."""
    if endpoint.mirror:
        return True
    return not isinstance(error, DockerError)


@implementer(IPolicyForHTTPS)
class _RegistryTLS:
    """TLS settings per registry host, from the daemon's registry configuration."""

    def __init__(self, config: RegistryConfig) -> None:
        self._config = config

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:  # noqa: N802
        host = hostname.decode("ascii")
        shown = f"[{host}]" if ":" in host else host
        netloc = shown if port == 443 else f"{shown}:{port}"
        return self._config.tls_for(netloc, self._config.is_secure(netloc)).creator_for(host)


def _headers(values: Mapping[str, str | Sequence[str]]) -> Headers:
    return Headers({key.encode(): [value.encode()] if isinstance(value, str)
                    else [v.encode() for v in value] for key, value in values.items()})


def _header(response: IResponse, name: str) -> str:
    found = response.headers.getRawHeaders(name)
    return found[0] if found else ""


class _QuietFactory(_HTTP11ClientFactory):
    """No "Starting factory" log line for every registry connection."""

    noisy = False


class RegistryClient:
    """The daemon's one registry client: pooled connections and cached tokens."""

    def __init__(self, reactor: Any, config: RegistryConfig) -> None:
        self.config = config
        self.tokens = TokenCache()
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 8
        pool.cachedConnectionTimeout = 60
        pool._factory = _QuietFactory
        agent = Agent(reactor, contextFactory=_RegistryTLS(config), pool=pool,
                      connectTimeout=_CONNECT_TIMEOUT)
        self.http = HTTPClient(agent)

    def session(self, endpoint: Endpoint, repository: str, auth: AuthConfig,
                actions: Sequence[str] = ("pull",)) -> Session:
        return Session(self, endpoint, repository, auth, actions)

    async def request(self, method: str, url: str, headers: Mapping[str, str | Sequence[str]],
                      data: bytes | IBodyProducer | None = None,
                      redirects: bool = True) -> IResponse:
        all_headers = _headers({"User-Agent": _USER_AGENT, **headers})
        for attempt in (1, 2):
            try:
                result: IResponse = await self.http.request(
                    method, url, headers=all_headers, data=data, unbuffered=True,
                    allow_redirects=redirects)
                return result
            except (ResponseNeverReceived, RequestTransmissionFailed):
                # A kept-alive connection the server had closed: send it again
                # when the body can be sent again.
                if attempt == 2 or IBodyProducer.providedBy(data):
                    raise
        raise AssertionError("unreachable")


async def read_body(response: IResponse, limit: int = 64 << 20) -> bytes:
    """The whole body of ``response`` (a registry answer is small; capped)."""
    length = response.length
    if isinstance(length, int) and length > limit:
        raise InvalidParameter(f"response of {length} bytes is too large")
    body: bytes = await treq.content(response)
    return body


async def discard(response: IResponse) -> None:
    with contextlib.suppress(ResponseFailed):
        await treq.content(response)


class Session:
    """One repository on one endpoint, with one set of credentials."""

    def __init__(self, client: RegistryClient, endpoint: Endpoint, repository: str,
                 auth: AuthConfig, actions: Sequence[str]) -> None:
        self.client = client
        self.endpoint = endpoint
        self.repository = repository
        self.auth = auth
        self.actions = tuple(actions)
        self.extra_scopes: list[str] = []
        self.refresh_token = ""  # what the token server gave for a login (offline)
        self._challenges: list[Challenge] | None = None

    def url(self, path: str) -> str:
        return f"{self.endpoint.url}/v2/{self.repository}/{path}"

    # -- authentication --------------------------------------------------------------

    async def ping(self) -> list[Challenge]:
        """``GET /v2/``: the registry's challenges (none when it wants no auth)."""
        if self._challenges is None:
            response = await self.client.request("GET", f"{self.endpoint.url}/v2/", {})
            body = await read_body(response)
            if response.code == 401:
                self._challenges = parse_challenges(
                    response.headers.getRawHeaders("www-authenticate") or [])
            elif 200 <= response.code < 300:
                self._challenges = []
            else:
                raise registry_error(response.code, body)
        return self._challenges

    def _scopes(self) -> list[str]:
        return [scope_for(self.repository, self.actions), *self.extra_scopes]

    async def authorization(self, fresh: bool = False, offline: bool = False
                            ) -> str | None:
        """The ``Authorization`` value for this session's requests, if any."""
        challenges = await self.ping()
        for challenge in challenges:
            if challenge.scheme == "bearer":
                return "Bearer " + await self._token(challenge, fresh, offline)
        if any(c.scheme == "basic" for c in challenges) and self.auth.username:
            return self.auth.basic()
        if self.auth.registry_token:
            return "Bearer " + self.auth.registry_token
        return None

    async def _token(self, challenge: Challenge, fresh: bool, offline: bool) -> str:
        if self.auth.registry_token:
            return self.auth.registry_token
        scopes = self._scopes() if self.repository else []
        cache = self.client.tokens
        key = cache.key(challenge, scopes, self.auth)
        cached = None if fresh or offline else cache.get(key)
        if cached is not None:
            return cached
        token = await self._fetch_token(challenge, scopes, offline)
        cache.put(key, token)
        self.refresh_token = token.refresh_token
        return token.value

    async def _fetch_token(self, challenge: Challenge, scopes: list[str], offline: bool
                           ) -> Token:
        wanted = token_request(challenge, scopes, self.auth, offline)
        data = None
        headers: dict[str, str] = dict(wanted.headers)
        if wanted.form is not None:
            data = urlencode(wanted.form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        response = await self.client.request(wanted.method, wanted.url, headers, data)
        body = await read_body(response)
        if response.code == 404 and wanted.method == "POST" and not self.auth.identity_token:
            return await self._fetch_token(challenge, scopes, offline=False)
        if response.code != 200:
            raise _token_error(response.code, body, wanted.url)
        return parse_token(body)

    # -- requests --------------------------------------------------------------------

    async def request(self, method: str, url: str, headers: Mapping[str, str | Sequence[str]]
                      | None = None, data: bytes | IBodyProducer | None = None,
                      redirects: bool = True) -> IResponse:
        """``url`` with this session's authorization; a 401 is retried once with a
        fresh token (it may have expired) when the body can be sent again."""
        all_headers = dict(headers or {})
        authorization = await self.authorization()
        if authorization:
            all_headers["Authorization"] = authorization
        response = await self.client.request(method, url, all_headers, data, redirects)
        if response.code == 401 and authorization and not IBodyProducer.providedBy(data):
            await discard(response)
            all_headers["Authorization"] = await self.authorization(fresh=True) or ""
            response = await self.client.request(method, url, all_headers, data, redirects)
        return response

    async def checked(self, response: IResponse, *ok: int) -> IResponse:
        if response.code not in ok:
            raise registry_error(response.code, await read_body(response, _ERROR_BODY_LIMIT))
        return response

    async def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """The manifest ``reference`` (tag or digest): bytes, media type, digest."""
        response = await self.checked(await self.request(
            "GET", self.url(f"manifests/{reference}"), {"Accept": list(ACCEPTED)}), 200)
        body = await read_body(response)
        digest = digest_of(body)
        if reference.startswith("sha256:") and digest != reference:
            raise InvalidParameter(f"manifest verification failed for digest {reference}")
        return body, _header(response, "content-type"), digest

    async def blob(self, digest: str) -> IResponse:
        """``GET`` a blob, unread (the caller streams it)."""
        return await self.checked(await self.request("GET", self.url(f"blobs/{digest}")), 200)

    async def small_blob(self, digest: str) -> bytes:
        """A small blob (an image config), verified against its digest."""
        body = await read_body(await self.blob(digest))
        if digest_of(body) != digest:
            raise InvalidParameter(f"image config verification failed for digest {digest}")
        return body

    async def has_blob(self, digest: str) -> int | None:
        """The size of the blob if the repository has it, else ``None``."""
        response = await self.request("HEAD", self.url(f"blobs/{digest}"))
        await discard(response)
        if response.code == 200:
            length = _header(response, "content-length")
            return int(length) if length.isdigit() else 0
        if response.code == 404:
            return None
        raise registry_error(response.code, b"")

    async def start_upload(self, mount: str = "", source: str = "") -> tuple[bool, str]:
        """``POST blobs/uploads/``, asking to mount ``mount`` from ``source`` if given:
        ``(True, "")`` once mounted, else ``(False, upload location)``."""
        query = "?" + urlencode({"mount": mount, "from": source}) if mount else ""
        response = await self.checked(await self.request(
            "POST", self.url("blobs/uploads/") + query, {}, b"", redirects=False), 201, 202)
        await discard(response)
        if response.code == 201:
            return True, ""
        return False, self._location(response)

    def _location(self, response: IResponse) -> str:
        location = _header(response, "location")
        if not location:
            raise InvalidParameter("registry gave no upload location")
        return urljoin(self.endpoint.url + "/", location)

    async def upload(self, location: str, body: IBodyProducer | bytes) -> str:
        """``PATCH`` the whole blob to ``location``; answers the next location."""
        response = await self.checked(await self.request(
            "PATCH", location, {"Content-Type": "application/octet-stream"}, body,
            redirects=False), 202, 204)
        await discard(response)
        return self._location(response)

    async def finish_upload(self, location: str, digest: str) -> None:
        """``PUT location?digest=``: the registry checks and stores the blob."""
        parts = urlsplit(location)
        query = (parts.query + "&" if parts.query else "") + urlencode({"digest": digest})
        url = parts._replace(query=query).geturl()
        response = await self.checked(await self.request(
            "PUT", url, {"Content-Type": "application/octet-stream"}, b"",
            redirects=False), 201, 204)
        await discard(response)

    async def put_manifest(self, tag: str, manifest: bytes, media_type: str) -> None:
        response = await self.checked(await self.request(
            "PUT", self.url(f"manifests/{tag}"), {"Content-Type": media_type}, manifest,
            redirects=False), 201, 202, 200)
        await discard(response)

    async def tags(self) -> list[str]:
        response = await self.checked(await self.request("GET", self.url("tags/list")), 200)
        document = json.loads(await read_body(response))
        tags = document.get("tags") if isinstance(document, dict) else None
        return sorted(str(t) for t in tags) if isinstance(tags, list) else []


def _token_error(status: int, body: bytes, url: str) -> DockerError:
    error = registry_error(status, body)
    if status == 401:
        return Unauthorized(str(error) if error.codes else "unauthorized: incorrect "
                            "username or password")
    if status == 404:
        return NotFound(f"token endpoint {url.split('?')[0]} not found")
    return error

"""Registry credentials and challenges (no I/O).

:class:`AuthConfig` is what a client sends in ``X-Registry-Auth`` (base64url JSON) or
``POST /auth``.  A registry answers ``401`` with ``WWW-Authenticate`` challenges:
``Basic realm=...`` or ``Bearer realm=...,service=...,scope=...``; a Bearer token is
fetched from the realm (:func:`token_request`) and kept per scope until it expires
(:class:`TokenCache`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import attrs

from dockertw.errdefs import InvalidParameter

__all__ = ["AuthConfig", "Challenge", "TokenCache", "Token", "decode_auth_header",
           "parse_challenges", "token_request", "parse_token", "scope_for"]

_CHALLENGE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_MIN_TOKEN_SECONDS = 60
_CLIENT_ID = "docker"


@attrs.frozen
class AuthConfig:
    """Credentials for one registry, as Docker's ``registry.AuthConfig``."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server_address: str = ""

    @classmethod
    def from_json(cls, document: Any) -> AuthConfig:
        if not isinstance(document, dict):
            return cls()

        def text(*keys: str) -> str:
            for key in keys:
                value = document.get(key)
                if isinstance(value, str) and value:
                    return value
            return ""

        return cls(text("username", "Username"), text("password", "Password"),
                   text("identitytoken", "IdentityToken"),
                   text("registrytoken", "RegistryToken"),
                   text("serveraddress", "ServerAddress"))

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token
                    or self.registry_token)

    def basic(self) -> str:
        """The ``Authorization`` value for Basic authentication."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


def decode_auth_header(value: str) -> AuthConfig:
    """``X-Registry-Auth``: base64url (padded or not) JSON; empty means no credentials."""
    if not value:
        return AuthConfig()
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        document = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidParameter("invalid X-Registry-Auth header: not base64url-encoded "
                               "JSON") from None
    return AuthConfig.from_json(document)


@attrs.frozen
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    parameters: dict[str, str] = attrs.field(factory=dict, hash=False)


def _split_challenges(header: str) -> Iterable[tuple[str, str]]:
    """``(scheme, parameters text)`` for each challenge of one header value."""
    pattern = re.compile(r"(?:^|,)\s*([A-Za-z][A-Za-z0-9_-]*)\s+(?=[A-Za-z0-9_-]+\s*=)")
    starts = list(pattern.finditer(header))
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(header)
        yield match.group(1), header[match.end():end]
    if not starts and header.strip():
        yield header.strip().split()[0], ""


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge of the ``WWW-Authenticate`` values ``headers``."""
    found = []
    for header in headers:
        for scheme, text in _split_challenges(header):
            parameters = {key.lower(): (quoted if quoted else plain).replace('\\"', '"')
                          for key, quoted, plain in _CHALLENGE.findall(text)}
            found.append(Challenge(scheme.lower(), parameters))
    return found


def scope_for(repository: str, actions: Iterable[str]) -> str:
    """``repository:NAME:pull,push`` as token servers expect it."""
    return f"repository:{repository}:{','.join(actions)}"


@attrs.frozen
class TokenRequest:
    """One request to a token server: GET with Basic auth, or POST of a form."""

    method: str
    url: str
    headers: dict[str, str] = attrs.field(factory=dict, hash=False)
    form: dict[str, str] | None = attrs.field(default=None, hash=False)


def token_request(challenge: Challenge, scopes: Iterable[str], auth: AuthConfig,
                  offline: bool = False) -> TokenRequest:
    """The request for a token, as Docker's token handler makes it: OAuth2 POST with a
    refresh token or (for a login) password grant; otherwise GET with Basic auth."""
    realm = challenge.parameters.get("realm", "")
    if not realm.startswith(("http://", "https://")):
        raise InvalidParameter(f"invalid token auth challenge realm: {realm!r}")
    service = challenge.parameters.get("service", "")
    scope_list = [s for s in scopes if s]
    if auth.identity_token or (offline and auth.username):
        form = {"scope": " ".join(scope_list), "service": service, "client_id": _CLIENT_ID}
        if auth.identity_token:
            form.update(grant_type="refresh_token", refresh_token=auth.identity_token)
        else:
            form.update(grant_type="password", username=auth.username,
                        password=auth.password, access_type="offline")
        return TokenRequest("POST", realm, {}, form)
    query: list[tuple[str, str]] = [("service", service)] if service else []
    query += [("scope", scope) for scope in scope_list]
    if auth.username:
        query.append(("account", auth.username))
    headers = {"Authorization": auth.basic()} if auth.username else {}
    separator = "&" if "?" in realm else "?"
    return TokenRequest("GET", realm + (separator + urlencode(query) if query else ""),
                        headers)


@attrs.frozen
class Token:
    value: str
    expires: float
    refresh_token: str = ""


def parse_token(body: bytes, now: Callable[[], float] = time.time) -> Token:
    """A token server's answer: ``token`` or ``access_token``, ``expires_in``."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidParameter("unable to decode token response") from None
    if not isinstance(document, dict):
        raise InvalidParameter("unable to decode token response")
    value = document.get("access_token") or document.get("token") or ""
    if not isinstance(value, str) or not value:
        raise InvalidParameter("authorization server did not include a token in the "
                               "response")
    lifetime = document.get("expires_in")
    seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else _MIN_TOKEN_SECONDS
    refresh = document.get("refresh_token")
    return Token(value, now() + max(seconds, _MIN_TOKEN_SECONDS),
                 refresh if isinstance(refresh, str) else "")


class TokenCache:
    """Bearer tokens by (realm, service, scopes, identity), until they expire."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._tokens: dict[tuple[str, ...], Token] = {}

    @staticmethod
    def key(challenge: Challenge, scopes: Iterable[str], auth: AuthConfig) -> tuple[str, ...]:
        identity = auth.identity_token or f"{auth.username}\0{auth.password}"
        return (challenge.parameters.get("realm", ""), challenge.parameters.get("service", ""),
                " ".join(sorted(scopes)), identity)

    def get(self, key: tuple[str, ...]) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires - 5 <= self._now():
            self._tokens.pop(key, None)
            return None
        return token.value

    def put(self, key: tuple[str, ...], token: Token) -> None:
        self._tokens[key] = token

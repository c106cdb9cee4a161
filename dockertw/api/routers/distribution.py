"""Registry routes: push, login (``/auth``) and ``/distribution/{name}/json``.

Pulls are ``POST /images/create?fromImage=`` in the image router, on the same backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from dockertw.api.progress import JsonProgress
from dockertw.api.router import ApiCall, Route
from dockertw.daemon.distribution.auth import AuthConfig, decode_auth_header
from dockertw.daemon.distribution.progress import ProgressOutput

__all__ = ["DistributionRouter", "DistributionBackend", "registry_auth"]


class DistributionBackend(Protocol):
    def pull(self, image: str, tag: str, auth: AuthConfig, output: ProgressOutput,
             platform: str = "") -> Deferred[None]: ...
    def push(self, name: str, tag: str, auth: AuthConfig, output: ProgressOutput
             ) -> Deferred[None]: ...
    def login(self, auth: AuthConfig) -> Deferred[dict[str, str]]: ...
    def inspect(self, name: str, auth: AuthConfig) -> Deferred[dict[str, Any]]: ...


def registry_auth(call: ApiCall) -> AuthConfig:
    """The credentials of ``X-Registry-Auth`` (none when absent)."""
    header = call.request.getHeader(b"x-registry-auth")
    return decode_auth_header(header.decode("ascii", "replace") if header else "")


def _login_answer(answer: dict[str, str]) -> dict[str, str]:
    return {"IdentityToken": answer.get("IdentityToken", ""), "Status": answer["Status"]}


class DistributionRouter:
    def __init__(self, backend: DistributionBackend) -> None:
        self._backend = backend

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/images/<path:name>/push", self.push),
            Route("POST", "/auth", self.login),
            Route("GET", "/distribution/<path:name>/json", self.inspect, min_version="1.30"),
        ]

    def push(self, call: ApiCall) -> Deferred[None]:
        output = JsonProgress(call.request, call.version)
        pushed = self._backend.push(call.params["name"], call.query("tag"),
                                    registry_auth(call), output)
        return pushed.addBoth(output.ended)

    def login(self, call: ApiCall) -> Deferred[dict[str, str]]:
        auth = AuthConfig.from_json(call.json_body())
        return self._backend.login(auth).addCallback(_login_answer)

    def inspect(self, call: ApiCall) -> Deferred[dict[str, Any]]:
        return self._backend.inspect(call.params["name"], registry_auth(call))

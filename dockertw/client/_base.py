"""The request machinery every typed call uses: paths, queries, errors, timeouts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import treq
from OpenSSL import SSL
from treq.client import HTTPClient
from twisted.internet.error import ConnectError
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.client import FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer, IResponse

from dockertw.client.agents import DaemonTransport
from dockertw.client.errors import ConnectionFailed, error_for_response
from dockertw.client.hijack import HijackedStream, build_upgrade_request, hijack
from dockertw.client.negotiation import Negotiator, PingResult

__all__ = ["Requests", "QueryValue", "TLSFailure", "encode_query"]

QueryValue = str | int | bool | None | list[str] | Mapping[str, Any]


class TLSFailure(ConnectionFailed):
    """The TLS handshake with the daemon failed (wrong CA, name mismatch, no certificate)."""


def encode_query(params: Mapping[str, QueryValue]) -> dict[str, list[str]]:
    """Docker's query conventions: true is ``1``, false and ``None`` are left out,
    lists repeat the key, mappings (filters) are JSON of value sets."""
    encoded: dict[str, list[str]] = {}
    for key, value in params.items():
        if value is None or value is False:
            continue
        if value is True:
            encoded[key] = ["1"]
        elif isinstance(value, list):
            encoded[key] = [str(item) for item in value]
        elif isinstance(value, Mapping):
            if value:
                encoded[key] = [json.dumps(_filter_sets(value), separators=(",", ":"))]
        else:
            encoded[key] = [str(value)]
    return encoded


def _filter_sets(filters: Mapping[str, Any]) -> dict[str, dict[str, bool]]:
    shaped: dict[str, dict[str, bool]] = {}
    for key, values in filters.items():
        items = [values] if isinstance(values, str) else list(values)
        shaped[key] = {str(item): True for item in items}
    return shaped


def _is_tls_error(error: BaseException) -> bool:
    reasons = getattr(error, "reasons", [])
    return any(failure.check(SSL.Error) or "VerificationError" in repr(failure.value)
               for failure in reasons)


class Requests:
    """Sends versioned requests to one daemon and turns error answers into exceptions."""

    def __init__(self, transport: DaemonTransport, headers: Mapping[str, str],
                 timeout: float, host_text: str, maximum: str,
                 pinned: str | None = None) -> None:
        self._transport = transport
        self.negotiator = Negotiator(self.ping, maximum, pinned)
        self._headers = dict(headers)
        self._timeout = timeout
        self._host_text = host_text
        self._http = HTTPClient(transport.agent)

    async def call(self, method: str, path: str, *, params: Mapping[str, QueryValue] | None
                   = None, json_body: Any = None, data: Any = None,
                   headers: Mapping[str, str] | None = None, stream: bool = False,
                   versioned: bool = True) -> IResponse:
        """One request; ``stream`` lifts the timeout for long-lived bodies."""
        prefix = f"/v{await self.negotiator.version()}" if versioned else ""
        url = self._transport.base_url + prefix + path
        sent = {**self._headers, **(headers or {})}
        if json_body is not None:
            data = json.dumps(json_body).encode() + b"\n"
            sent["Content-Type"] = "application/json"
        try:
            response = await self._http.request(
                method, url, params=encode_query(params or {}), data=_body(data),
                headers=_headers(sent), allow_redirects=False,
                timeout=None if stream else self._timeout)
        except (ConnectError, ResponseNeverReceived) as error:
            raise self._connection_error(error) from error
        if response.code >= 400:
            body = await treq.content(response)
            content_type = response.headers.getRawHeaders(b"content-type", [b""])[0]
            raise error_for_response(response.code, content_type.decode(), body, url)
        return response

    async def ping(self) -> PingResult:
        """``HEAD /_ping`` (unversioned); a status other than 200 or 500 retries with GET."""
        url = self._transport.base_url + "/_ping"
        response = None
        for method in ("HEAD", "GET"):
            try:
                response = await self._http.request(method, url,
                                                    headers=_headers(self._headers),
                                                    allow_redirects=False,
                                                    timeout=self._timeout)
            except (ConnectError, ResponseNeverReceived) as error:
                raise self._connection_error(error) from error
            await treq.content(response)
            if response.code in (200, 500):
                break
        assert response is not None
        if response.code >= 400 and response.code != 500:
            raise error_for_response(response.code, None, b"", url)
        return _ping_result(response)

    async def hijack(self, path: str, params: Mapping[str, QueryValue], body: Any,
                     tty: bool) -> HijackedStream:
        """POST ``path`` on a fresh raw connection and upgrade it to a raw stream."""
        version = await self.negotiator.version()
        base = urlsplit(self._transport.base_url)
        query = urlencode(encode_query(params), doseq=True)
        target = f"{base.path}/v{version}{path}" + (f"?{query}" if query else "")
        headers = dict(self._headers)
        if body is None:
            payload, headers["Content-Type"] = b"", "text/plain"
        else:
            payload = json.dumps(body).encode() + b"\n"
            headers["Content-Type"] = "application/json"
        request = build_upgrade_request("POST", target, base.netloc, headers, payload)
        try:
            return await hijack(self._transport.stream_endpoint(), request, tty)
        except ConnectError as error:
            raise self._connection_error(error) from error

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        body = await treq.content(response)
        return json.loads(body) if body.strip() else None

    def _connection_error(self, error: BaseException) -> ConnectionFailed:
        if _is_tls_error(error):
            return TLSFailure(self._host_text, f"TLS handshake failed: {_reason(error)}")
        return ConnectionFailed(self._host_text, _reason(error))


class _FileBody(FileBodyProducer):
    """A file object as a request body: with its length when it can seek, else chunked."""

    def _determineLength(self, fObj: Any) -> Any:
        seekable = getattr(fObj, "seekable", None)
        if seekable is None or not seekable():
            return UNKNOWN_LENGTH
        return super()._determineLength(fObj)


def _body(data: Any) -> Any:
    """treq adapts only bytes, ``BytesIO`` and ``BufferedReader``: stream any file object."""
    if hasattr(data, "read") and not IBodyProducer.providedBy(data):
        return _FileBody(data)
    return data


def _headers(values: Mapping[str, str]) -> Headers:
    return Headers({name: [value] for name, value in values.items()})


def _ping_result(response: IResponse) -> PingResult:
    def header(name: bytes) -> str:
        return response.headers.getRawHeaders(name, [b""])[0].decode("latin-1")

    return PingResult(api_version=header(b"api-version"), os_type=header(b"ostype"),
                      experimental=header(b"docker-experimental") == "true",
                      builder_version=header(b"builder-version"))


def _reason(error: BaseException) -> str:
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(str(failure.value) for failure in reasons)
    return str(error)

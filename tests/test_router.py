"""The router framework in memory: routing, version middleware, errors, rendering."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from dockertw import errdefs
from dockertw.api import ApiCall, ApiConfig, Route, build_app, build_resource
from dockertw.api.responses import Empty, Json, Text


class _Sample:
    """A router with one route per behaviour under test."""

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", "/things/json", lambda call: [{"version": call.version}]),
            Route("GET", "/things/<path:name>/json", self.inspect),
            Route("DELETE", "/things/<path:name>", lambda call: Empty()),
            Route("POST", "/things/create", self.create),
            Route("POST", "/things/<path:name>/start", lambda call: Empty(304)),
            Route("GET", "/things/<path:name>/text", lambda call: Text(b"hi")),
            Route("GET", "/boom", self.boom),
            Route("GET", "/filtered", self.filtered),
            Route("GET", "/new", lambda call: {}, min_version="1.40"),
            Route("GET", "/lab", lambda call: {"lab": True}, experimental=True),
            Route("POST", "/nothing", lambda call: None),
            Route("PUT", "/things/<path:name>/upload", lambda call: Empty(),
                  streams_body=True),
        ]

    def inspect(self, call: ApiCall) -> Any:
        if call.params["name"] == "missing":
            raise errdefs.NotFound("No such thing: missing")
        return {"Name": call.params["name"], "all": call.bool("all")}

    def create(self, call: ApiCall) -> Json:
        body = call.json_body()
        if not body:
            raise errdefs.InvalidParameter("Config cannot be empty")
        return Json({"Id": body["Name"]}, status=201)

    def boom(self, call: ApiCall) -> Any:
        raise ZeroDivisionError("internal detail")

    def filtered(self, call: ApiCall) -> Any:
        return {key: sorted(call.filters({"name", "label"}).get(key)) for key in ("name",)}


def _client(**config: Any) -> StubTreq:
    return StubTreq(build_resource([_Sample()], ApiConfig(**config)))


def _request(method: str, path: str, body: bytes = b"", headers: dict | None = None,
             **config: Any) -> tuple[int, Any, bytes]:
    client = _client(**config)
    results: list[Any] = []
    d: Deferred[Any] = client.request(method, "http://x" + path, data=body or None,
                                      headers=headers)

    def collect(response: Any) -> Deferred[Any]:
        return client.content(response).addCallback(
            lambda content: results.append((response.code, response.headers, content)))

    d.addCallback(collect)
    client.flush()
    assert results, "the request never finished"
    return results[0]


def _header(headers: Any, name: str) -> str | None:
    values = headers.getRawHeaders(name)
    return values[0] if values else None


@pytest.mark.parametrize("prefix", ["", "/v1.56", "/v1.41", "/v1.24", "/v1.30"])
def test_routes_are_served_bare_and_versioned(prefix: str):
    code, headers, body = _request("GET", prefix + "/things/json")
    assert code == 200
    assert json.loads(body) == [{"version": prefix[2:] or "1.56"}]
    assert _header(headers, "Api-Version") == "1.56"
    assert _header(headers, "Docker-Experimental") == "false"
    assert _header(headers, "Ostype") == "linux"
    assert _header(headers, "Server").startswith("Docker/")


def test_static_path_wins_over_variable_and_names_may_hold_slashes():
    code, _, body = _request("GET", "/v1.41/things/localhost:5000/a/b:tag/json?all=1")
    assert code == 200
    assert json.loads(body) == {"Name": "localhost:5000/a/b:tag", "all": True}


@pytest.mark.parametrize("prefix", ["", "/v1.41"])
def test_a_variable_route_of_another_method_does_not_hide_a_match(prefix: str):
    # DELETE /things/a/json names the thing "a/json"; GET .../json must not take it.
    assert _request("DELETE", prefix + "/things/a/json")[0] == 204
    assert _request("GET", prefix + "/things/a/json")[0] == 200


@pytest.mark.parametrize("method, path", [
    ("GET", "/nope"), ("PUT", "/things/json"), ("HEAD", "/things/json"),
    ("GET", "/v1.41/nope"), ("GET", "/V1.41/things/json"),
])
def test_unknown_paths_and_methods_get_page_not_found_without_middleware(method, path):
    code, headers, body = _request(method, path)
    assert code == 404
    if method != "HEAD":
        assert body == b'{"message":"page not found"}\n'
    assert _header(headers, "Api-Version") is None
    assert _header(headers, "Server") is None


@pytest.mark.parametrize("path, status, message", [
    ("/things/missing/json", 404, "No such thing: missing"),
    ("/boom", 500, "internal detail"),
    ("/filtered?filters=%7Bbad", 400, "invalid filter"),
    ("/filtered?filters=%7B%22foo%22%3A%7B%22x%22%3Atrue%7D%7D", 400, "Invalid filter 'foo'"),
])
def test_errors_map_to_status_and_json_body(path, status, message):
    code, headers, body = _request("GET", "/v1.41" + path)
    assert code == status
    assert _header(headers, "Content-Type") == "application/json"
    assert message in json.loads(body)["message"]
    assert body.endswith(b"\n")


def test_filters_accept_current_and_legacy_shapes():
    for text in ('{"name":{"a":true,"b":true}}', '{"name":["a","b"]}'):
        code, _, body = _request("GET", f"/filtered?filters={text}")
        assert (code, json.loads(body)) == (200, {"name": ["a", "b"]})


@pytest.mark.parametrize("body, content_type, status", [
    (b'{"Name":"x"}', "application/json", 201),
    (b'{"Name":"x"}', "application/json; charset=utf-8", 201),
    (b"{invalid", "application/json", 400),
    (b'{"Name":"x"} extra', "application/json", 400),
    (b'{"Name":"x"}', "text/plain", 400),
    (b"", "", 400),
])
def test_json_bodies_are_checked_and_bad_ones_are_400(body, content_type, status):
    headers = {"Content-Type": content_type} if content_type else None
    code, _, answer = _request("POST", "/things/create", body=body, headers=headers)
    assert code == status, answer
    if status == 201:
        assert json.loads(answer) == {"Id": "x"}


def test_empty_results_have_docker_statuses():
    # Content-Length is checked on the wire in test_system_routes; the in-memory
    # client hides it.
    assert _request("DELETE", "/things/x")[:3:2] == (204, b"")
    assert _request("POST", "/things/x/start")[:3:2] == (304, b"")
    assert _request("POST", "/nothing")[:3:2] == (200, b"")
    code, headers, body = _request("GET", "/things/x/text")
    assert (code, body) == (200, b"hi")
    assert _header(headers, "Content-Type") == "text/plain; charset=utf-8"


def test_version_bounds_and_messages():
    code, headers, body = _request("GET", "/v1.12/things/json")
    assert code == 400  # in plain text: such a client would print JSON as it is
    assert body.startswith(b"client version 1.12 is too old.")
    assert _header(headers, "Docker-Experimental") is None
    code, _, body = _request("GET", "/v1.57/things/json")
    assert json.loads(body) == {
        "message": "client version 1.57 is too new. Maximum supported API version is 1.56"}
    code, _, _ = _request("GET", "/v01.041/things/json")
    assert code == 200


def test_old_api_versions_get_plain_text_errors_when_the_minimum_allows_them():
    code, headers, body = _request("GET", "/v1.20/things/missing/json", min_version="1.12")
    assert code == 404
    assert _header(headers, "Content-Type") == "text/plain; charset=utf-8"
    assert body == b"No such thing: missing\n"


def test_min_version_refuses_older_requests():
    code, _, body = _request("GET", "/v1.39/new")
    assert (code, json.loads(body)) == (
        400, {"message": "GET /new requires minimum API version 1.40"})
    assert _request("GET", "/v1.40/new")[0] == 200
    assert _request("GET", "/new")[0] == 200


def test_experimental_routes_need_the_flag():
    code, _, body = _request("GET", "/lab")
    assert code == 501
    assert "experimental" in json.loads(body)["message"]
    code, headers, body = _request("GET", "/lab", experimental=True)
    assert (code, json.loads(body)) == (200, {"lab": True})
    assert _header(headers, "Docker-Experimental") == "true"


def test_undecodable_paths_and_trailing_slashes_are_refused_in_json():
    client = StubTreq(build_resource([_Sample()], ApiConfig()))
    results: list[Any] = []
    client.get("http://x/v1.41/things/%ff/json").addCallback(
        lambda r: client.content(r).addCallback(lambda body: results.append((r.code, body))))
    client.flush()
    assert results[0][0] == 400
    assert "not UTF-8" in json.loads(results[0][1])["message"]
    assert _request("GET", "/things/json/")[0] == 404


@pytest.mark.parametrize("path", ["/things/json", "/v1.30/things/x/json"])
def test_klein_app_alone_serves_the_same_routes(path):
    client = StubTreq(build_app([_Sample()], ApiConfig()).resource())
    results: list[Any] = []
    client.get("http://x" + path).addCallback(
        lambda r: client.content(r).addCallback(lambda body: results.append((r.code, body))))
    client.flush()
    assert results[0][0] == 200


@pytest.mark.parametrize("method, path, streams", [
    (b"PUT", b"/things/a/upload", True), (b"PUT", b"/v1.41/things/a/b/upload", True),
    (b"PUT", b"/things/%C3%BC/upload", True), (b"POST", b"/things/a/upload", False),
    (b"PUT", b"/things/a/upload/", False), (b"POST", b"/things/create", False),
    (b"PUT", b"/things/%FF/upload", False), (b"PUT", b"/nowhere", False),
])
def test_routes_that_stream_their_body_are_found_from_method_and_path(
        method: bytes, path: bytes, streams: bool) -> None:
    resource = build_resource([_Sample()], ApiConfig())
    assert resource.streams_body(method, path) is streams

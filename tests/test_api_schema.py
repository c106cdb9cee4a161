"""Real answers of every route, at API 1.56, checked against the 1.56 spec's schemas.

The Swagger definitions become JSON Schema (draft 4) with two changes, both where moby's
own answers deviate from its spec (see docs/api-versions.md, "Schema check"):

* every typed value may also be ``null``: Go encodes nil slices, maps and pointers as
  ``null`` and the spec marks few of them ``x-nullable``;
* objects with listed properties refuse others (``additionalProperties: false``), so a
  field moby removed fails the check, except in the few definitions listed in
  ``_OPEN`` whose answers moby fills from types larger than the spec says.

JSON streams (events, import and load messages) are checked one message at a time.
"""

from __future__ import annotations

import copy
import io
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support import Daemon, api_request

_SPEC = Path(__file__).resolve().parents[2] / "shared" / "api" / "docker-engine-api-v1.56.yaml"
_SPEC_PATHS = (_SPEC, Path("/work/shared/api/docker-engine-api-v1.56.yaml"))
VERSION = "1.56"

# Definitions whose real answers carry more than the spec lists, in moby as here.
_OPEN = frozenset({
    "HostConfig",  # moby's HostConfig embeds Resources and more than the spec names
    "Resources",
    "ContainerConfig",  # Healthcheck/ArgsEscaped/Shell, as moby marshals container.Config
    "ContainerStatsResponse",  # cgroup v1/v2 keys of memory_stats and blkio_stats
    "ContainerMemoryStats",
    "ContainerBlkioStats",
    "SystemInfo",  # NEventsListener/NFd counters and moby's own extras
})


# Fields moby answers beyond its spec: image inspect keeps a non-empty DockerVersion and
# Parent (deprecated, "still included when present"); /system/df at 1.52+ keeps the
# legacy lists beside the *Usage summaries unless ``verbose`` is set.
_EXTRA = {
    "ImageInspect": ("DockerVersion", "Parent"),
    "SystemDataUsageResponse": ("LayersSize", "Images", "Containers", "Volumes",
                                "BuildCache"),
}


def _spec() -> dict[str, Any]:
    for path in _SPEC_PATHS:
        if path.exists():
            return dict(yaml.safe_load(path.read_text()))
    pytest.skip("the 1.56 spec is not beside the repository")


def _loosen(node: Any, name: str = "", closed: bool = True) -> Any:
    """Swagger 2.0 -> JSON Schema: nullable values, closed objects (see above); the
    parts of an ``allOf`` stay open (they only add up together)."""
    if isinstance(node, list):
        return [_loosen(item, closed=closed) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _loosen(value, closed=key != "allOf") for key, value in node.items()
              if not key.startswith("x-") and key not in ("example", "discriminator")}
    name = name or str(node.get("title") or "")
    if "properties" in node:
        result["properties"] = {key: _loosen(value)
                                for key, value in node["properties"].items()}
        result["properties"].update({key: {} for key in _EXTRA.get(name, ())})
        if "additionalProperties" not in node and name not in _OPEN and closed:
            result["additionalProperties"] = False
    kind = result.get("type")
    if isinstance(kind, str) and kind != "null":
        result["type"] = [kind, "null"]
    if "enum" in result:
        result["enum"] = [*result["enum"], None, ""]
    return result


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    spec = _spec()
    return {"paths": spec["paths"],
            "definitions": {name: _loosen(body, name)
                            for name, body in spec["definitions"].items()}}


@pytest.fixture(scope="module")
def check(schemas: dict[str, Any]) -> Callable[[str, str, int, Any], None]:
    """``check(template, method, status, value)``: ``value`` fits the spec's answer."""
    def validate(template: str, method: str, status: int, value: Any) -> None:
        """``#Name`` as ``template``: the definition itself (for stream messages)."""
        if template.startswith("#"):
            schema = {"$ref": f"#/definitions/{template[1:]}"}
        else:
            schema = schemas["paths"][template][method.lower()]["responses"][status].get(
                "schema")
        assert schema is not None, f"{method} {template} {status} has no schema"
        root = {"definitions": schemas["definitions"], **_loosen(copy.deepcopy(schema))}
        errors = sorted(jsonschema.Draft4Validator(root).iter_errors(value),
                        key=lambda error: list(error.absolute_path))
        assert not errors, f"{method} {template} {status}: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5])

    return validate


Call = Callable[..., tuple[int, dict[str, str], bytes]]


@pytest.fixture
def call(module_daemon: Daemon) -> Call:
    def request(method: str, path: str, body: Any = None,
                raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        return api_request(str(module_daemon.socket), VERSION, method, path, body, raw)

    return request


@pytest.fixture
def made(module_containers: list[str]) -> list[str]:
    return module_containers


def _json(answer: tuple[int, dict[str, str], bytes], status: int) -> Any:
    assert answer[0] == status, answer
    return json.loads(answer[2])


def _lines(body: bytes) -> list[Any]:
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_system_routes(call: Call, check: Callable[..., None]) -> None:
    check("/version", "get", 200, _json(call("GET", "/version"), 200))
    check("/info", "get", 200, _json(call("GET", "/info"), 200))
    check("/system/df", "get", 200, _json(call("GET", "/system/df"), 200))
    check("/system/df", "get", 200, _json(call("GET", "/system/df?verbose=1"), 200))
    assert call("GET", "/_ping")[2] == b"OK"
    status, _, body = call("GET", f"/events?since=1&until={int(time.time())}")
    assert status == 200 and body
    for message in _lines(body):
        check("/events", "get", 200, message)
    check("/plugins", "get", 200, _json(call("GET", "/plugins"), 200))
    check("/swarm", "get", 503, _json(call("GET", "/swarm"), 503))


def test_container_routes(call: Call, check: Callable[..., None], made: list[str]) -> None:
    made.append("schema1")
    created = _json(call("POST", "/containers/create?name=schema1", {
        "Image": "bb:1", "Cmd": ["sh", "-c", "echo hi; sleep 60"],
        "Healthcheck": {"Test": ["NONE"]}}), 201)
    check("/containers/create", "post", 201, created)
    assert call("POST", "/containers/schema1/start")[0] == 204
    check("/containers/json", "get", 200, _json(call("GET", "/containers/json?all=1&size=1"),
                                                200))
    check("/containers/{id}/json", "get", 200,
          _json(call("GET", "/containers/schema1/json?size=1"), 200))
    check("/containers/{id}/top", "get", 200, _json(call("GET", "/containers/schema1/top"),
                                                    200))
    check("/containers/{id}/stats", "get", 200, _json(
        call("GET", "/containers/schema1/stats?stream=0&one-shot=1"), 200))
    check("/containers/{id}/changes", "get", 200,
          _json(call("GET", "/containers/schema1/changes"), 200))
    check("/containers/{id}/update", "post", 200,
          _json(call("POST", "/containers/schema1/update", {"Memory": 64 << 20}), 200))
    exec_id = _json(call("POST", "/containers/schema1/exec", {"Cmd": ["true"]}), 201)
    check("/containers/{id}/exec", "post", 201, exec_id)
    check("/exec/{id}/json", "get", 200, _json(call("GET", f"/exec/{exec_id['Id']}/json"),
                                               200))
    assert call("POST", "/containers/schema1/stop?t=0")[0] == 204
    check("/containers/{id}/wait", "post", 200,
          _json(call("POST", "/containers/schema1/wait"), 200))
    commit = _json(call("POST", "/commit?container=schema1&repo=schema&tag=c"), 201)
    check("/commit", "post", 201, commit)
    assert call("DELETE", "/images/schema:c")[0] == 200
    check("/containers/{id}/json", "get", 404, _json(call("GET", "/containers/nope/json"),
                                                     404))
    check("/containers/prune", "post", 200, _json(call("POST", "/containers/prune"), 200))


def _layer_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo("hello")
        member.size = 2
        tar.addfile(member, io.BytesIO(b"hi"))
    return buffer.getvalue()


def test_image_routes(call: Call, check: Callable[..., None]) -> None:
    check("/images/json", "get", 200, _json(call("GET", "/images/json?shared-size=1"), 200))
    check("/images/{name}/json", "get", 200, _json(call("GET", "/images/bb:1/json"), 200))
    check("/images/{name}/history", "get", 200,
          _json(call("GET", "/images/bb:1/history"), 200))
    check("/images/{name}/attestations", "get", 200,
          _json(call("GET", "/images/bb:1/attestations"), 200))
    status, _, body = call("POST", "/images/create?fromSrc=-&repo=schema&tag=i",
                           raw=_layer_tar())
    assert status == 200
    for message in _lines(body):
        check("#CreateImageInfo", "", 0, message)
    assert call("POST", "/images/schema:i/tag?repo=schema&tag=j")[0] == 201
    status, _, archive = call("GET", "/images/schema:j/get")
    assert status == 200 and archive
    check("/images/{name}", "delete", 200, _json(call("DELETE", "/images/schema:j"), 200))
    check("/images/{name}", "delete", 200, _json(call("DELETE", "/images/schema:i"), 200))
    status, _, body = call("POST", "/images/load?quiet=0", raw=archive)
    assert status == 200 and b"Loaded image" in body
    for message in _lines(body):  # moby's jsonstream.Message; BuildInfo is its shape
        check("#BuildInfo", "", 0, message)
    assert call("DELETE", "/images/schema:j")[0] == 200
    check("/images/prune", "post", 200, _json(call("POST", "/images/prune"), 200))
    check("/images/{name}/json", "get", 404, _json(call("GET", "/images/nope:1/json"), 404))


def test_volume_routes(call: Call, check: Callable[..., None]) -> None:
    check("/volumes/create", "post", 201,
          _json(call("POST", "/volumes/create", {"Name": "schemav", "Labels": {"a": "1"}}),
                201))
    check("/volumes", "get", 200, _json(call("GET", "/volumes"), 200))
    check("/volumes/{name}", "get", 200, _json(call("GET", "/volumes/schemav"), 200))
    check("/volumes/{name}", "put", 503,
          _json(call("PUT", "/volumes/schemav?version=1", {}), 503))
    assert call("DELETE", "/volumes/schemav")[0] == 204
    check("/volumes/prune", "post", 200, _json(call("POST", "/volumes/prune"), 200))


_C = "/containers/{id}"
_NO_BODY_ROUTES = (  # (method, spec path, request path), in order; all on container s2
    ("POST", _C + "/start", "/containers/s2/start"),
    ("POST", _C + "/start", "/containers/s2/start"),  # 304
    ("POST", _C + "/resize", "/containers/s2/resize?h=10&w=20"),
    ("POST", _C + "/pause", "/containers/s2/pause"),
    ("POST", _C + "/unpause", "/containers/s2/unpause"),
    ("POST", _C + "/rename", "/containers/s2/rename?name=s3"),
    ("POST", _C + "/rename", "/containers/s3/rename?name=s2"),
    ("GET", _C + "/logs", "/containers/s2/logs?stdout=1"),
    ("HEAD", _C + "/archive", "/containers/s2/archive?path=/etc"),
    ("GET", _C + "/archive", "/containers/s2/archive?path=/etc/hostname"),
    ("PUT", _C + "/archive", "/containers/s2/archive?path=/tmp"),
    ("GET", _C + "/export", "/containers/s2/export"),
    ("POST", _C + "/restart", "/containers/s2/restart?t=0"),
    ("POST", _C + "/kill", "/containers/s2/kill"),
    ("POST", _C + "/stop", "/containers/s2/stop"),  # 304
    ("DELETE", _C, "/containers/s2"),
    ("GET", "/images/{name}/get", "/images/bb:1/get"),
    ("GET", "/images/get", "/images/get?names=bb:1"),
    ("POST", "/exec/{id}/resize", "/exec/nope/resize?h=1&w=1"),
)


def test_answers_without_a_body_use_the_specs_statuses(
        call: Call, schemas: dict[str, Any], made: list[str]) -> None:
    """The routes that answer no JSON: each status is one the spec lists."""
    made.append("s2")
    _json(call("POST", "/containers/create?name=s2",
               {"Image": "bb:1", "Cmd": ["sleep", "60"], "Tty": True}), 201)
    for method, template, path in _NO_BODY_ROUTES:
        status = call(method, path, raw=_layer_tar() if method == "PUT" else None)[0]
        assert status in schemas["paths"][template][method.lower()]["responses"], (
            method, path, status)

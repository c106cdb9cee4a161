"""Each version gate, against a real daemon, on both sides of the version that made it.

One daemon (with the busybox image ``bb:1``) serves the whole module; every test removes
the containers it made.  docs/api-versions.md points here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli import ok
from tests.support import Daemon, api_request, unix_get

Call = Callable[..., tuple[int, dict[str, str], Any]]


@pytest.fixture(scope="module")
def gated(module_daemon: Daemon) -> Daemon:
    return module_daemon


@pytest.fixture
def api(gated: Daemon) -> Call:
    """``api(version, method, path, body=None, headers=None)``: status, headers and
    the decoded JSON body (raw bytes when it is not JSON)."""
    def call(version: str, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        status, answer_headers, raw = api_request(str(gated.socket), version, method, path,
                                                  body, headers=headers)
        try:
            return status, answer_headers, json.loads(raw)
        except ValueError:
            return status, answer_headers, raw

    return call


@pytest.fixture
def containers(module_containers: list[str]) -> list[str]:
    """Names of containers a test makes; removed (forced) afterwards."""
    return module_containers


def _create(api: Call, version: str, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    status, _, answer = api(version, "POST", f"/containers/create?name={name}",
                            {"Image": "bb:1", "Cmd": ["sleep", "60"], **body})
    return status, answer


# -- the middleware ---------------------------------------------------------------------


def test_versions_served_from_the_floor_to_the_newest(api: Call):
    status, headers, answer = api("1.56", "GET", "/version")
    assert (answer["ApiVersion"], answer["MinAPIVersion"]) == ("1.56", "1.24")
    assert headers["Api-Version"] == "1.56"
    assert api("1.24", "GET", "/info")[0] == 200
    assert api("1.57", "GET", "/info")[2] == {
        "message": "client version 1.57 is too new. Maximum supported API version is 1.56"}
    status, _, answer = api("1.23", "GET", "/info")
    assert status == 400 and b"Minimum supported API version is 1.24" in answer


def test_min_api_version_raises_the_floor(start_daemon: Callable[..., Daemon]):
    daemon = start_daemon("--min-api-version", "1.44")
    status, _, body = unix_get(str(daemon.socket), "/v1.43/version")
    assert status == 400
    assert json.loads(body)["message"].startswith(
        "client version 1.43 is too old. Minimum supported API version is 1.44")
    answer = json.loads(unix_get(str(daemon.socket), "/v1.44/version")[2])
    assert answer["MinAPIVersion"] == "1.44"


def test_ping_advertises_the_classic_builder_and_no_swarm(gated: Daemon):
    for method in ("GET", "HEAD"):
        _, headers, _ = unix_get(str(gated.socket), "/_ping", method)
        assert (headers["Builder-Version"], headers["Swarm"]) == ("1", "inactive")


def test_routes_newer_than_the_request_answer_400(api: Call):
    status, _, answer = api("1.54", "GET", "/images/bb:1/attestations")
    assert (status, answer) == (400, {
        "message": "GET /images/{name:.*}/attestations requires minimum API version 1.55"})
    status, _, answer = api("1.55", "GET", "/images/bb:1/attestations")
    assert (status, answer) == (200, [])
    assert api("1.55", "GET", "/images/nope:1/attestations")[0] == 404


# -- containers ------------------------------------------------------------------------


def test_stop_signal_from_1_42(api: Call, containers: list[str]):
    script = "trap 'exit 7' USR1; while true; do sleep 0.1; done"
    for version, code in (("1.41", 137), ("1.42", 7)):
        name = f"sig{version.replace('.', '')}"
        containers.append(name)
        assert _create(api, version, name, {"Cmd": ["sh", "-c", script]})[0] == 201
        assert api(version, "POST", f"/containers/{name}/start")[0] == 204
        time.sleep(0.3)  # the trap is set
        assert api(version, "POST", f"/containers/{name}/stop?signal=USR1&t=1")[0] == 204
        state = api(version, "GET", f"/containers/{name}/json")[2]["State"]
        assert state["ExitCode"] == code, version


def test_stop_with_an_unknown_signal_is_refused(api: Call, containers: list[str]):
    containers.append("badsig")
    _create(api, "1.56", "badsig", {})
    api("1.56", "POST", "/containers/badsig/start")
    status, _, answer = api("1.56", "POST", "/containers/badsig/stop?signal=NOPE")
    assert (status, answer) == (400, {"message": "Invalid signal: NOPE"})


def test_logs_content_type_multiplexed_from_1_42(api: Call, containers: list[str]):
    containers.append("logct")
    _create(api, "1.56", "logct", {"Cmd": ["echo", "hi"]})
    api("1.56", "POST", "/containers/logct/start")
    api("1.56", "POST", "/containers/logct/wait")
    for version, kind in (("1.41", "raw-stream"), ("1.42", "multiplexed-stream")):
        _, headers, body = api(version, "GET", "/containers/logct/logs?stdout=1")
        assert headers["Content-Type"] == f"application/vnd.docker.{kind}"
        assert body == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"


def test_console_size_on_create_from_1_42(api: Call, containers: list[str]):
    for version, size in (("1.41", [0, 0]), ("1.42", [30, 100])):
        name = f"console{version.replace('.', '')}"
        containers.append(name)
        _create(api, version, name, {"Tty": True, "Cmd": ["stty", "size"],
                                     "HostConfig": {"ConsoleSize": [30, 100]}})
        host = api(version, "GET", f"/containers/{name}/json")[2]["HostConfig"]
        assert host["ConsoleSize"] == size
    api("1.42", "POST", "/containers/console142/start")
    api("1.42", "POST", "/containers/console142/wait")
    logs = api("1.42", "GET", "/containers/console142/logs?stdout=1")[2]
    assert logs.strip() == b"30 100"


def test_exec_console_size_from_1_42(api: Call, containers: list[str]):
    containers.append("execsize")
    _create(api, "1.56", "execsize", {})
    api("1.56", "POST", "/containers/execsize/start")
    for version, applied in (("1.41", False), ("1.42", True)):
        _, _, created = api(version, "POST", "/containers/execsize/exec", {
            "Cmd": ["stty", "size"], "Tty": True, "AttachStdout": True,
            "ConsoleSize": [25, 90]})
        _, headers, output = api(version, "POST", f"/exec/{created['Id']}/start",
                                 {"Tty": True})
        assert headers["Content-Type"] == "application/vnd.docker.raw-stream"
        assert (output.strip() == b"25 90") is applied, (version, output)


def test_mount_options_of_another_type_refused_from_1_42(api: Call,
                                                       containers: list[str]):
    mount = {"Type": "tmpfs", "Target": "/t", "VolumeOptions": {"NoCopy": True}}
    containers.append("opts141")
    status, answer = _create(api, "1.41", "opts141", {"HostConfig": {"Mounts": [mount]}})
    assert status == 201, answer
    status, answer = _create(api, "1.42", "opts142", {"HostConfig": {"Mounts": [mount]}})
    assert (status, answer) == (400, {
        "message": 'VolumeOptions must not be specified on mount type "tmpfs"'})


@pytest.mark.parametrize("version, mount, message", [
    ("1.43", {"Type": "bind", "Source": "/tmp", "Target": "/t",
              "BindOptions": {"ReadOnlyForceRecursive": True}, "ReadOnly": True},
     "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"),
    ("1.44", {"Type": "volume", "Source": "v", "Target": "/t",
              "VolumeOptions": {"Subpath": "a"}},
     "VolumeOptions.Subpath needs API v1.45 or newer"),
    ("1.47", {"Type": "image", "Source": "bb:1", "Target": "/t"},
     'Mount type "Image" needs API v1.48 or newer'),
])
def test_mount_features_need_their_version(api: Call, version: str, mount: dict[str, Any],
                                           message: str):
    status, answer = _create(api, version, "tooold", {"HostConfig": {"Mounts": [mount]}})
    assert (status, answer) == (400, {"message": message})


def test_several_endpoints_need_1_44(api: Call):
    networks = {"EndpointsConfig": {"a": {}, "b": {}}}
    status, answer = _create(api, "1.43", "eps", {"NetworkingConfig": networks})
    assert status == 400
    assert answer["message"].startswith(
        "Container cannot be created with multiple network endpoints: ")


def test_annotations_from_1_43_listed_from_1_46(api: Call, containers: list[str]):
    notes = {"com.example/a": "1"}
    for version in ("1.42", "1.43"):
        name = f"notes{version.replace('.', '')}"
        containers.append(name)
        _create(api, version, name, {"HostConfig": {"Annotations": notes}})
    assert "Annotations" not in api("1.56", "GET", "/containers/notes142/json")[2][
        "HostConfig"]
    assert api("1.43", "GET", "/containers/notes143/json")[2]["HostConfig"][
        "Annotations"] == notes
    listed = {version: next(item for item in api(version, "GET", "/containers/json?all=1")[2]
                            if item["Names"] == ["/notes143"])
              for version in ("1.45", "1.46")}
    assert "Annotations" not in listed["1.45"]["HostConfig"]
    assert listed["1.46"]["HostConfig"]["Annotations"] == notes


def test_start_interval_of_health_checks_from_1_44(api: Call, containers: list[str]):
    check = {"Test": ["CMD", "true"], "StartInterval": 2_000_000_000}
    for version, interval in (("1.43", None), ("1.44", 2_000_000_000)):
        name = f"health{version.replace('.', '')}"
        containers.append(name)
        _create(api, version, name, {"Healthcheck": check})
        config = api("1.56", "GET", f"/containers/{name}/json")[2]["Config"]
        assert config["Healthcheck"].get("StartInterval") == interval, version  # omitempty


def test_inspect_drops_removed_fields(api: Call, containers: list[str]):
    containers.append("shape")
    _create(api, "1.56", "shape", {})
    old = api("1.51", "GET", "/containers/shape/json")[2]
    new = api("1.52", "GET", "/containers/shape/json")[2]
    legacy = {"Bridge", "HairpinMode", "IPAddress", "MacAddress", "SecondaryIPAddresses"}
    assert legacy <= set(old["NetworkSettings"])
    assert not legacy & set(new["NetworkSettings"])
    assert "OnBuild" in old["Config"] and "OnBuild" not in new["Config"]
    assert "KernelMemory" in api("1.41", "GET", "/containers/shape/json")[2]["HostConfig"]
    assert "KernelMemory" not in api("1.42", "GET", "/containers/shape/json")[2][
        "HostConfig"]


def test_volume_driver_warning_from_1_48(api: Call):
    host = {"VolumeDriver": "local",
            "Mounts": [{"Type": "volume", "Source": "vdw", "Target": "/v"}]}
    warnings = {}
    for version in ("1.47", "1.48"):
        name = f"vd{version.replace('.', '')}"
        warnings[version] = _create(api, version, name, {"HostConfig": host})[1]["Warnings"]
    assert not warnings["1.47"]
    assert warnings["1.48"] == [
        "WARNING: the container-wide volume-driver configuration is ignored for volumes "
        "specified via 'mount'. Use '--mount type=volume,volume-driver=...' instead"]
    for name in ("vd147", "vd148"):
        assert api("1.56", "DELETE", f"/containers/{name}?force=1")[0] == 204
    assert api("1.56", "DELETE", "/volumes/vdw")[0] == 204


# -- images ----------------------------------------------------------------------------


def _bb(items: list[dict[str, Any]]) -> dict[str, Any]:
    return next(item for item in items if "bb:1" in (item["RepoTags"] or []))


def test_image_list_fields_per_version(api: Call, containers: list[str]):
    containers.append("user")
    _create(api, "1.56", "user", {})
    shown = {v: _bb(api(v, "GET", "/images/json")[2])
             for v in ("1.41", "1.43", "1.44", "1.50", "1.51")}
    assert shown["1.43"]["VirtualSize"] == shown["1.43"]["Size"]
    assert "VirtualSize" not in shown["1.44"]
    assert shown["1.50"]["Containers"] == -1 and shown["1.51"]["Containers"] == 1
    assert shown["1.41"]["SharedSize"] == -1
    shared = {v: _bb(api(v, "GET", "/images/json?shared-size=1")[2])["SharedSize"]
              for v in ("1.41", "1.42")}
    assert shared["1.41"] == -1 and shared["1.42"] >= 0


def test_untagged_images_names_per_version(api: Call, gated: Daemon,
                                          containers: list[str]):
    containers.append("commitsrc")
    ok(gated, "create", "--name", "commitsrc", "bb:1", "true")
    image_id = ok(gated, "commit", "commitsrc").strip()
    try:
        items = {v: next(item for item in api(v, "GET", "/images/json")[2]
                         if item["Id"] == image_id) for v in ("1.42", "1.43")}
    finally:
        api("1.56", "DELETE", f"/images/{image_id}")
    assert items["1.42"]["RepoTags"] == ["<none>:<none>"]
    assert items["1.42"]["RepoDigests"] == ["<none>@<none>"]
    assert (items["1.43"]["RepoTags"], items["1.43"]["RepoDigests"]) == ([], [])


def test_legacy_filter_parameter_before_1_25(api: Call, gated: Daemon):
    ok(gated, "tag", "bb:1", "other:1")
    try:
        tags = {v: {tag for item in api(v, "GET", "/images/json?filter=bb")[2]
                    for tag in item["RepoTags"] or ()} for v in ("1.24", "1.25")}
    finally:
        ok(gated, "rmi", "other:1")
    assert tags["1.24"] == {"bb:1"}
    assert {"bb:1", "other:1"} <= tags["1.25"]


def test_image_list_until_filter(api: Call):
    future = json.dumps({"until": [str(int(time.time()) + 3600)]})
    past = json.dumps({"until": ["1"]})
    assert _bb(api("1.41", "GET", f"/images/json?filters={future}")[2])
    assert api("1.56", "GET", f"/images/json?filters={past}")[2] == []


def test_image_inspect_fields_per_version(api: Call):
    shown = {v: api(v, "GET", "/images/bb:1/json")[2]
             for v in ("1.43", "1.44", "1.45", "1.49", "1.50", "1.51", "1.52")}
    assert shown["1.43"]["VirtualSize"] == shown["1.43"]["Size"]
    assert "VirtualSize" not in shown["1.44"]
    assert "ContainerConfig" in shown["1.44"] and "Container" in shown["1.44"]
    assert "ContainerConfig" not in shown["1.45"] and "Container" not in shown["1.45"]
    assert "Hostname" in shown["1.49"]["Config"]
    assert "Hostname" not in shown["1.50"]["Config"]
    assert "Cmd" in shown["1.51"]["Config"] and "Cmd" not in shown["1.52"]["Config"]
    assert shown["1.51"]["Parent"] == "" and "Parent" not in shown["1.52"]


def test_image_platform_parameters_per_version(api: Call, gated: Daemon):
    other = json.dumps({"os": "linux", "architecture": "riscv64"})
    assert api("1.48", "GET", f"/images/bb:1/json?platform={other}")[0] == 200
    status, _, answer = api("1.49", "GET", f"/images/bb:1/json?platform={other}")
    assert status == 404
    assert "does not match the specified platform (linux/riscv64)" in answer["message"]
    assert api("1.47", "GET", f"/images/bb:1/history?platform={other}")[0] == 200
    assert api("1.48", "GET", f"/images/bb:1/history?platform={other}")[0] == 404
    mine = json.dumps({"os": "linux", "architecture":
                       api("1.56", "GET", "/images/bb:1/json")[2]["Architecture"]})
    assert api("1.48", "GET", f"/images/bb:1/history?platform={mine}")[0] == 200
    status, _, answer = api("1.49", "GET", '/images/bb:1/json?platform={"os":"linux"}')
    assert (status, answer) == (400, {"message": "both OS and Architecture must be provided"})
    status, _, answer = api("1.49", "GET", f"/images/bb:1/json?manifests=1&platform={mine}")
    assert status == 400 and "conflicting options" in answer["message"]
    assert api("1.47", "GET", f"/images/bb:1/get?platform={other}")[0] == 200
    assert api("1.48", "GET", f"/images/bb:1/get?platform={other}")[0] == 500
    twice = f"platform={mine}&platform={mine}"
    status, _, answer = api("1.51", "GET", f"/images/bb:1/get?{twice}")
    assert (status, answer["message"]) == (400, (
        "multiple platform parameters are not supported in this API version; use API "
        "version 1.52 or later"))
    status, _, answer = api("1.52", "GET", f"/images/bb:1/get?{twice}")
    assert status == 400 and answer["message"].startswith("multiple platforms not supported")
    ok(gated, "tag", "bb:1", "plat:1")
    assert api("1.49", "DELETE", f"/images/plat:1?platforms={other}")[0] == 200
    ok(gated, "tag", "bb:1", "plat:1")
    assert api("1.50", "DELETE", f"/images/plat:1?platforms={other}")[0] == 404
    assert api("1.50", "DELETE", f"/images/plat:1?platforms={mine}")[0] == 200


def test_load_messages_drop_the_legacy_text_from_1_52(gated: Daemon):
    shown = {}
    for version in ("1.51", "1.52"):
        status, _, body = api_request(str(gated.socket), version, "POST", "/images/load",
                                      raw=b"not a tar at all" * 64)
        assert status == 200
        shown[version] = json.loads(body.splitlines()[-1])
    assert shown["1.51"]["error"] == shown["1.51"]["errorDetail"]["message"]
    assert set(shown["1.52"]) == {"errorDetail"}


def test_identity_needs_manifests_from_1_54(api: Call):
    assert api("1.53", "GET", "/images/json?identity=1")[0] == 200
    status, _, answer = api("1.54", "GET", "/images/json?identity=1")
    assert (status, answer) == (400, {
        "message": "conflicting options: identity requires manifests=1"})
    assert api("1.54", "GET", "/images/json?identity=1&manifests=1")[0] == 200


# -- system ----------------------------------------------------------------------------


def test_disk_usage_per_version(api: Call):
    old = api("1.41", "GET", "/system/df?type=volume")[2]
    assert old["BuilderSize"] == 0 and "Images" in old  # type ignored before 1.42
    assert "VirtualSize" in old["Images"][0]
    typed = api("1.42", "GET", "/system/df?type=volume")[2]
    assert set(typed) == {"Volumes"}
    assert "VirtualSize" not in api("1.44", "GET", "/system/df")[2]["Images"][0]
    status, _, answer = api("1.42", "GET", "/system/df?type=nope")
    assert (status, answer) == (400, {"message": "unknown object type: nope"})
    assert "ImageUsage" not in api("1.51", "GET", "/system/df")[2]
    both = api("1.52", "GET", "/system/df")[2]
    assert {"Images", "ImageUsage", "ContainerUsage", "VolumeUsage",
            "BuildCacheUsage"} <= set(both)
    assert both["ImageUsage"]["TotalCount"] >= 1 and "Items" not in both["ImageUsage"]
    verbose = api("1.52", "GET", "/system/df?verbose=1&type=image")[2]
    assert set(verbose) == {"ImageUsage"} and verbose["ImageUsage"]["Items"]


def test_info_fields_per_version(api: Call):
    shown = {v: api(v, "GET", "/info")[2] for v in ("1.41", "1.42", "1.48", "1.49", "1.50")}
    assert "KernelMemory" in shown["1.41"] and "KernelMemory" not in shown["1.42"]
    assert "Expected" in shown["1.48"]["RuncCommit"]
    assert "Expected" not in shown["1.49"]["RuncCommit"]
    assert "AllowNondistributableArtifactsCIDRs" in shown["1.48"]["RegistryConfig"]
    assert "AllowNondistributableArtifactsCIDRs" not in shown["1.49"]["RegistryConfig"]
    assert "BridgeNfIptables" in shown["1.49"] and "BridgeNfIptables" not in shown["1.50"]


def _events(api: Call, version: str, accept: str = "") -> tuple[str, bytes]:
    until = int(time.time()) + 1
    headers = {"Accept": accept} if accept else {}
    _, answer_headers, body = api(version, "GET", f"/events?since=1&until={until}",
                                  headers=headers)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return answer_headers["Content-Type"], raw


def test_events_content_type_and_legacy_fields(api: Call):
    content_type, body = _events(api, "1.51")
    assert content_type == "application/json"
    first = json.loads(body.splitlines()[0])
    assert first["status"] == first["Action"]
    content_type, body = _events(api, "1.52")
    assert content_type == "application/jsonl"
    assert "status" not in json.loads(body.splitlines()[0])
    content_type, body = _events(api, "1.41", "application/json-seq")
    assert content_type == "application/json-seq"
    assert body.startswith(b"\x1e{") and b"\n\x1e{" in body
    assert _events(api, "1.56", "application/x-ndjson;q=0.5, application/jsonl")[0] \
        == "application/jsonl"


# -- volumes ---------------------------------------------------------------------------


def test_volume_update_route_from_1_42(api: Call):
    status, _, answer = api("1.41", "PUT", "/volumes/x?version=1", {})
    assert (status, answer) == (400, {
        "message": "PUT /volumes/{name:.*} requires minimum API version 1.42"})
    status, _, answer = api("1.42", "PUT", "/volumes/x?version=1", {})
    assert status == 503 and "swarm is unavailable" in answer["message"]


def test_volume_prune_all_from_1_42(api: Call):
    for name in ("named141", "named142"):
        api("1.56", "POST", "/volumes/create", {"Name": name})
    pruned = api("1.42", "POST", "/volumes/prune")[2]["VolumesDeleted"] or []
    assert "named141" not in pruned and "named142" not in pruned
    pruned = api("1.41", "POST", "/volumes/prune")[2]["VolumesDeleted"] or []
    assert {"named141", "named142"} <= set(pruned)


# -- the real CLIs, pinned ---------------------------------------------------------------


def _clis() -> list[str]:
    found = [shutil.which("docker"), "/usr/bin/docker"]
    return list(dict.fromkeys(path for path in found if path and Path(path).exists()))


@pytest.mark.parametrize("version", ["1.44", "1.56"])
@pytest.mark.parametrize("binary", _clis())
def test_everyday_commands_with_a_pinned_version(gated: Daemon, binary: str, version: str,
                                                  tmp_path: Path):
    """run, ps, logs, exec, cp, images, volumes with DOCKER_API_VERSION set (the CLI 28
    on PATH, and Debian's 20.10 when installed)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    env.update(DOCKER_HOST=f"unix://{gated.socket}", DOCKER_API_VERSION=version,
               DOCKER_CONFIG=str(tmp_path))

    def run(*args: str) -> str:
        done = subprocess.run([binary, *args], capture_output=True, text=True, env=env,
                              timeout=60, check=False)
        assert done.returncode == 0, (binary, version, args, done.stderr)
        return done.stdout

    name = f"pin{version.replace('.', '')}"
    try:
        run("volume", "create", name)
        assert run("run", "-d", "--name", name, "-v", f"{name}:/data", "bb:1", "sh", "-c",
                   "echo ready; sleep 60").strip()
        assert name in run("ps", "--format", "{{.Names}}").split()
        deadline = time.monotonic() + 10
        while "ready" not in run("logs", name) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run("logs", name) == "ready\n"
        assert run("exec", name, "sh", "-c", "echo hi > /data/f; cat /data/f") == "hi\n"
        (tmp_path / "in.txt").write_text("copied")
        run("cp", str(tmp_path / "in.txt"), f"{name}:/tmp/in.txt")
        run("cp", f"{name}:/tmp/in.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "copied"
        assert "bb" in run("images", "--format", "{{.Repository}}").split()
        assert name in run("volume", "ls", "-q").split()
    finally:
        subprocess.run([binary, "rm", "-f", name], capture_output=True, env=env, check=False)
        subprocess.run([binary, "volume", "rm", name], capture_output=True, env=env,
                       check=False)
    assert name not in run("volume", "ls", "-q").split()

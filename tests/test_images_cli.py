"""Acceptance: images through the real ``docker`` CLI against a real daemon.

The image is a busybox root filesystem made from Debian's busybox-static, imported
with ``docker import``.
"""

from __future__ import annotations

import io
import json
import signal
import tarfile
import time
from pathlib import Path

import pytest

from tests.cli import cli, import_image, inspect, ok
from tests.support import Daemon, _UnixConnection, unix_get

pytestmark = pytest.mark.integration







def listed(daemon: Daemon, *args: str) -> list[str]:
    return ok(daemon, "images", *args, "--format",
              "{{.Repository}}:{{.Tag}} {{.ID}}").split("\n")[:-1]


def post(daemon: Daemon, url: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    assert daemon.socket
    connection = _UnixConnection(daemon.socket)
    try:
        connection.request("POST", url, body=body,
                           headers={"Host": "api.moby.localhost",
                                    "Content-Type": "text/plain"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_import_list_inspect_tag_history_and_remove(daemon: Daemon, busybox_tar: Path):
    image_id = import_image(daemon, busybox_tar, "img:1")
    short = image_id[7:19]
    assert listed(daemon) == [f"img:1 {short}"]

    shown = inspect(daemon, "img:1")
    assert shown["Id"] == image_id and shown["RepoTags"] == ["img:1"]
    assert shown["Comment"] == "Imported from -" and shown["Os"] == "linux"
    # unset Cmd and Env: null, or omitted from API 1.52 on
    assert shown["Config"].get("Cmd") is None and shown["Config"].get("Env") is None
    assert shown["RootFS"]["Type"] == "layers" and len(shown["RootFS"]["Layers"]) == 1
    assert shown["Size"] > 1_000_000 and shown["GraphDriver"]["Name"] == "overlay2"
    upper = Path(shown["GraphDriver"]["Data"]["UpperDir"])
    assert (upper / "bin" / "busybox").is_file()
    assert (upper / "bin" / "sh").is_symlink()

    ok(daemon, "tag", "img:1", "img:2")
    assert sorted(listed(daemon)) == [f"img:1 {short}", f"img:2 {short}"]
    history = ok(daemon, "history", "--no-trunc", "--format",
                 "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", "img:1")
    assert history == f"{image_id}||Imported from -\n"

    assert ok(daemon, "rmi", "img:2") == "Untagged: img:2\n"
    assert listed(daemon) == [f"img:1 {short}"]
    removed = ok(daemon, "rmi", "img:1").splitlines()
    assert removed[:2] == ["Untagged: img:1", f"Deleted: {image_id}"]
    assert listed(daemon) == []
    assert not upper.exists()


def test_import_with_changes_and_a_message(daemon: Daemon, busybox_tar: Path):
    import_image(daemon, busybox_tar, "--change", 'CMD ["sh"]', "--change", "ENV A=b",
                 "--change", "WORKDIR /tmp", "--message", "made here", "conf")
    shown = inspect(daemon, "conf")
    assert shown["Config"]["Cmd"] == ["sh"]
    assert shown["Config"]["Env"] == ["A=b"]
    assert shown["Config"]["WorkingDir"] == "/tmp"
    assert shown["Comment"] == "made here"

    refused = cli(daemon, "import", "--change", "RUN rm -rf /", str(busybox_tar), "bad")
    assert refused.returncode != 0
    assert "run is not a valid change command" in refused.stderr
    assert listed(daemon) == [f"conf:latest {shown['Id'][7:19]}"]


def test_prune_removes_only_dangling_images(daemon: Daemon, busybox_tar: Path,
                                            workdir: Path):
    kept = import_image(daemon, busybox_tar, "keep:1")
    other = workdir / "other.tar"
    with tarfile.open(other, "w") as tar:
        info = tarfile.TarInfo("file")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"other"))
    dangling = import_image(daemon, other)
    assert len(listed(daemon, "-a")) == 2

    pruned = ok(daemon, "image", "prune", "-f")
    assert f"deleted: {dangling}" in pruned
    assert "Total reclaimed space: 5B" in pruned
    assert listed(daemon, "-a") == [f"keep:1 {kept[7:19]}"]


def test_list_filters_and_bad_filters(daemon: Daemon, busybox_tar: Path):
    for name in ("img:1", "imgx:2", "web/img:3", "other:4"):
        import_image(daemon, busybox_tar, name)
    names = [line.split()[0] for line in listed(daemon, "--filter", "reference=img*")]
    assert sorted(names) == ["img:1", "imgx:2"]
    names = [line.split()[0] for line in listed(daemon, "--filter", "reference=*/img")]
    assert names == ["web/img:3"]

    status, headers, body = unix_get(daemon.socket, "/v1.41/images/json?filters=%7Bbad")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["message"].startswith("invalid filter")
    status, _, body = unix_get(daemon.socket,
                               '/v1.41/images/json?filters={"dangling":["maybe"]}')
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'dangling=[maybe]'"})
    status, _, body = unix_get(daemon.socket, '/v1.41/images/json?filters={"nope":["x"]}')
    assert (status, json.loads(body)) == (400, {"message": "Invalid filter 'nope'"})


def test_layers_escaping_the_root_are_refused(daemon: Daemon, workdir: Path):
    evil = workdir / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    refused = cli(daemon, "import", str(evil), "evil")
    assert refused.returncode != 0
    assert "escapes the layer root" in refused.stderr

    status, headers, body = post(daemon, "/v1.41/images/create?fromSrc=-&repo=evil",
                                 evil.read_bytes())
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "message": 'invalid tar entry "../escape": path escapes the layer root'}
    assert not [path for path in workdir.rglob("escape")]
    assert not list((daemon.root / "image" / "layers" / "tmp").iterdir())
    assert not list((daemon.root / "image" / "layers" / "sha256").iterdir())
    assert listed(daemon, "-a") == []


def test_images_and_tags_survive_sigkill(daemon: Daemon, busybox_tar: Path):
    tagged = import_image(daemon, busybox_tar, "img:1")
    ok(daemon, "tag", "img:1", "img:2")
    untagged = import_image(daemon, busybox_tar)
    before = sorted(listed(daemon, "-a"))
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL

    again = Daemon(daemon.workdir).start()
    try:
        assert sorted(listed(again, "-a")) == before
        assert inspect(again, "img:2")["Id"] == tagged
        assert inspect(again, untagged)["RepoTags"] == []
        assert ok(again, "info", "--format", "{{.Images}}") == "2\n"
    finally:
        again.stop()


def test_events_show_image_actions(daemon: Daemon, busybox_tar: Path):
    since = int(time.time())
    image_id = import_image(daemon, busybox_tar, "ev:1")
    ok(daemon, "tag", "ev:1", "ev:2")
    ok(daemon, "rmi", "ev:2")
    ok(daemon, "rmi", "ev:1")
    time.sleep(1.1)  # the CLI sends --until as whole seconds
    shown = ok(daemon, "events", "--since", str(since), "--until", str(int(time.time())),
               "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    assert shown.splitlines() == [
        "image tag ev:1", f"image import {image_id}", "image tag ev:2",
        f"image untag {image_id}", f"image untag {image_id}", f"image delete {image_id}"]


def test_info_and_system_df_count_images(daemon: Daemon, busybox_tar: Path):
    assert ok(daemon, "info", "--format", "{{.Images}}") == "0\n"
    import_image(daemon, busybox_tar, "a:1")
    import_image(daemon, busybox_tar, "b:1")
    assert ok(daemon, "info", "--format", "{{.Images}}") == "2\n"
    usage = json.loads(unix_get(daemon.socket, "/v1.41/system/df")[2])
    assert len(usage["Images"]) == 2
    assert usage["LayersSize"] == usage["Images"][0]["Size"] > 1_000_000  # one shared layer
    assert usage["Images"][0]["SharedSize"] == usage["LayersSize"]


def test_errors_clients_can_show(daemon: Daemon, busybox_tar: Path):
    status, _, body = unix_get(daemon.socket, "/v1.41/images/nothing/json")
    assert (status, json.loads(body)) == (404, {
        "message": "no such image: nothing: No such image: nothing:latest"})
    pulled = cli(daemon, "pull", "busybox")  # Docker Hub stands at a closed loopback port
    assert pulled.returncode != 0 and "connection refused" in pulled.stderr
    status, _, body = post(daemon, "/v1.41/images/create?fromSrc=http%3A%2F%2Fx%2Fy.tar")
    assert status == 501 and "URL" in json.loads(body)["message"]

    image_id = import_image(daemon, busybox_tar, "one:1")
    ok(daemon, "tag", "one:1", "two:1")
    refused = cli(daemon, "rmi", image_id[7:19])
    assert refused.returncode != 0
    assert (f"conflict: unable to delete {image_id[7:19]} (must be forced) - image is "
            "referenced in multiple repositories") in refused.stderr
    assert "Deleted: " + image_id in ok(daemon, "rmi", "-f", image_id[7:19])
    assert unix_get(daemon.socket, "/_ping")[0] == 200

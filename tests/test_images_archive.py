"""Acceptance: ``docker save`` and ``docker load`` through the real CLI and a real daemon."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import pytest_twisted

from dockertw.client.docker import DockerClient
from tests.archives import (
    Entry,
    config,
    directory,
    docker_archive,
    file,
    info,
    members,
    oci_layout,
    sha256,
    tar,
)
from tests.cli import cli, import_image, inspect, ok
from tests.support import Daemon, _UnixConnection, docker, unix_get

pytestmark = pytest.mark.integration


def post(daemon: Daemon, url: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    assert daemon.socket
    connection = _UnixConnection(daemon.socket)
    try:
        connection.request("POST", url, body=body,
                           headers={"Host": "api.moby.localhost",
                                    "Content-Type": "application/x-tar"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def messages(body: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in body.split(b"\r\n") if line]


def load_file(daemon: Daemon, path: Path) -> subprocess.CompletedProcess[str]:
    return cli(daemon, "load", "-i", str(path))


def image_ids(daemon: Daemon) -> list[str]:
    return ok(daemon, "images", "-q", "--no-trunc").split()


def leftovers(daemon: Daemon) -> list[str]:
    """What is under the layer store and its staging directory."""
    layers = daemon.root / "image" / "layers"
    return sorted(str(p.relative_to(layers)) for p in layers.glob("*/*"))


# -- layers built by hand: a base and one with whiteouts and an opaque directory ------

LONG = "deep/" + "n" * 120  # longer than ustar's 100 bytes: PAX path records


def base_layer() -> bytes:
    return tar([directory("a"), file("a/x", b"x" * 700), file("a/y", b"y"),
                directory("d"), file("d/old", b"old"), directory("deep"),
                file(LONG, b"long name"), file("bin/tool", b"#!/bin/sh\n", mode=0o755)])


def upper_layer() -> bytes:
    """Whiteout of a/x, an opaque d/ with a new file, GNU long names; trailing junk."""
    entries = [directory("a"), file("a/.wh.x"), directory("d"), file("d/.wh..wh..opq"),
               file("d/new", b"n" * 1500), file("g" * 130, b"gnu long name"),
               (info("link", tarfile.SYMTYPE, linkname="a/y"), None)]
    return tar(entries, fmt=tarfile.GNU_FORMAT) + b"\0" * 512 + b"trailing bytes"


def two_layer_archive(tag: str, extra: Sequence[Entry] = ()
                      ) -> tuple[bytes, str, list[bytes]]:
    layers = [base_layer(), upper_layer()]
    raw = config([sha256(layer) for layer in layers])
    return docker_archive([(raw, layers, [tag])], extra), sha256(raw), layers


# -- the acceptance ------------------------------------------------------------------


def test_save_rmi_load_gives_the_same_image(daemon: Daemon, busybox_tar: Path,
                                            workdir: Path):
    image_id = import_image(daemon, busybox_tar, "img:1")
    ok(daemon, "tag", "img:1", "img:2")
    saved = workdir / "saved.tar"
    ok(daemon, "save", "-o", str(saved), "img:1", "img:2")

    found = members(saved.read_bytes())
    manifest = json.loads(found["manifest.json"] or b"")
    assert manifest[0]["Config"] == image_id[7:] + ".json"
    assert sorted(manifest[0]["RepoTags"]) == ["img:1", "img:2"]
    (layer_name,) = manifest[0]["Layers"]
    assert sha256(found[layer_name] or b"") == sha256(busybox_tar.read_bytes())
    assert found[layer_name.replace("layer.tar", "VERSION")] == b"1.0"
    assert json.loads(found["repositories"] or b"")["img"].keys() == {"1", "2"}

    ok(daemon, "rmi", "img:1", "img:2")
    assert image_ids(daemon) == []
    loaded = ok(daemon, "load", "-i", str(saved))
    assert sorted(loaded.splitlines()) == ["Loaded image: img:1", "Loaded image: img:2"]
    assert inspect(daemon, "img:1")["Id"] == image_id
    assert sorted(inspect(daemon, image_id)["RepoTags"]) == ["img:1", "img:2"]


def test_save_piped_into_load_on_another_daemon(start_daemon: Callable[..., Daemon],
                                                busybox_tar: Path):
    first, second = start_daemon(), start_daemon()
    image_id = import_image(first, busybox_tar, "piped:v1")
    save = subprocess.Popen(["docker", "-H", f"unix://{first.socket}", "save", "piped:v1"],
                            stdout=subprocess.PIPE)
    load = subprocess.run(["docker", "-H", f"unix://{second.socket}", "load"],
                          stdin=save.stdout, capture_output=True, text=True, timeout=60,
                          check=False)
    assert save.stdout is not None
    save.stdout.close()
    assert save.wait(timeout=60) == 0
    assert load.returncode == 0, load.stderr
    assert load.stdout == "Loaded image: piped:v1\n"
    assert inspect(second, "piped:v1")["Id"] == image_id


def test_layers_with_whiteouts_round_trip_byte_exact(daemon: Daemon, workdir: Path):
    archive, image_id, layers = two_layer_archive("layered:1")
    (workdir / "in.tar").write_bytes(archive)
    assert ok(daemon, "load", "-i", str(workdir / "in.tar")) == "Loaded image: layered:1\n"
    assert inspect(daemon, "layered:1")["Id"] == image_id

    ok(daemon, "save", "-o", str(workdir / "out.tar"), "layered:1")
    found = members((workdir / "out.tar").read_bytes())
    manifest = json.loads(found["manifest.json"] or b"")
    assert [found[name] for name in manifest[0]["Layers"]] == layers
    assert found[image_id[7:] + ".json"] == config([sha256(layer) for layer in layers])

    ok(daemon, "rmi", "layered:1")
    assert ok(daemon, "load", "-i", str(workdir / "out.tar")) == "Loaded image: layered:1\n"
    assert inspect(daemon, "layered:1")["Id"] == image_id


def test_two_images_in_one_archive_and_a_moved_tag(daemon: Daemon, busybox_tar: Path,
                                                   workdir: Path):
    busybox = import_image(daemon, busybox_tar, "one:latest")
    archive, layered, _ = two_layer_archive("two:latest")
    (workdir / "two.tar").write_bytes(archive)
    ok(daemon, "load", "-i", str(workdir / "two.tar"))
    ok(daemon, "save", "-o", str(workdir / "both.tar"), "one", "two:latest")
    manifest = json.loads(members((workdir / "both.tar").read_bytes())["manifest.json"]
                          or b"")
    assert [item["RepoTags"] for item in manifest] == [["one:latest"], ["two:latest"]]

    ok(daemon, "rmi", "one", "two")
    ok(daemon, "tag", import_image(daemon, busybox_tar, "--change", "ENV A=1", "x"),
       "two:latest")
    loaded = ok(daemon, "load", "-i", str(workdir / "both.tar")).splitlines()
    assert loaded[0] == "Loaded image: one:latest"
    assert loaded[1].startswith("The image two:latest already exists, renaming the old "
                                "one with ID sha256:")
    assert loaded[1].endswith(" to empty string") and loaded[2] == "Loaded image: two:latest"
    assert inspect(daemon, "one")["Id"] == busybox
    assert inspect(daemon, "two")["Id"] == layered


def test_load_of_an_oci_layout(daemon: Daemon, workdir: Path):
    layers = [base_layer(), upper_layer()]
    raw = config([sha256(layer) for layer in layers])
    layout = oci_layout(raw, layers, {"io.containerd.image.name": "docker.io/oci/img:v2",
                                      "org.opencontainers.image.ref.name": "v2"})
    (workdir / "oci.tar").write_bytes(layout)
    assert ok(daemon, "load", "-i", str(workdir / "oci.tar")) == "Loaded image: oci/img:v2\n"
    assert inspect(daemon, "oci/img:v2")["Id"] == sha256(raw)

    untagged = oci_layout(config([sha256(layers[0])]), layers[:1],
                          {"org.opencontainers.image.ref.name": "latest"})
    (workdir / "untagged.tar").write_bytes(untagged)
    loaded = ok(daemon, "load", "-i", str(workdir / "untagged.tar"))
    assert loaded == f"Loaded image ID: {sha256(config([sha256(layers[0])]))}\n"


def test_tampered_layer_is_refused_and_leaves_nothing(daemon: Daemon, workdir: Path):
    good = base_layer()
    raw = config([sha256(good)])
    tampered = good.replace(b"x" * 700, b"z" * 700)
    (workdir / "bad.tar").write_bytes(docker_archive([(raw, [tampered], ["bad:1"])]))
    done = load_file(daemon, workdir / "bad.tar")
    assert done.returncode != 0
    assert (f'invalid diffID for layer 0: expected "{sha256(good)}", '
            f'got "{sha256(tampered)}"') in done.stderr
    assert image_ids(daemon) == [] and leftovers(daemon) == []


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/etc/evil"])
def test_escaping_members_are_refused(daemon: Daemon, workdir: Path, name: str):
    archive, _, _ = two_layer_archive("esc:1", [file(name, b"owned")])
    (workdir / "evil.tar").write_bytes(archive)
    done = load_file(daemon, workdir / "evil.tar")
    assert done.returncode != 0
    assert f'invalid archive member "{name}"' in done.stderr
    assert image_ids(daemon) == [] and leftovers(daemon) == []
    assert not (workdir / "evil").exists() and not Path("/etc/evil").exists()


def test_load_answers_progress_unless_quiet(daemon: Daemon):
    archive, image_id, layers = two_layer_archive("prog:1")
    status, headers, body = post(daemon, "/v1.41/images/load?quiet=0", archive)
    assert status == 200 and headers["Content-Type"] == "application/json"
    shown = messages(body)
    progress = [m for m in shown if m.get("status") == "Loading layer"]
    assert {m["id"] for m in progress} == {sha256(layer)[7:19] for layer in layers}
    assert progress[-1]["progressDetail"] == {"current": len(layers[1]),
                                              "total": len(layers[1])}
    assert shown[-1] == {"stream": "Loaded image: prog:1\n"}

    status, _, body = post(daemon, "/v1.41/images/load", b"not a tar at all" * 64)
    assert status == 200 and "error" in messages(body)[-1]


def test_save_errors(daemon: Daemon, busybox_tar: Path, workdir: Path):
    assert daemon.socket
    status, _, body = unix_get(daemon.socket, "/v1.41/images/nosuch:1/get")
    assert (status, json.loads(body)) == (404, {"message": "reference does not exist"})
    status, _, body = unix_get(daemon.socket, "/v1.41/images/get?names=abcdef")
    assert (status, json.loads(body)) == (404, {"message": "No such image: abcdef"})
    done = cli(daemon, "save", "-o", str(workdir / "none.tar"), "nosuch")
    assert done.returncode != 0 and "No such image: nosuch" in done.stderr

    image_id = import_image(daemon, busybox_tar, "old:1")
    for record in (daemon.root / "image" / "layers" / "sha256").glob("*/tar-split.gz"):
        record.unlink()  # as a layer stored before records were kept
    status, _, body = unix_get(daemon.socket, "/v1.41/images/old:1/get")
    assert status == 500 and "stored before dockertw kept tar-split records" in (
        json.loads(body)["message"])
    import_image(daemon, busybox_tar, "old:2")  # importing it again records it
    status, headers, body = unix_get(daemon.socket, f"/v1.41/images/{image_id}/get")
    assert status == 200 and headers["Content-Type"] == "application/x-tar"
    assert json.loads(members(body)["manifest.json"] or b"")[0]["RepoTags"] is None


def test_loading_again_records_a_layer_stored_without_a_record(daemon: Daemon,
                                                               workdir: Path):
    assert daemon.socket
    archive, _, layers = two_layer_archive("again:1")
    (workdir / "in.tar").write_bytes(archive)
    ok(daemon, "load", "-i", str(workdir / "in.tar"))
    for record in (daemon.root / "image" / "layers" / "sha256").glob("*/tar-split.gz"):
        record.unlink()
    assert unix_get(daemon.socket, "/v1.41/images/again:1/get")[0] == 500
    assert ok(daemon, "load", "-i", str(workdir / "in.tar")) == "Loaded image: again:1\n"
    status, _, body = unix_get(daemon.socket, "/v1.41/images/again:1/get")
    found = members(body)
    manifest = json.loads(found["manifest.json"] or b"")
    assert status == 200 and [found[name] for name in manifest[0]["Layers"]] == layers


def test_events_show_save_and_load(daemon: Daemon, busybox_tar: Path, workdir: Path):
    assert daemon.socket
    since = time.time()
    image_id = import_image(daemon, busybox_tar, "ev:1")
    ok(daemon, "save", "-o", str(workdir / "ev.tar"), "ev:1")
    ok(daemon, "rmi", "ev:1")
    ok(daemon, "load", "-i", str(workdir / "ev.tar"))
    status, _, body = unix_get(
        daemon.socket, f"/v1.41/events?since={since:.3f}&until={time.time() + 0.001:.3f}"
        "&filters=%7B%22event%22%3A%5B%22save%22%2C%22load%22%5D%7D")
    assert status == 200
    shown = [json.loads(line) for line in body.splitlines()]
    assert [(e["Action"], e["Actor"]["ID"]) for e in shown] == [("save", image_id),
                                                               ("load", image_id)]
    assert all(e["Type"] == "image" and e["Actor"]["Attributes"]["name"] == image_id
               for e in shown)


def test_client_disconnect_during_save_releases_the_stream(daemon: Daemon,
                                                          busybox_tar: Path):
    assert daemon.socket
    import_image(daemon, busybox_tar, "big:1")
    connection = _UnixConnection(daemon.socket)
    connection.request("GET", "/v1.41/images/get?names=big:1",
                       headers={"Host": "api.moby.localhost"})
    response = connection.getresponse()
    assert response.status == 200 and response.read(1024)
    connection.close()  # mid-stream
    ok(daemon, "rmi", "big:1")
    deadline = time.monotonic() + 10
    while leftovers(daemon) and time.monotonic() < deadline:
        time.sleep(0.1)  # the export lets go of the layer, then it is removed
    assert image_ids(daemon) == [] and leftovers(daemon) == []
    assert docker("-H", f"unix://{daemon.socket}", "version").returncode == 0


def test_a_layer_changed_on_disk_fails_the_save_loudly(daemon: Daemon, workdir: Path):
    archive, _, _ = two_layer_archive("changed:1")
    (workdir / "in.tar").write_bytes(archive)
    ok(daemon, "load", "-i", str(workdir / "in.tar"))
    upper = Path(inspect(daemon, "changed:1")["GraphDriver"]["Data"]["UpperDir"])
    (upper / "d" / "new").write_bytes(b"m" * 1500)  # same size, other contents
    done = cli(daemon, "save", "-o", str(workdir / "out.tar"), "changed:1")
    assert done.returncode != 0 and "unexpected EOF" in done.stderr
    assert "cannot be saved: its replayed tar stream hashes to" in daemon.output()


@pytest_twisted.ensureDeferred
async def test_the_client_saves_and_loads(daemon: Daemon, busybox_tar: Path):
    image_id = import_image(daemon, busybox_tar, "client:1")
    client = DockerClient(f"unix://{daemon.socket}")
    try:
        saved = b"".join([data async for data in client.save_images(["client:1"])])
        ok(daemon, "rmi", "client:1")
        loaded = await client.load_images(saved, quiet=False)
        assert loaded[0]["status"] == "Loading layer" and loaded[0]["id"] == (
            layer_diff_ids(saved)[0][7:19])
        assert loaded[-1] == {"stream": "Loaded image: client:1\n"}
    finally:
        await client.close()
    assert inspect(daemon, "client:1")["Id"] == image_id


def layer_diff_ids(archive: bytes) -> list[str]:
    """The diff IDs of the layers of the (single) image in ``archive``."""
    found = members(archive)
    manifest = json.loads(found["manifest.json"] or b"")
    return [sha256(found[name] or b"") for name in manifest[0]["Layers"]]


def test_a_shared_layer_is_saved_once_and_loads_back(daemon: Daemon, workdir: Path):
    layers = [base_layer(), upper_layer()]
    upper, lower = config([sha256(x) for x in layers]), config([sha256(layers[0])])
    (workdir / "in.tar").write_bytes(docker_archive([(upper, layers, ["up:1"]),
                                                     (lower, layers[:1], ["low:1"])]))
    ok(daemon, "load", "-i", str(workdir / "in.tar"))
    ok(daemon, "save", "-o", str(workdir / "out.tar"), "low:1", "up:1")
    with tarfile.open(workdir / "out.tar") as opened:
        assert len([m for m in opened if m.issym()]) == 1
    ok(daemon, "rmi", "low:1", "up:1")
    assert leftovers(daemon) == []
    loaded = ok(daemon, "load", "-i", str(workdir / "out.tar"))
    assert loaded == "Loaded image: low:1\nLoaded image: up:1\n"
    assert [inspect(daemon, n)["Id"] for n in ("up:1", "low:1")] == [sha256(upper),
                                                                     sha256(lower)]

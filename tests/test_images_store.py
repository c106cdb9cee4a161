"""The image store: layers, configs, tags, resolution, deletion and reloading."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from dockertw.daemon.images import store as store_module
from dockertw.daemon.images.layers import chain_ids
from dockertw.daemon.images.reference import parse_normalized
from dockertw.daemon.images.store import ImageStore, ImageUser
from dockertw.errdefs import Conflict, InvalidParameter, NotFound


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _config(diff_ids: list[str], created: str = "2026-11-28T00:55:51.116536374Z",
            **config: object) -> bytes:
    document = {
        "architecture": "amd64", "os": "linux", "created": created,
        "config": {"Cmd": ["sh"], **config},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": created, "created_by": "test"} for _ in diff_ids],
    }
    return json.dumps(document, sort_keys=True).encode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, str]]] = []

    def __call__(self, action: str, image_id: str, attributes: Mapping[str, str]) -> None:
        self.events.append((action, image_id, dict(attributes)))


@pytest.fixture
def events() -> Recorder:
    return Recorder()


@pytest.fixture
def store(tmp_path: Path, events: Recorder) -> ImageStore:
    return ImageStore.open(tmp_path, events=events)


def _image(store: ImageStore, *layers: Mapping[str, bytes], parent: str = "",
           created: str = "2026-11-28T00:55:51.116536374Z", **config: object) -> str:
    top = None
    diff_ids = []
    for files in layers:
        layer = store.add_layer(io.BytesIO(_tar(files)), top)
        top = layer.chain_id
        diff_ids.append(layer.diff_id)
    return store.create_image(_config(diff_ids, created, **config), parent=parent)


def _layer_dirs(root: Path) -> set[str]:
    return {p.name for p in (root / "image/layers/sha256").iterdir()}


# -- layers ------------------------------------------------------------------------


def test_layers_are_stored_by_chain_id(store: ImageStore, tmp_path: Path):
    first_tar, second_tar = _tar({"a": b"1"}), _tar({"b": b"22"})
    base = store.add_layer(io.BytesIO(first_tar))
    top = store.add_layer(io.BytesIO(gzip.compress(second_tar)), base.chain_id)
    assert base.chain_id == base.diff_id == _sha(first_tar)
    assert top.diff_id == _sha(second_tar)
    assert [base.chain_id, top.chain_id] == chain_ids([_sha(first_tar), _sha(second_tar)])
    directory = tmp_path / "image/layers/sha256" / top.chain_id.removeprefix("sha256:")
    assert (directory / "diff/b").read_bytes() == b"22"
    assert (directory / "diff-id").read_text() == top.diff_id
    assert (directory / "size").read_text() == "2"
    assert (directory / "parent").read_text() == base.chain_id
    assert top.path == directory / "diff"
    assert not (directory.parent / base.chain_id.removeprefix("sha256:") / "parent").exists()
    assert [layer.chain_id for layer in store.layer_chain(top.chain_id)] == [
        base.chain_id, top.chain_id]


def test_adding_a_layer_twice_reuses_it(store: ImageStore, tmp_path: Path):
    data = _tar({"a": b"1"})
    first = store.add_layer(io.BytesIO(data))
    again = store.add_layer(io.BytesIO(gzip.compress(data)))
    assert first == again and len(store.layers()) == 1
    assert list((tmp_path / "image/layers/tmp").iterdir()) == []


def test_a_bad_layer_leaves_nothing_behind(store: ImageStore, tmp_path: Path):
    with pytest.raises(InvalidParameter, match='"../x": path escapes'):
        store.add_layer(io.BytesIO(_tar({"../x": b"!"})))
    assert store.layers() == [] and _layer_dirs(tmp_path) == set()
    assert list((tmp_path / "image/layers/tmp").iterdir()) == []
    with pytest.raises(NotFound, match="layer sha256:0+ does not exist"):
        store.add_layer(io.BytesIO(_tar({})), "sha256:" + "0" * 64)


# -- images and names --------------------------------------------------------------


def test_image_id_is_the_sha256_of_the_config(store: ImageStore, tmp_path: Path):
    layer = store.add_layer(io.BytesIO(_tar({"bin/sh": b"#!"})))
    config = _config([layer.diff_id], Labels={"a": "b"})
    image_id = store.create_image(config)
    assert image_id == _sha(config)
    assert (tmp_path / "image/imagedb/sha256" / image_id[7:]).read_bytes() == config
    image = store.get(image_id)
    assert image.raw_config == config and image.chain == (layer.chain_id,)
    assert image.size == 2 and image.labels == {"a": "b"} and image.repo_tags == ()
    assert image.created_unix == 1_795_827_351
    assert store.create_image(config) == image_id  # idempotent


@pytest.mark.parametrize(("config", "message"), [
    (b"{not json", "invalid image JSON"),
    (b"[]", "invalid image JSON"),
    (b"{}", "invalid image JSON, no RootFS key"),
    (json.dumps({"rootfs": {"diff_ids": ["sha256:abc"]}}).encode(),
     "invalid checksum digest length"),
    (json.dumps({"rootfs": {"diff_ids": []}, "history": [{}]}).encode(),
     "too many non-empty layers in History section"),
    (_config(["sha256:" + "1" * 64]), "failed to get layer sha256:1+: layer does not exist"),
])
def test_bad_configs_are_refused(store: ImageStore, config: bytes, message: str):
    with pytest.raises(InvalidParameter, match=message):
        store.create_image(config)
    assert store.images() == []


def test_an_image_without_layers_is_allowed(store: ImageStore):
    image_id = store.create_image(_config([]))
    assert store.get(image_id).chain == () and store.get(image_id).size == 0


def test_tag_and_resolve_every_way(store: ImageStore, events: Recorder):
    image_id = _image(store, {"a": b"1"}, Labels={"mr": "1"})
    hex_id = image_id[7:]
    assert store.tag(image_id, "busybox") == "busybox:latest"
    assert store.tag(hex_id[:12], "localhost:5000/a/b", "v1.0") == "localhost:5000/a/b:v1.0"
    for name in ["busybox", "busybox:latest", "docker.io/library/busybox:latest",
                 "index.docker.io/library/busybox", "docker.io/busybox",
                 "localhost:5000/a/b:v1.0", image_id, hex_id, hex_id[:5],
                 "sha256:" + hex_id[:7]]:
        assert store.resolve(name) == image_id, name
    image = store.get("busybox")
    assert image.repo_tags == ("busybox:latest", "localhost:5000/a/b:v1.0")
    assert image.last_tag_time.endswith("Z")
    assert events.events[0] == ("tag", image_id, {"mr": "1", "name": "busybox:latest"})


def test_repositories_json_has_dockers_shape(store: ImageStore, tmp_path: Path):
    image_id = _image(store, {"a": b"1"})
    store.tag(image_id, "busybox", "local")
    store.tag(image_id, "me/app")
    digest = "sha256:" + "ab" * 32
    store.add_reference(parse_normalized("busybox@" + digest), image_id)
    document = json.loads((tmp_path / "image/repositories.json").read_text())
    assert document == {"Repositories": {
        "busybox": {"busybox:local": image_id, "busybox@" + digest: image_id},
        "me/app": {"me/app:latest": image_id},
    }}
    assert store.get("busybox@" + digest).repo_digests == ("busybox@" + digest,)


@pytest.mark.parametrize(("name", "message"), [
    ("nothere", "No such image: nothere:latest"),
    ("nothere:1", "No such image: nothere:1"),
    ("docker.io/library/gone:2", "No such image: gone:2"),
    ("localhost:5000/x", "No such image: localhost:5000/x:latest"),
    ("sha256:" + "0" * 64, "No such image: sha256:" + "0" * 64),
    ("0" * 64, "No such image: sha256:" + "0" * 64),
    ("abc123", "No such image: abc123:latest"),
])
def test_unknown_images_have_dockers_message(store: ImageStore, name: str, message: str):
    _image(store, {"a": b"1"})
    with pytest.raises(NotFound) as caught:
        store.get(name)
    assert str(caught.value) == message


def test_bad_names_are_invalid(store: ImageStore):
    with pytest.raises(InvalidParameter,
                       match="^invalid reference format: repository name must be lowercase$"):
        store.get("BusyBox")
    with pytest.raises(InvalidParameter, match="^invalid reference format$"):
        store.get("bad name")


def test_ambiguous_id_prefixes_find_nothing(store: ImageStore):
    ids = [_image(store, {f"f{n}": b"x"}) for n in range(40)]
    first = ids[0][7]
    sharing = [i for i in ids if i[7] == first]
    assert len(sharing) > 1
    with pytest.raises(NotFound):
        store.resolve(first)
    assert store.resolve(ids[0][7:30]) == ids[0]


def test_tag_errors(store: ImageStore):
    image_id = _image(store, {"a": b"1"})
    with pytest.raises(InvalidParameter, match="^invalid tag format$"):
        store.tag(image_id, "repo", "-bad")
    with pytest.raises(InvalidParameter, match="digest reference"):
        store.tag(image_id, "repo@sha256:" + "a" * 64)
    with pytest.raises(InvalidParameter, match="cannot specify 64-byte hexadecimal"):
        store.tag(image_id, "a" * 64)
    with pytest.raises(NotFound, match="No such image: missing:latest"):
        store.tag("missing", "repo")


def test_tags_move_and_digests_do_not(store: ImageStore):
    first, second = _image(store, {"a": b"1"}), _image(store, {"b": b"2"})
    store.tag(first, "app:1")
    store.tag(second, "app:1")
    assert store.resolve("app:1") == second and store.get(first).repo_tags == ()
    with pytest.raises(Conflict, match="Conflict: Tag app:1 is already set to image"):
        store.add_reference(parse_normalized("app:1"), first, force=False)
    digested = parse_normalized("app@sha256:" + "c" * 64)
    store.add_reference(digested, first)
    with pytest.raises(Conflict, match="Cannot overwrite digest sha256:c+"):
        store.add_reference(digested, second)


def test_images_are_listed_newest_first(store: ImageStore):
    old = _image(store, {"a": b"1"}, created="2020-01-01T00:00:00Z")
    new = _image(store, {"b": b"1"}, created="2024-01-01T00:00:00.5Z")
    middle = _image(store, {"c": b"1"}, created="2022-06-01T10:00:00.123456789Z")
    assert [image.id for image in store.images()] == [new, middle, old]


# -- deletion ----------------------------------------------------------------------


def test_untag_then_delete(store: ImageStore, tmp_path: Path, events: Recorder):
    image_id = _image(store, {"a": b"1"}, {"b": b"2"})
    chain = store.get(image_id).chain
    store.tag(image_id, "mr-commit:1")
    store.tag(image_id, "mr-commit:2")
    assert store.delete("mr-commit:1") == [{"Untagged": "mr-commit:1"}]
    assert store.resolve("mr-commit:2") == image_id
    assert store.delete("mr-commit:2") == [
        {"Untagged": "mr-commit:2"}, {"Deleted": image_id},
        {"Deleted": chain[1]}, {"Deleted": chain[0]},
    ]
    assert store.images() == [] and store.layers() == [] and _layer_dirs(tmp_path) == set()
    assert list((tmp_path / "image/imagedb/sha256").iterdir()) == []
    assert list((tmp_path / "image/imagedb/metadata/sha256").iterdir()) == []
    assert [e[0] for e in events.events] == ["tag", "tag", "untag", "untag", "delete"]
    with pytest.raises(NotFound, match="No such image: mr-commit:2"):
        store.delete("mr-commit:2")


def test_delete_by_id_of_a_multiply_tagged_image_needs_force(store: ImageStore):
    image_id = _image(store, {"a": b"1"})
    store.tag(image_id, "a:1")
    store.tag(image_id, "b:1")
    with pytest.raises(Conflict) as caught:
        store.delete(image_id[7:19])
    assert str(caught.value) == (f"conflict: unable to delete {image_id[7:19]} (must be forced)"
                                 " - image is referenced in multiple repositories")
    records = store.delete(image_id, force=True)
    assert records[:3] == [{"Untagged": "a:1"}, {"Untagged": "b:1"}, {"Deleted": image_id}]


def test_delete_by_id_of_a_once_tagged_image_untags_it(store: ImageStore):
    image_id = _image(store, {"a": b"1"})
    store.tag(image_id, "only:1")
    digest = "only@sha256:" + "d" * 64
    store.add_reference(parse_normalized(digest), image_id)
    records = store.delete("sha256:" + image_id[7:15])
    assert records[:3] == [{"Untagged": "only:1"}, {"Untagged": digest}, {"Deleted": image_id}]


def test_removing_the_last_tag_drops_the_repositorys_digests(store: ImageStore):
    image_id = _image(store, {"a": b"1"})
    store.tag(image_id, "app:1")
    store.tag(image_id, "other:1")
    digest = "app@sha256:" + "e" * 64
    store.add_reference(parse_normalized(digest), image_id)
    assert store.delete("app:1") == [{"Untagged": "app:1"}, {"Untagged": digest}]
    assert store.get(image_id).repo_tags == ("other:1",)


def test_shared_layers_outlive_one_image(store: ImageStore):
    first = _image(store, {"base": b"b"}, {"one": b"1"})
    second = _image(store, {"base": b"b"}, {"two": b"2"})
    base = store.get(first).chain[0]
    assert store.get(second).chain[0] == base
    records = store.delete(first)
    assert records == [{"Deleted": first}, {"Deleted": store_chain_top(records)}]
    assert store.layer(base).chain_id == base
    assert store.delete(second)[-1] == {"Deleted": base}


def store_chain_top(records: list[dict[str, str]]) -> str:
    return records[-1]["Deleted"]


def test_untagged_parents_are_pruned_unless_asked_not_to(store: ImageStore):
    parent = _image(store, {"a": b"1"})
    child = _image(store, {"a": b"1"}, {"b": b"2"}, parent=parent)
    store.tag(child, "child")
    assert store.children(parent) == [child]
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image has dependent child"):
        store.delete(parent, force=True)
    records = store.delete("child")
    assert [r.get("Deleted") for r in records if "Deleted" in r][:1] == [child]
    assert {"Deleted": parent} in records and store.images() == []
    parent = _image(store, {"a": b"1"})
    child = _image(store, {"a": b"1"}, {"b": b"2"}, parent=parent)
    store.delete(child, prune=False)
    assert store.resolve(parent) == parent


def test_tagged_parents_are_kept(store: ImageStore):
    parent = _image(store, {"a": b"1"})
    store.tag(parent, "base")
    child = _image(store, {"a": b"1"}, {"b": b"2"}, parent=parent)
    assert {"Deleted": parent} not in store.delete(child)
    assert store.resolve("base") == parent


def test_images_used_by_containers(store: ImageStore):
    image_id = _image(store, {"a": b"1"})
    store.tag(image_id, "used")
    users = [ImageUser("c0ffee" * 10 + "abcd", running=False)]
    store.image_users = lambda wanted: users if wanted == image_id else []
    with pytest.raises(Conflict) as caught:
        store.delete("used")
    assert str(caught.value) == (
        'conflict: unable to remove repository reference "used" (must force) - '
        f"container c0ffeec0ffee is using its referenced image {image_id[7:19]}")
    with pytest.raises(Conflict, match=r"\(must be forced\) - image is being used by stopped"):
        store.delete(image_id)
    users[0] = ImageUser(users[0].container_id, running=True)
    with pytest.raises(Conflict, match=r"\(cannot be forced\) - image is being used by running"):
        store.delete(image_id, force=True)
    assert store.delete("used", force=True) == [{"Untagged": "used:latest"}]
    assert store.resolve(image_id) == image_id  # kept: a running container uses it
    users[0] = ImageUser(users[0].container_id, running=False)
    assert store.delete(image_id, force=True)[0] == {"Deleted": image_id}


def test_pinned_layers_survive_their_image(store: ImageStore):
    image_id = _image(store, {"a": b"1"})
    chain = store.get(image_id).chain
    store.pinned_layers = lambda: set(chain)
    assert store.delete(image_id) == [{"Deleted": image_id}]
    assert store.layer(chain[0]).path.is_dir()
    store.pinned_layers = set
    assert store.delete_unused_layers() == list(chain)
    assert store.layers() == []


def test_unused_layers_are_removed_top_down(store: ImageStore):
    base = store.add_layer(io.BytesIO(_tar({"a": b"1"})))
    top = store.add_layer(io.BytesIO(_tar({"b": b"1"})), base.chain_id)
    used = _image(store, {"c": b"1"})
    assert store.delete_unused_layers() == [top.chain_id, base.chain_id]
    assert [layer.chain_id for layer in store.layers()] == list(store.get(used).chain)


# -- persistence -------------------------------------------------------------------


def test_a_reopened_store_sees_the_same_state(tmp_path: Path, store: ImageStore):
    parent = _image(store, {"a": b"1"})
    child = _image(store, {"a": b"1"}, {"b": b"2"}, parent=parent)
    store.tag(child, "app:1")
    store.tag(parent, "localhost:5000/base")
    store.add_reference(parse_normalized("app@sha256:" + "f" * 64), child)
    before = {image.id: image for image in store.images()}
    again = ImageStore.open(tmp_path)
    after = {image.id: image for image in again.images()}
    assert after == before
    assert again.get(child).parent == parent
    assert again.resolve("app:1") == child and again.resolve("localhost:5000/base") == parent
    assert sorted(again.layers(), key=str) == sorted(store.layers(), key=str)
    assert again.delete("app:1")[0] == {"Untagged": "app:1"}


def test_reopening_skips_damage_and_clears_leftovers(tmp_path: Path, store: ImageStore):
    good = _image(store, {"a": b"1"})
    store.tag(good, "good")
    bad = _image(store, {"b": b"2"})
    store.tag(bad, "bad")
    image_root = tmp_path / "image"
    (image_root / "imagedb/sha256" / bad[7:]).write_bytes(b'{"rootfs": {}}')  # corrupted
    (image_root / "layers/tmp/layer-crashed/diff").mkdir(parents=True)
    half = image_root / "layers/sha256" / ("9" * 64)
    (half / "diff").mkdir(parents=True)  # no diff-id: never committed
    (image_root / ".repositories.json.tmp-1").write_bytes(b"{")
    orphan = image_root / "imagedb/metadata/sha256" / ("8" * 64)
    orphan.mkdir()
    again = ImageStore.open(tmp_path)
    assert [image.id for image in again.images()] == [good]
    assert again.resolve("good") == good
    with pytest.raises(NotFound):
        again.resolve("bad")
    assert list((image_root / "layers/tmp").iterdir()) == []
    assert "sha256:" + "9" * 64 not in {layer.chain_id for layer in again.layers()}
    assert not orphan.exists()


def test_every_state_file_is_written_atomically(tmp_path: Path, monkeypatch):
    written: list[str] = []
    real = store_module.atomic_write

    def recording(path: Path, data: bytes, mode: int = 0o600) -> None:
        written.append(str(path.relative_to(tmp_path / "image")).split("/")[-1])
        real(path, data, mode)

    monkeypatch.setattr(store_module, "atomic_write", recording)
    store = ImageStore.open(tmp_path)
    parent = _image(store, {"a": b"1"})
    child = _image(store, {"a": b"1"}, {"b": b"1"}, parent=parent)
    store.tag(child, "x")
    assert {"diff-id", "size", "parent", child[7:], parent[7:], "repositories.json",
            "lastUpdated"} <= set(written)
    leftovers = [p for p in (tmp_path / "image").rglob(".*tmp*")]
    assert leftovers == []


def test_a_crash_while_committing_a_layer_leaves_no_layer(tmp_path: Path, monkeypatch):
    store = ImageStore.open(tmp_path)

    def crash(source: object, target: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(store_module.os, "rename", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.add_layer(io.BytesIO(_tar({"a": b"1"})))
    monkeypatch.undo()
    assert store.layers() == [] and _layer_dirs(tmp_path) == set()
    assert ImageStore.open(tmp_path).layers() == []


def test_a_crash_while_saving_tags_keeps_the_old_file(tmp_path: Path, monkeypatch):
    store = ImageStore.open(tmp_path)
    image_id = _image(store, {"a": b"1"})
    store.tag(image_id, "kept")
    path = tmp_path / "image/repositories.json"
    before = path.read_bytes()

    def crash(source: object, target: object) -> None:
        raise OSError("simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.tag(image_id, "lost")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert ImageStore.open(tmp_path).get(image_id).repo_tags == ("kept:latest",)


def test_events_carry_labels_while_the_image_exists(store: ImageStore, events: Recorder):
    image_id = _image(store, {"a": b"1"}, Labels={"team": "core"})
    store.tag(image_id, "app")
    events.events.clear()
    store.delete("app")
    assert events.events == [
        ("untag", image_id, {"team": "core", "name": image_id}),
        ("delete", image_id, {"name": image_id}),
    ]


def test_malformed_labels_do_not_break_anything(store: ImageStore):
    image_id = _image(store, {"a": b"1"}, Labels=["not", "a", "map"])
    assert store.get(image_id).labels == {}
    store.tag(image_id, "odd")
    assert store.delete("odd")[1] == {"Deleted": image_id}


def test_a_missing_parent_is_not_found(store: ImageStore):
    with pytest.raises(NotFound, match="No such image: sha256:0+"):
        store.create_image(_config([]), parent="sha256:" + "0" * 64)

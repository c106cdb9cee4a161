"""Image archives without a daemon: the save layout, unpacking a load, the pump."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import CancelledError

from dockertw.daemon.images.layers import chain_ids
from dockertw.daemon.images.loading import read_items, unpack_archive
from dockertw.daemon.images.reference import parse_normalized
from dockertw.daemon.images.saving import SavedImage, archive_chunks
from dockertw.daemon.pump import Pump
from dockertw.errdefs import InvalidParameter
from tests.archives import (
    config,
    docker_archive,
    file,
    info,
    members,
    oci_layout,
    pax_sparse,
    sha256,
    sparse_content,
    tar,
)

LAYER_A = tar([file("a", b"a" * 600)])
LAYER_B = tar([file("b", b"b")])


def _saved(diff_ids: list[str], tags: tuple[str, ...] = (), parent: str = "") -> SavedImage:
    raw = config(diff_ids)
    return SavedImage(id=sha256(raw), raw_config=raw, config=json.loads(raw),
                      tags=tuple(parse_normalized(t) for t in tags), parent=parent)


def _layers(chain: str) -> tuple[int, Iterator[bytes]]:
    by_chain = {chain_ids([sha256(LAYER_A)])[0]: LAYER_A,
                chain_ids([sha256(LAYER_A), sha256(LAYER_B)])[1]: LAYER_B,
                chain_ids([sha256(LAYER_B), sha256(LAYER_A)])[1]: LAYER_A,
                chain_ids([sha256(LAYER_B)])[0]: LAYER_B}
    data = by_chain[chain]
    return len(data), iter([data[:100], data[100:]])


def test_the_save_layout_is_docker_20_10s():
    base = _saved([sha256(LAYER_A)], ("base:1",))
    child = _saved([sha256(LAYER_A), sha256(LAYER_B)], ("kid:1", "kid:2"), parent=base.id)
    archive = b"".join(archive_chunks([base, child], _layers))
    assert archive.endswith(b"\0" * 1024)
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        names = opened.getnames()
    assert names == sorted(names)
    assert len(names) == 3 * 4 + 2 + 2  # the base layer's v1 ID differs in each image
    found = members(archive)
    manifest = json.loads(found["manifest.json"] or b"")
    assert [item["RepoTags"] for item in manifest] == [["base:1"], ["kid:1", "kid:2"]]
    assert "Parent" not in manifest[0] and manifest[1]["Parent"] == base.id
    assert manifest[1]["Layers"][0] != manifest[0]["Layers"][0]  # but its tar is linked
    assert [found[n] for n in manifest[1]["Layers"]] == [None, LAYER_B]  # None: a link
    assert [found[n] for n in manifest[0]["Layers"]] == [LAYER_A]
    assert found[child.id[7:] + ".json"] == child.raw_config
    top = manifest[1]["Layers"][1].split("/")[0]
    assert json.loads(found["repositories"] or b"") == {"base": {"1": manifest[0][
        "Layers"][0].split("/")[0]}, "kid": {"1": top, "2": top}}
    v1 = json.loads(found[f"{top}/json"] or b"")
    assert v1["id"] == top and v1["parent"] == manifest[1]["Layers"][0].split("/")[0]
    assert v1["config"] == {"Cmd": ["sh"]} and "rootfs" not in v1


def test_a_diff_id_saved_twice_becomes_a_symlink():
    first = _saved([sha256(LAYER_A)])
    second = _saved([sha256(LAYER_B), sha256(LAYER_A)])
    archive = b"".join(archive_chunks([first, second], _layers))
    with tarfile.open(fileobj=io.BytesIO(archive)) as opened:
        links = [m for m in opened if m.issym()]
    assert len(links) == 1 and links[0].linkname.startswith("../")
    assert links[0].linkname.endswith("/layer.tar")
    assert json.loads(members(archive)["manifest.json"] or b"")[0]["RepoTags"] is None


def test_unpacking_follows_links_inside_and_refuses_them_outside(tmp_path: Path):
    raw = config([sha256(LAYER_A)])
    target = sha256(LAYER_A)[7:39] + "/layer.tar"  # where docker_archive puts it
    archive = docker_archive([(raw, [LAYER_A], ["x:1"])], extra=[
        (info("alias.tar", tarfile.SYMTYPE, linkname=target), None)])
    (tmp_path / "a").mkdir()
    unpacked = unpack_archive(io.BytesIO(gzip.compress(archive)), tmp_path / "a")
    with unpacked.open("alias.tar") as source:
        assert source.read() == LAYER_A
    (item,) = read_items(unpacked)
    assert item.tags == ("x:1",) and item.config == raw

    (tmp_path / "b").mkdir()
    escaping = tar([(info("up", tarfile.SYMTYPE, linkname="../../etc/passwd"), None)])
    with pytest.raises(InvalidParameter, match='link target "../../etc/passwd" escapes'):
        unpack_archive(io.BytesIO(escaping), tmp_path / "b")


def test_an_empty_body_is_no_archive_and_sparse_members_are_unpacked(tmp_path: Path):
    (tmp_path / "a").mkdir()
    with pytest.raises(InvalidParameter, match="^invalid archive: empty file$"):
        unpack_archive(io.BytesIO(b""), tmp_path / "a")
    segments = [(0, 10), (70_000, 5)]
    content = sparse_content(100_000, segments)
    archive = pax_sparse("1.0", "holes", content, segments) + tar([file("x", b"y")])
    unpacked = unpack_archive(io.BytesIO(archive), tmp_path / "a")
    with unpacked.open("holes") as source:
        assert source.read() == content


def test_a_member_cut_short_is_an_invalid_archive(tmp_path: Path):
    (tmp_path / "a").mkdir()
    archive = tar([file("blob", b"b" * 5000)])
    with pytest.raises(InvalidParameter, match="^invalid archive: unexpected end of data$"):
        unpack_archive(io.BytesIO(archive[:2048]), tmp_path / "a")


def test_archives_without_a_manifest_or_with_bad_blobs_are_refused(tmp_path: Path):
    (tmp_path / "a").mkdir()
    unpacked = unpack_archive(io.BytesIO(tar([file("repositories", b"{}")])),
                              tmp_path / "a")
    with pytest.raises(InvalidParameter, match="no manifest.json"):
        read_items(unpacked)
    layout = members(oci_layout(config([sha256(LAYER_A)]), [LAYER_A], {}))
    manifest = json.loads(layout["index.json"] or b"")["manifests"][0]["digest"]
    layout["blobs/sha256/" + manifest[7:]] = b'{"tampered": true}'
    (tmp_path / "b").mkdir()
    unpacked = unpack_archive(io.BytesIO(tar([file(name, data or b"")
                                               for name, data in layout.items()])),
                              tmp_path / "b")
    with pytest.raises(InvalidParameter, match="has digest"):
        read_items(unpacked)


# -- the pump ------------------------------------------------------------------------


class _Consumer:
    def __init__(self, pump: Pump) -> None:
        self.pump = pump
        self.written: list[bytes] = []

    def write(self, chunk: bytes) -> None:
        self.written.append(chunk)
        if len(self.written) == 2:
            self.pump.pauseProducing()


def test_the_pump_waits_while_paused_and_stops_when_told():
    calls: list[object] = []
    pump = Pump(lambda function, *args: (calls.append(function), function(*args)))
    consumer = _Consumer(pump)
    pump.begin(lambda _: consumer.write)
    pump.push(b"1")
    pump.push(b"2")  # the consumer pauses here
    pushed = threading.Thread(target=lambda: pump.push(b"3"))
    pushed.start()
    pushed.join(0.2)
    assert pushed.is_alive() and consumer.written == [b"1", b"2"]
    pump.resumeProducing()
    pushed.join(5)
    assert consumer.written == [b"1", b"2", b"3"]
    pump.stopProducing()
    with pytest.raises(CancelledError):
        pump.push(b"4")
    assert consumer.written == [b"1", b"2", b"3"]

"""Tar-split: a layer tar recorded while it is unpacked, replayed byte for byte."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from dockertw.daemon.images.layers import extract_layer
from dockertw.daemon.images.store import ImageStore
from dockertw.daemon.images.tarsplit import Recorder, read_items, replay, stream_size
from dockertw.errdefs import NotFound, System
from tests.archives import (
    directory,
    file,
    gnu_sparse,
    info,
    pax_sparse,
    sha256,
    sparse_content,
    tar,
)

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _record(raw: bytes, target: Path, overlay: bool = False) -> tuple[Path, str]:
    (target / "diff").mkdir()
    record = target / "tar-split.gz"
    with record.open("wb") as output:
        result = extract_layer(io.BytesIO(raw), target / "diff", record=output,
                               overlay_whiteouts=overlay)
    return record, result.diff_id


def _replayed(raw: bytes, target: Path, overlay: bool = False) -> bytes:
    record, diff = _record(raw, target, overlay)
    assert diff == sha256(raw)
    assert stream_size(record) == len(raw)
    return b"".join(replay(record, target / "diff", diff))


LONG = "d/" + "l" * 150


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT,
                                 tarfile.USTAR_FORMAT])
def test_replay_gives_the_original_bytes(tmp_path: Path, fmt: int):
    entries = [directory("d"), file("d/a", os.urandom(3000)), file("d/empty"),
               file("d/big", os.urandom(3 << 20)),
               (info("d/sym", tarfile.SYMTYPE, linkname="a"), None),
               (info("d/hard", tarfile.LNKTYPE, linkname="d/a"), None)]
    if fmt != tarfile.USTAR_FORMAT:
        entries.append(file(LONG, b"long"))
    raw = tar(entries, fmt)
    assert _replayed(raw, tmp_path) == raw


def test_trailing_bytes_and_an_empty_stream_are_kept(tmp_path: Path):
    raw = tar([file("f", b"data")]) + b"\0" * 4096 + b"garbage after the end"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert _replayed(raw, tmp_path / "a") == raw
    assert _replayed(b"", tmp_path / "b") == b""


SPARSE_SEGMENTS = [(4096 * n * n, 1000) for n in range(1, 7)]


@pytest.mark.parametrize("member", [
    lambda content: gnu_sparse("holes", content, SPARSE_SEGMENTS),
    lambda content: pax_sparse("0.1", "holes", content, SPARSE_SEGMENTS),
    lambda content: pax_sparse("1.0", "holes", content, SPARSE_SEGMENTS)],
    ids=["gnu", "pax-0.1", "pax-1.0"])
def test_sparse_files_are_unpacked_whole_and_replayed(tmp_path: Path, member):
    content = sparse_content(200_000, SPARSE_SEGMENTS)
    raw = member(content) + tar([file("after", b"next")])
    assert _replayed(raw, tmp_path) == raw
    assert (tmp_path / "diff" / "holes").read_bytes() == content
    assert (tmp_path / "diff" / "after").read_bytes() == b"next"


@ROOT_ONLY
def test_whiteouts_and_opaque_directories_in_overlay_form(tmp_path: Path):
    raw = tar([directory("a"), file("a/.wh.gone"), directory("o"),
               file("o/.wh..wh..opq"), file("o/new", b"n" * 700),
               file("o/.wh.with-contents", b"kept in the record")])
    assert _replayed(raw, tmp_path, overlay=True) == raw
    assert os.getxattr(tmp_path / "diff" / "o", "trusted.overlay.opaque") == b"y"


def test_compressed_input_replays_uncompressed(tmp_path: Path):
    raw = tar([file("f", os.urandom(10_000))])
    record, diff = _record(gzip.compress(raw), tmp_path)
    assert diff == sha256(raw)
    assert b"".join(replay(record, tmp_path / "diff", diff)) == raw


def test_the_record_holds_no_file_contents(tmp_path: Path):
    contents = os.urandom(100_000)
    record, _ = _record(tar([file("f", contents)]), tmp_path)
    with record.open("rb") as source:
        items = list(read_items(source))
    assert ("f", len(contents)) in items
    assert all(contents[:64] not in item for item in items if isinstance(item, bytes))


def test_a_changed_file_fails_the_replay_loudly(tmp_path: Path):
    raw = tar([file("f", b"a" * 1000), file("g", b"b" * 1000)])
    record, diff = _record(raw, tmp_path)
    (tmp_path / "diff" / "g").write_bytes(b"c" * 1000)  # same size, other bytes
    chunks = replay(record, tmp_path / "diff", diff)
    with pytest.raises(System, match="hashes to"):
        for _ in chunks:
            pass
    (tmp_path / "diff" / "g").write_bytes(b"short")
    with pytest.raises(System, match='"g" of the layer changed'):
        b"".join(replay(record, tmp_path / "diff", diff))


def test_replay_never_follows_a_symlink_out_of_the_layer(tmp_path: Path):
    raw = tar([directory("d"), file("d/f", b"inside")])
    record, diff = _record(raw, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"inside")
    os.rename(tmp_path / "diff" / "d", tmp_path / "moved")
    os.symlink(outside, tmp_path / "diff" / "d")
    with pytest.raises(System, match='cannot read "d/f"'):
        b"".join(replay(record, tmp_path / "diff", diff))


def test_recorder_refuses_contents_behind_the_stream():
    recorder = Recorder(io.BytesIO())
    recorder.feed(b"x" * 1024)
    with pytest.raises(ValueError, match="not where the stream is"):
        recorder.file(2048, 10, "f")


def test_store_keeps_records_and_adopts_one_for_an_old_layer(tmp_path: Path):
    store = ImageStore.open(tmp_path)
    raw = tar([file("f", b"data" * 300)])
    layer = store.add_layer(io.BytesIO(raw))
    size, chunks = store.layer_tar(layer.chain_id)
    assert size == len(raw) and b"".join(chunks) == raw
    (layer.path.parent / "tar-split.gz").unlink()
    with pytest.raises(System, match="stored before dockertw kept tar-split records"):
        store.layer_tar(layer.chain_id)
    assert store.add_layer(io.BytesIO(raw)) == layer
    assert b"".join(store.layer_tar(layer.chain_id)[1]) == raw
    assert list((tmp_path / "image" / "layers" / "tmp").iterdir()) == []


def test_held_layers_stay_until_released(tmp_path: Path):
    store = ImageStore.open(tmp_path)
    layer = store.add_layer(io.BytesIO(tar([file("f", b"x")])))
    with store.holding([layer.chain_id]):
        assert store.delete_unused_layers() == []
        assert not store.unused([layer.chain_id])
    assert store.unused([layer.chain_id])
    assert store.delete_unused_layers() == [layer.chain_id]
    with pytest.raises(NotFound), store.holding([layer.chain_id]):
        pass

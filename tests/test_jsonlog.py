"""json-file logs: encoding, fast decoding, splitting, rotation, windows."""

from __future__ import annotations

import json

import pytest

from dockertw.daemon.jsonlog import (
    MAX_LINE,
    JSONLogFile,
    LineSplitter,
    LogEntry,
    decode_entry,
    encode_entry,
    format_time,
    parse_time,
    read_entries,
)

T0 = 1_795_827_747_652_875_996  # 2026-11-28T01:02:27.652875996Z


def test_encoding_matches_docker_json_file():
    line = encode_entry(LogEntry("stderr", T0, b"err1\n"))
    assert line == b'{"log":"err1\\n","stream":"stderr","time":"2026-11-28T01:02:27.652875996Z"}\n'
    assert json.loads(line) == {"log": "err1\n", "stream": "stderr",
                                "time": "2026-11-28T01:02:27.652875996Z"}


@pytest.mark.parametrize("data", [
    b"plain\n", b"no newline", b'quote " and \\ backslash\n', b"tab\there\n",
    "utf-8 \u00e9\u20ac\n".encode(), b"", b"\x1b[31mred\x1b[0m\n",
])
def test_decode_inverts_encode(data):
    entry = LogEntry("stdout", T0, data)
    assert decode_entry(encode_entry(entry)) == entry


def test_decode_reads_docker_written_lines():
    line = b'{"log":"hi\\n","stream":"stdout","time":"2026-11-28T01:02:27.6Z"}\n'
    assert decode_entry(line) == LogEntry("stdout", 1_795_827_747_600_000_000, b"hi\n")


def test_time_round_trip():
    assert parse_time(format_time(T0)) == T0
    assert format_time(0) == "1970-01-01T00:00:00.000000000Z"


def test_splitter_cuts_lines_and_long_pieces():
    splitter = LineSplitter()
    assert splitter.feed(b"a\nb") == [b"a\n"]
    assert splitter.feed(b"c\n\n") == [b"bc\n", b"\n"]
    long = b"x" * (MAX_LINE + 10)
    assert splitter.feed(long) == [b"x" * MAX_LINE]
    assert splitter.flush() == [b"x" * 10]
    assert splitter.flush() == []


def test_rotation_keeps_max_files_and_reads_oldest_first(tmp_path):
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path, max_size=200, max_files=3)
    for index in range(10):
        log.write([LogEntry("stdout", T0 + index, f"line {index}\n".encode())])
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c-json.log", "c-json.log.1", "c-json.log.2"]
    kept = [entry.data for entry in read_entries(path, max_files=3)]
    assert kept == [f"line {i}\n".encode() for i in range(10 - len(kept), 10)]
    assert all(p.stat().st_size <= 200 for p in tmp_path.iterdir())


def test_tail_since_until(tmp_path):
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path)
    log.write([LogEntry("stdout", T0 + i, f"{i}\n".encode()) for i in range(5)])
    log.close()
    assert [e.data for e in read_entries(path, tail=2)] == [b"3\n", b"4\n"]
    assert list(read_entries(path, tail=0)) == []
    assert [e.data for e in read_entries(path, since_ns=T0 + 2)] == [b"3\n", b"4\n"]
    assert [e.data for e in read_entries(path, until_ns=T0 + 1)] == [b"0\n", b"1\n"]

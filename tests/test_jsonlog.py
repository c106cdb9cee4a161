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
    encode_entries,
    encode_entry,
    encode_lines,
    format_time,
    log_files,
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
    assert splitter.feed(b"y" * MAX_LINE) == [b"y" * MAX_LINE]
    assert splitter.feed(b"z" * MAX_LINE + b"\nw\n") == [b"z" * MAX_LINE, b"\n", b"w\n"]


def test_rotation_keeps_max_files_and_reads_oldest_first(tmp_path):
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path, max_size=200, max_files=3)
    for index in range(10):
        log.write([LogEntry("stdout", T0 + index, f"line {index}\n".encode())])
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c-json.log", "c-json.log.1", "c-json.log.2"]
    assert log_files(path) == [tmp_path / "c-json.log.2", tmp_path / "c-json.log.1", path]
    kept = [entry.data for entry in read_entries(path)]
    assert kept == [f"line {i}\n".encode() for i in range(10 - len(kept), 10)]
    assert all(p.stat().st_size <= 200 for p in tmp_path.iterdir())


def test_rotation_cuts_a_batch_between_entries(tmp_path):
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path, max_size=300, max_files=2)
    log.write([LogEntry("stdout", T0, f"{i}\n".encode()) for i in range(10)])
    log.close()
    sizes = [p.stat().st_size for p in log_files(path)]
    assert all(size <= 300 for size in sizes) and len(sizes) == 2
    kept = [int(entry.data) for entry in read_entries(path)]
    assert kept == list(range(10 - len(kept), 10))


def test_an_entry_larger_than_max_size_gets_a_file_of_its_own(tmp_path):
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path, max_size=50, max_files=5)
    log.write([LogEntry("stdout", T0, b"x" * 100 + b"\n"), LogEntry("stdout", T0, b"y\n")])
    log.close()
    assert [e.data[:1] for e in read_entries(path)] == [b"x", b"y"]
    assert len(log_files(path)) == 2


def test_one_file_rotation_starts_over_and_reopening_appends(tmp_path):
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path, max_size=100, max_files=1)
    for index in range(5):
        log.write([LogEntry("stdout", T0, f"line {index}\n".encode())])
    log.close()
    assert log_files(path) == [path]
    again = JSONLogFile(path, max_size=100, max_files=1)
    assert again.size == path.stat().st_size > 0
    again.close()


@pytest.mark.parametrize("data", [b"a\n", "\u00e9\n".encode(), b"\xff\n", b'q"\n',
                                  b"t\tx\n", b"\x7f\n", b"no newline"])
def test_batch_encoding_equals_entry_by_entry(data):
    entries = [LogEntry("stdout", T0, data), LogEntry("stdout", T0, b"z\n")]
    assert encode_entries(entries) == b"".join(map(encode_entry, entries))
    assert encode_lines("stdout", T0, [data, b"z\n"]) == encode_entries(entries)
    assert encode_lines("stderr", T0, [b"z\n", data, b'"\n']) == b"".join(
        encode_entry(LogEntry("stderr", T0, m)) for m in (b"z\n", data, b'"\n'))
    assert encode_lines("stdout", T0, []) == encode_entries([]) == b""
    mixed = [LogEntry("stdout", T0, b"a\n"), LogEntry("stderr", T0, b"b\n")]
    assert encode_entries(mixed) == b"".join(map(encode_entry, mixed))


def test_write_lines_rotates_as_write(tmp_path):
    lines, entries = tmp_path / "lines", tmp_path / "entries"
    lines.mkdir()
    entries.mkdir()
    by_lines = JSONLogFile(lines / "c-json.log", max_size=300, max_files=3)
    by_entries = JSONLogFile(entries / "c-json.log", max_size=300, max_files=3)
    for start in range(0, 40, 7):
        messages = [f"{i}\n".encode() for i in range(start, start + 7)]
        by_lines.write_lines("stdout", T0, messages)
        by_entries.write([LogEntry("stdout", T0, m) for m in messages])
    by_lines.close()
    by_entries.close()
    assert [p.read_bytes() for p in log_files(lines / "c-json.log")] == [
        p.read_bytes() for p in log_files(entries / "c-json.log")]


def test_tail_since_until(tmp_path):
    path = tmp_path / "c-json.log"
    log = JSONLogFile(path)
    log.write([LogEntry("stdout", T0 + i, f"{i}\n".encode()) for i in range(5)])
    log.close()
    assert [e.data for e in read_entries(path, tail=2)] == [b"3\n", b"4\n"]
    assert list(read_entries(path, tail=0)) == []
    assert [e.data for e in read_entries(path, since_ns=T0 + 2)] == [b"3\n", b"4\n"]
    assert [e.data for e in read_entries(path, until_ns=T0 + 1)] == [b"0\n", b"1\n"]

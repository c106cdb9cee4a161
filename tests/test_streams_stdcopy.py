"""The stdcopy codec against Docker's observed bytes."""

from __future__ import annotations

import pytest

from dockertw.streams.stdcopy import (
    Chunk,
    DaemonStreamError,
    StdcopyDecoder,
    StdcopyError,
    Stream,
    encode_frame,
)

# GET /containers/{id}/logs of `sh -c 'echo out1; echo err1 >&2; echo out2'` (20.10.24).
OBSERVED_LOGS = bytes.fromhex(
    "0200000000000005" + b"err1\n".hex() +
    "0100000000000005" + b"out1\n".hex() +
    "0100000000000005" + b"out2\n".hex())


def test_encode_matches_dockers_frames():
    assert encode_frame(Stream.STDOUT, b"hi\n") == bytes.fromhex("0100000000000003") + b"hi\n"
    assert encode_frame(Stream.STDERR, b"err\n")[:8] == bytes.fromhex("0200000000000004")
    assert encode_frame(Stream.STDOUT, b"") == b""


def test_decode_whole_and_byte_by_byte():
    expected = [Chunk(Stream.STDERR, b"err1\n"), Chunk(Stream.STDOUT, b"out1\n"),
                Chunk(Stream.STDOUT, b"out2\n")]
    assert StdcopyDecoder().feed(OBSERVED_LOGS) == expected
    decoder = StdcopyDecoder()
    chunks = [chunk for byte in OBSERVED_LOGS for chunk in decoder.feed(bytes([byte]))]
    assert chunks == expected
    assert decoder.pending == 0


def test_stdin_frames_read_as_stdout_and_large_payloads_survive():
    payload = bytes(range(256)) * 1000
    assert StdcopyDecoder().feed(encode_frame(Stream.STDIN, payload)) == [
        Chunk(Stream.STDOUT, payload)]


def test_partial_frame_is_held_back():
    decoder = StdcopyDecoder()
    assert decoder.feed(encode_frame(Stream.STDOUT, b"abcdef")[:10]) == []
    assert decoder.pending == 10


def test_daemon_errors_and_unknown_streams():
    with pytest.raises(DaemonStreamError, match="error from daemon in stream: boom"):
        StdcopyDecoder().feed(encode_frame(Stream.SYSTEMERR, b"boom"))
    with pytest.raises(StdcopyError, match="unrecognized stream: 7"):
        StdcopyDecoder().feed(bytes.fromhex("0700000000000001") + b"x")

"""Detach keys: Docker's format, and spotting them across chunks."""

from __future__ import annotations

import pytest

from dockertw.streams.detachkeys import DEFAULT_DETACH_KEYS, DetachScanner, parse_detach_keys


def test_parse():
    assert parse_detach_keys("ctrl-p,ctrl-q") == DEFAULT_DETACH_KEYS
    assert parse_detach_keys("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes(
        [0, 27, 28, 29, 30, 31])
    assert parse_detach_keys("a,CTRL-A,z") == b"a\x01z"
    for bad in ("ctrl-1", "ab", "ctrl-", "", "a,,b", "é"):
        with pytest.raises(ValueError):
            parse_detach_keys(bad)


def test_scanner_passes_input_and_finds_the_sequence():
    scanner = DetachScanner()
    assert scanner.feed(b"ls\r") == (b"ls\r", False)
    assert scanner.feed(b"x\x10") == (b"x", False)  # held: maybe the start
    assert scanner.feed(b"y") == (b"\x10y", False)  # was not: passed on
    assert scanner.feed(b"ab\x10") == (b"ab", False)
    assert scanner.feed(b"\x11rest") == (b"", True)
    assert DetachScanner().feed(b"echo\x10\x11") == (b"echo", True)
    assert DetachScanner(b"").feed(b"\x10\x11") == (b"\x10\x11", False)

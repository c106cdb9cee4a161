"""Detach keys on an attached TTY's input (sans-IO): parsing and spotting them.

The format is Docker's: comma-separated keys, each one character or ``ctrl-<c>``
with ``<c>`` a letter or one of ``@[\\]^_`` (``ctrl-p,ctrl-q`` is the default).  A
:class:`DetachScanner` passes input through, holding back a partial match at the end
of a chunk until the next chunk shows whether the sequence completes.
"""

from __future__ import annotations

__all__ = ["DEFAULT_DETACH_KEYS", "parse_detach_keys", "DetachScanner"]

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q
_CONTROL_PUNCTUATION = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def _key(text: str) -> int:
    if len(text) == 1 and text.isascii():
        return ord(text)
    name = text.lower()
    if name.startswith("ctrl-") and len(name) == 6:
        char = name[5]
        if "a" <= char <= "z":
            return ord(char) - ord("a") + 1
        if char in _CONTROL_PUNCTUATION:
            return _CONTROL_PUNCTUATION[char]
    raise ValueError(f"Unknown character: {text!r}")


def parse_detach_keys(text: str) -> bytes:
    """``ctrl-p,ctrl-q`` -> ``b"\\x10\\x11"``; :class:`ValueError` when malformed."""
    return bytes(_key(part) for part in text.split(","))


class DetachScanner:
    """Finds the detach sequence in a stream of input chunks."""

    def __init__(self, keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self._keys = keys
        self._held = b""  # a prefix of the keys seen at the end of the last chunk

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on, and whether the sequence was typed (the bytes are
        then those before it; the rest is dropped, as the client detaches)."""
        if not self._keys:
            return data, False
        data, self._held = self._held + data, b""
        found = data.find(self._keys)
        if found >= 0:
            return data[:found], True
        for size in range(min(len(self._keys) - 1, len(data)), 0, -1):
            if data.endswith(self._keys[:size]):
                self._held = data[-size:]
                return data[:-size], False
        return data, False

"""Go's ``strconv.Quote`` and ``QuoteRune`` (the ``%q`` verb), for messages and texts
that both the client and the engine write as Go writes them."""

from __future__ import annotations

__all__ = ["quote", "quote_rune"]

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\"}


def _char(char: str, delimiter: str) -> str:
    if char == delimiter:
        return "\\" + char
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def quote(text: str) -> str:
    """``strconv.Quote``: ``"text"`` with Go's escapes."""
    return '"' + "".join(_char(char, '"') for char in text) + '"'


def quote_rune(code: int) -> str:
    """``strconv.QuoteRune`` (``%q`` of an integer): ``'x'``."""
    return "'" + _char(chr(code), "'") + "'"

"""Dockerfile word processing: quotes, escapes and ``$VAR`` substitution.

A port of BuildKit's ``shell.Lex`` (``ProcessWord``/``ProcessWords``) as Docker 20.10
applies it to the arguments of ``ENV``, ``LABEL``, ``WORKDIR``, ``USER``, ``VOLUME``,
``STOPSIGNAL`` and ``EXPOSE``: single quotes are literal, double quotes allow ``$``
expansion and ``\\`` escapes, ``${VAR:-word}``, ``${VAR:+word}`` and ``${VAR?msg}``
work as in a POSIX shell.  Errors raise :class:`~dockertw.errdefs.InvalidParameter`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from dockertw.errdefs import InvalidParameter

__all__ = ["process_word", "process_words", "env_map"]

_SPECIAL_PARAMETERS = frozenset("@*#?-$!0")


class _ShellError(Exception):
    pass


def env_map(environment: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings as a mapping (a bare ``KEY`` maps to ``""``)."""
    result: dict[str, str] = {}
    for entry in environment:
        key, _, value = entry.partition("=")
        result[key] = value
    return result


class _Words:
    """Collects the whitespace-separated words of a processed string."""

    def __init__(self) -> None:
        self.word = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, char: str) -> None:
        if char.isspace():
            if self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False
            return
        self.add_raw(char)

    def add_raw(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def add_expanded(self, text: str) -> None:
        for char in text:
            self.add_char(char)

    def finish(self) -> list[str]:
        if self.word:
            self.words.append(self.word)
            self.word, self.in_word = "", False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self._text = text
        self._pos = 0
        self._env = env
        self._escape = escape

    def _peek(self) -> str:
        return self._text[self._pos] if self._pos < len(self._text) else ""

    def _next(self) -> str:
        char = self._peek()
        self._pos += 1 if char else 0
        return char

    def process(self, stop: str = "") -> tuple[str, list[str]]:
        """Process up to ``stop`` (consumed) or the end; the word and the words."""
        result: list[str] = []
        words = _Words()
        while self._peek():
            char = self._peek()
            if stop and char == stop:
                self._next()
                return "".join(result), words.finish()
            if char in "'\"$":
                text = self._quoted_or_dollar(char)
                result.append(text)
                if char == "$":
                    words.add_expanded(text)
                else:
                    words.add_raw(text)
                continue
            char = self._next()
            if char == self._escape:
                char = self._next()
                if not char:
                    break
                words.add_raw(char)
            else:
                words.add_char(char)
            result.append(char)
        if stop:
            raise _ShellError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.finish()

    def _quoted_or_dollar(self, char: str) -> str:
        if char == "'":
            return self._single_quoted()
        if char == '"':
            return self._double_quoted()
        return self._dollar()

    def _single_quoted(self) -> str:
        self._next()
        end = self._text.find("'", self._pos)
        if end < 0:
            raise _ShellError(
                "unexpected end of statement while looking for matching single-quote")
        text, self._pos = self._text[self._pos:end], end + 1
        return text

    def _double_quoted(self) -> str:
        self._next()
        result: list[str] = []
        while True:
            char = self._peek()
            if not char:
                raise _ShellError(
                    "unexpected end of statement while looking for matching double-quote")
            if char == '"':
                self._next()
                return "".join(result)
            if char == "$":
                result.append(self._dollar())
                continue
            char = self._next()
            if char == self._escape:
                if not self._peek():
                    continue
                if self._peek() in ('"', "$", self._escape):
                    char = self._next()
            result.append(char)

    def _name(self) -> str:
        name = ""
        while self._peek():
            char = self._peek()
            if not name and char.isdigit():
                while self._peek().isdigit():
                    name += self._next()
                return name
            if not name and char in _SPECIAL_PARAMETERS:
                return self._next()
            if not (char.isalnum() or char == "_"):
                break
            name += self._next()
        return name

    def _dollar(self) -> str:
        self._next()
        if self._peek() != "{":
            name = self._name()
            return self._env.get(name, "") if name else "$"
        self._next()
        if not self._peek():
            raise _ShellError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise _ShellError("syntax error: bad substitution")
        name = self._name()
        char = self._next()
        if char == "}":
            return self._env.get(name, "")
        if char == "?":
            return self._required(name, self._until_brace(), empty_ok=True)
        if char == ":":
            return self._modified(name)
        raise _ShellError("missing ':' in substitution")

    def _until_brace(self) -> str:
        try:
            return self.process("}")[0]
        except _ShellError:
            if not self._peek():
                raise _ShellError("syntax error: missing '}'") from None
            raise

    def _modified(self, name: str) -> str:
        modifier = self._next()
        word = self._until_brace()
        value = self._env.get(name, "")
        if modifier == "+":
            return word if value else value
        if modifier == "-":
            return value or word
        if modifier == "?":
            return self._required(name, word, empty_ok=False)
        raise _ShellError(f"unsupported modifier ({modifier}) in substitution")

    def _required(self, name: str, message: str, empty_ok: bool) -> str:
        if name not in self._env:
            raise _ShellError(f"{name}: {message or 'is not allowed to be unset'}")
        value = self._env[name]
        if not value and not empty_ok:
            raise _ShellError(f"{name}: {message or 'is not allowed to be empty'}")
        return value


def _run(text: str, env: dict[str, str], escape: str) -> tuple[str, list[str]]:
    try:
        return _Lexer(text, env, escape).process()
    except _ShellError as error:
        raise InvalidParameter(f"failed to process {json.dumps(text)}: {error}") from None


def process_word(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """``text`` with quotes removed and variables substituted, as one word."""
    return _run(text, env, escape)[0]


def process_words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """``text`` processed and split into words on unquoted whitespace."""
    return _run(text, env, escape)[1]

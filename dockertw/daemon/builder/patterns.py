"""Path patterns: Go's ``filepath.Match`` (COPY and ADD wildcards) and
``.dockerignore`` (moby's ``PatternMatcher``, ``**`` and ``!`` exceptions)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from dockertw.daemon.images.views import glob_regex
from dockertw.errdefs import InvalidParameter

__all__ = ["BadPattern", "go_match", "has_wildcards", "read_dockerignore", "ignore_matcher"]


class BadPattern(ValueError):
    """Go's ``filepath.ErrBadPattern``."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def has_wildcards(path: str) -> bool:
    """Whether ``path`` has an unescaped ``*``, ``?`` or ``[``."""
    skip = False
    for char in path:
        if skip:
            skip = False
        elif char == "\\":
            skip = True
        elif char in "*?[":
            return True
    return False


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return glob_regex(pattern)
    except InvalidParameter:
        raise BadPattern from None


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match``: ``*`` and ``?`` never match ``/``; ``[^...]`` classes;
    :class:`BadPattern` for a malformed pattern."""
    return _compiled(pattern).fullmatch(name) is not None


def read_dockerignore(text: str) -> list[str]:
    """The patterns of a ``.dockerignore``: comments and blanks dropped, each cleaned,
    a leading ``/`` removed, ``!`` kept."""
    patterns = []
    for number, line in enumerate(text.split("\n")):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = posixpath.normpath(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """moby's ``Pattern.compile``: ``**`` crosses directories, ``*`` and ``?`` do not."""
    regex, at = ["^"], 0
    while at < len(pattern):
        char = pattern[at]
        at += 1
        if char == "*" and pattern[at:at + 1] == "*":
            at += 1
            if pattern[at:at + 1] == "/":
                at += 1
            regex.append(".*" if at >= len(pattern) else "(.*/)?")
        elif char == "*":
            regex.append("[^/]*")
        elif char == "?":
            regex.append("[^/]")
        elif char in ".$":
            regex.append("\\" + char)
        elif char == "\\":
            regex.append("\\" + pattern[at] if at < len(pattern) else "\\\\")
            at += 1
        else:
            regex.append(char)
    try:
        return re.compile("".join(regex) + "$")
    except re.error:
        raise BadPattern from None


def ignore_matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Whether a context path is excluded: the last pattern matching it (or one of its
    parent directories) decides, an ``!`` pattern re-including it."""
    compiled = []
    for raw in patterns:
        pattern = raw.strip()
        if not pattern:
            continue
        pattern = posixpath.normpath(pattern)
        exclusion = pattern.startswith("!")
        if exclusion:
            if len(pattern) == 1:
                raise ValueError('illegal exclusion pattern: "!"')
            pattern = pattern[1:]
        go_match(pattern, ".")  # a syntax check, as moby's
        compiled.append((_ignore_regex(pattern), len(pattern.split("/")), exclusion))

    def matches(path: str) -> bool:
        parent = posixpath.dirname(path) or "."
        parents = parent.split("/")
        matched = False
        for regex, depth, exclusion in compiled:
            found = regex.match(path) is not None
            if not found and parent != "." and depth <= len(parents):
                found = regex.match("/".join(parents[:depth])) is not None
            if found:
                matched = not exclusion
        return matched

    return matches

"""Docker's ``filters`` query argument: parsing, validation and matching.

A filter set maps a key to a set of accepted values.  Clients send it as JSON, either
``{"key": {"value": true}}`` (current) or the legacy ``{"key": ["value"]}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import attrs

from dockertw.errdefs import InvalidParameter

__all__ = ["Filters"]


def _values_of(key: str, raw: object) -> frozenset[str]:
    if isinstance(raw, dict):
        return frozenset(str(value) for value, chosen in raw.items() if chosen)
    if isinstance(raw, list):
        return frozenset(str(value) for value in raw)
    raise InvalidParameter(f"invalid filter: values of '{key}' must be a list or an object")


@attrs.frozen
class Filters:
    """An immutable filter set."""

    _fields: Mapping[str, frozenset[str]] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, text: str) -> Filters:
        """Parse the ``filters`` argument; malformed JSON is a 400, never a 500."""
        if not text.strip():
            return cls()
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidParameter(f"invalid filter: {error}") from None
        if not isinstance(decoded, dict):
            raise InvalidParameter("invalid filter: expected a JSON object")
        return cls({str(key): _values_of(key, raw) for key, raw in decoded.items()})

    def keys(self) -> frozenset[str]:
        return frozenset(self._fields)

    def get(self, key: str) -> frozenset[str]:
        return self._fields.get(key, frozenset())

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def validate(self, accepted: Iterable[str]) -> None:
        """Refuse keys outside ``accepted`` with Docker's message."""
        allowed = set(accepted)
        for key in sorted(self._fields):
            if key not in allowed:
                raise InvalidParameter(f"Invalid filter '{key}'")

    def exact_match(self, key: str, source: str) -> bool:
        """True when ``key`` is unfiltered or ``source`` is one of its values."""
        values = self._fields.get(key)
        return not values or source in values

    def fuzzy_match(self, key: str, source: str) -> bool:
        """True when ``key`` is unfiltered or some value is ``source`` or a prefix of it."""
        values = self._fields.get(key)
        if not values:
            return True
        return any(source.startswith(value) for value in values)

    def regex_match(self, key: str, source: str) -> bool:
        """moby's ``Args.Match``: ``key`` unfiltered, or some value is ``source`` or a
        regular expression found in it (a value that is no expression: a substring)."""
        values = self._fields.get(key)
        return not values or any(_found(value, source) for value in values)

    def excludes_labels(self, key: str, labels: Mapping[str, str]) -> bool:
        """``label!=name[=value]``: true when ``labels`` has one of ``key``'s."""
        for wanted in self._fields.get(key, ()):
            name, has_value, value = wanted.partition("=")
            if name in labels and (not has_value or labels[name] == value):
                return True
        return False

    def match_labels(self, key: str, labels: Mapping[str, str]) -> bool:
        """Every ``name`` or ``name=value`` of ``key`` must hold in ``labels``."""
        for wanted in self._fields.get(key, ()):
            name, has_value, value = wanted.partition("=")
            if name not in labels or (has_value and labels[name] != value):
                return False
        return True


def _found(pattern: str, source: str) -> bool:
    try:
        return pattern == source or re.search(pattern, source) is not None
    except re.error:
        return pattern in source

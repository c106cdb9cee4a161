"""Fields of a decoded JSON request body, checked as Go's decoder would type them;
a wrong type is a 400 ``invalid JSON: ...``."""

from __future__ import annotations

from typing import Any

from dockertw.errdefs import InvalidParameter

__all__ = ["json_object", "json_text", "json_string_map"]


def json_object(value: Any, what: str) -> dict[str, Any]:
    """An object (``null``: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid JSON: {what} must be an object")
    return value


def json_text(value: Any, what: str) -> str:
    """A string (``null``: empty)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"invalid JSON: {what} must be a string")
    return value


def json_string_map(value: Any, what: str) -> dict[str, str]:
    """A ``map[string]string`` (``null``: empty)."""
    mapping = json_object(value, what)
    if not all(isinstance(item, str) for item in mapping.values()):
        raise InvalidParameter(f"invalid JSON: {what} must map strings to strings")
    return dict(mapping)

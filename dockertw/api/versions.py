"""The request-version gates: every API behaviour that depends on the version asks here.

moby decides each change in its routers with ``versions.LessThan(version, "1.44")`` or
``GreaterThanOrEqualTo``; the same questions read ``before(call.version, "1.44")`` and
``since(call.version, "1.44")`` here.  A gate is decided in the router or in a view
function of :mod:`dockertw.api.views`, next to the shape it changes; docs/api-versions.md
lists them all with their tests.
"""

from __future__ import annotations

from typing import Any

from dockertw import versions

__all__ = ["before", "since", "drop_before", "drop_since", "health_config"]


def before(version: str, gate: str) -> bool:
    """``version < gate``: the request predates the change made in ``gate``."""
    return versions.is_less(version, gate)


def since(version: str, gate: str) -> bool:
    """``version >= gate``: the request knows the change made in ``gate``."""
    return not versions.is_less(version, gate)


def drop_before(document: dict[str, Any], version: str, gate: str, *keys: str) -> None:
    """Remove ``keys`` (fields added in ``gate``) for older requests."""
    if before(version, gate):
        for key in keys:
            document.pop(key, None)


def drop_since(document: dict[str, Any], version: str, gate: str, *keys: str) -> None:
    """Remove ``keys`` (fields moby removed in ``gate``) for requests that new."""
    if since(version, gate):
        for key in keys:
            document.pop(key, None)


def health_config(healthcheck: Any, version: str) -> Any:
    """A create request's ``Healthcheck`` as moby reads it at ``version``:
    ``StartInterval`` (API 1.44) is zeroed for older requests, which Go's
    ``omitempty`` then leaves out of inspect: here it is dropped."""
    if isinstance(healthcheck, dict) and before(version, "1.44") \
            and "StartInterval" in healthcheck:
        return {key: value for key, value in healthcheck.items() if key != "StartInterval"}
    return healthcheck

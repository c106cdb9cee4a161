"""The kinds of daemon.json values: how a JSON value is checked and turned into what
the command-line option holds, and how Docker names its Go type in errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["Kind", "BOOL", "STRING", "STRINGS", "INT", "STRING_MAP", "RUNTIMES",
           "ULIMITS", "ADDRESS_POOLS", "go_text", "parse_ulimit"]

_JSON_NAMES = {bool: "bool", str: "string", int: "number", float: "number",
               list: "array", dict: "object"}


class KindError(ValueError):
    """A value of the wrong JSON type, worded as Go's json.Unmarshal words it."""


@attrs.frozen
class Kind:
    go_type: str
    check: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value

    def decode(self, key: str, value: Any) -> Any:
        if not self.check(value):
            found = _JSON_NAMES.get(type(value), "value")
            raise KindError(f"json: cannot unmarshal {found} into Go struct field "
                            f"Config.{key} of type {self.go_type}")
        return self.convert(value)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def _runtimes(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(spec, dict) and isinstance(spec.get("path"), str)
        and _strings(spec.get("runtimeArgs") or []) for spec in value.values())


def _ulimits(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(limit, dict) and all(isinstance(limit.get(bound), int)
                                        for bound in ("Soft", "Hard"))
        for limit in value.values())


def _named_ulimits(value: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: {"Name": name, "Soft": limit["Soft"], "Hard": limit["Hard"]}
            for name, limit in value.items()}


def parse_ulimit(text: str) -> dict[str, Any]:
    """``nofile=1024:2048`` or ``nproc=512`` as a HostConfig.Ulimits entry."""
    name, sep, bounds = text.partition("=")
    soft, _, hard = bounds.partition(":")
    try:
        if not sep or not name:
            raise ValueError
        low, high = int(soft), int(hard or soft)
    except ValueError:
        raise ValueError(f"invalid ulimit argument: {text}") from None
    if low > high:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{low} > {high}")
    return {"Name": name, "Soft": low, "Hard": high}


BOOL = Kind("bool", lambda value: isinstance(value, bool), int)
STRING = Kind("string", lambda value: isinstance(value, str))
STRINGS = Kind("[]string", _strings, list)
INT = Kind("int", lambda value: isinstance(value, int) and not isinstance(value, bool))
STRING_MAP = Kind("map[string]string", _string_map, dict)
RUNTIMES = Kind("map[string]system.Runtime", _runtimes, dict)
ULIMITS = Kind("map[string]*units.Ulimit", _ulimits, _named_ulimits)


def _pools(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(pool, dict) and isinstance(pool.get("base"), str)
        and isinstance(pool.get("size"), int) for pool in value)


# ``[{"base": CIDR, "size": N}]`` as the ``base=CIDR,size=N`` of --default-address-pool
ADDRESS_POOLS = Kind("[]*ipamutils.NetworkToSplit", _pools, lambda value: [
    f"base={pool['base']},size={pool['size']}" for pool in value])


def go_text(value: Any) -> str:
    """A value as Go's ``%v`` prints it (Docker's conflict messages use that)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_text(value[key])}" for key in sorted(value)) + "]"
    return "<nil>" if value is None else str(value)

"""Go's ``fmt`` verbs as the classic builder's history comments use them: ``%q`` and
``%v`` of string slices, ``%q`` of a health check, ``time.Duration`` strings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dockertw.goquote import quote, quote_rune

__all__ = ["quoted_list", "plain_list", "duration", "health_comment"]

def quoted_list(items: Sequence[str] | None) -> str:
    """``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(quote(item) for item in items or ()) + "]"


def plain_list(items: Sequence[str] | None) -> str:
    """``%v`` of a ``[]string``: ``[a b]``."""
    return "[" + " ".join(items or ()) + "]"


def _fraction(value: int, digits: int) -> str:
    text = f"{value:0{digits}d}".rstrip("0")
    return "." + text if text else ""


def duration(nanoseconds: int) -> str:
    """``time.Duration.String``: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign, value = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if value < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if value >= size:
                return f"{sign}{value // size}{_fraction(value % size, len(str(size)) - 1)}{unit}"
    seconds, rest = divmod(value, 1_000_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{seconds}{_fraction(rest, 9)}s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def health_comment(health: Mapping[str, Any]) -> str:
    """``%q`` of a ``*container.HealthConfig``."""
    times = " ".join(quote(duration(int(health.get(key) or 0)))
                     for key in ("Interval", "Timeout", "StartPeriod"))
    return f"&{{{quoted_list(health.get('Test'))} {times} " \
           f"{quote_rune(int(health.get('Retries') or 0))}}}"

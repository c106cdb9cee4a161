"""Times as Docker writes and reads them: RFC 3339 with nanoseconds, Go durations, and
the ``until``/``since`` values of filters (moby's ``GetTimestamp``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dockertw.errdefs import InvalidParameter

__all__ = ["rfc3339_nano", "parse_go_duration", "parse_filter_time"]

_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def rfc3339_nano(nanoseconds: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{text}.{digits}Z" if digits else f"{text}Z"


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` in nanoseconds (``1m30s``, ``1.5h``, ``250ms``)."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return 0
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position or match.group(1) in ("", "."):
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise InvalidParameter(f'time: invalid duration "{text}"')
    return sign * int(total)


def parse_filter_time(value: str, now: float) -> float:
    """moby's ``GetTimestamp``: a Go duration before ``now``, an RFC 3339 time or
    unix seconds."""
    if value != "0":
        try:
            return now - parse_go_duration(value) / 1e9
        except InvalidParameter:
            pass
    if "-" in value or "T" in value:
        try:
            moment = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise InvalidParameter(f"cannot parse {value!r} as a time") from None
        return (moment if moment.tzinfo else moment.astimezone()).timestamp()
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value):
        return float(value)
    raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')

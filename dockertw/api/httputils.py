"""Form, JSON and response helpers with moby's ``httputils`` semantics.

The functions work on plain values (a Twisted ``request.args`` mapping, header
strings, body bytes) so that they can be tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dockertw.errdefs import InvalidParameter

__all__ = [
    "FormArgs",
    "form_value",
    "form_values",
    "has_form_value",
    "bool_value",
    "bool_value_or_default",
    "check_for_json",
    "decode_json_body",
    "encode_json",
]

FormArgs = Mapping[bytes, Sequence[bytes]]

_FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})


def form_values(args: FormArgs, key: str) -> list[str]:
    """Every value of ``key`` in the query string or form body, decoded as UTF-8."""
    return [raw.decode("utf-8", "replace") for raw in args.get(key.encode(), ())]


def form_value(args: FormArgs, key: str, default: str = "") -> str:
    """The first value of ``key``, or ``default`` when it is absent."""
    values = form_values(args, key)
    return values[0] if values else default


def has_form_value(args: FormArgs, key: str) -> bool:
    return key.encode() in args


def bool_value(args: FormArgs, key: str) -> bool:
    """False only for a missing key or one of ``"", 0, no, false, none`` (any case)."""
    return form_value(args, key).strip().lower() not in _FALSE_WORDS


def bool_value_or_default(args: FormArgs, key: str, default: bool) -> bool:
    """``default`` when ``key`` is absent, else :func:`bool_value`."""
    return bool_value(args, key) if has_form_value(args, key) else default


def check_for_json(content_type: str | None, body: bytes) -> None:
    """Refuse a body that is not JSON, as moby's ``CheckForJSON`` does."""
    if not content_type and not body:
        return
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise InvalidParameter(
            f"Content-Type specified ({content_type or ''}) must be 'application/json'"
        )


def decode_json_body(content_type: str | None, body: bytes) -> Any:
    """Decode a JSON request body; an empty body decodes to ``None``.

    Malformed JSON is the client's fault and answers 400, as Docker 23.0 and later do.
    """
    check_for_json(content_type, body)
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidParameter(f"invalid JSON: {error}") from None
    try:
        value, end = json.JSONDecoder().raw_decode(text.lstrip())
    except json.JSONDecodeError as error:
        raise InvalidParameter(f"invalid JSON: {error}") from None
    if text.lstrip()[end:].strip():
        raise InvalidParameter("unexpected content after JSON")
    return value


def encode_json(value: Any) -> bytes:
    """JSON as Go's ``json.Encoder`` with HTML escaping off writes it: compact, then ``\\n``."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"

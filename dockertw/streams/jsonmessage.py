"""Docker's JSON message streams (pull, push, import, load, build): one object per
line, ``\\r\\n``.

Messages are encoded as moby's ``streamformatter`` writes them with Go's
``json.Marshal``: compact, ``<``, ``>`` and ``&`` escaped, fields in
``jsonmessage.JSONMessage`` order and empty fields left out.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["format_status", "format_error", "format_progress", "format_layer", "format_aux",
           "encode_message", "progress_bar", "human_size"]

_FIELD_ORDER = ("stream", "status", "progressDetail", "progress", "id", "from", "time",
                "timeNano", "errorDetail", "error", "aux")
_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def _go_marshal(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _HTML_ESCAPES.items():
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def encode_message(**fields: Any) -> bytes:
    """One message line from ``JSONMessage`` fields (``None`` and ``""`` left out)."""
    ordered = {name: fields[name] for name in _FIELD_ORDER
               if fields.get(name) not in (None, "")}
    return _go_marshal(ordered).encode("utf-8") + b"\r\n"


def format_status(status: str, id: str = "") -> bytes:  # noqa: A002 - Docker's field name
    """``streamformatter.FormatStatus``: ``{"status": ...}`` (with ``id`` if given)."""
    return encode_message(status=status, id=id)


def format_error(message: str, code: int = 0, legacy: bool = True) -> bytes:
    """``streamformatter.FormatError``: an in-band error that ends the stream (a
    ``code`` for a build step's exit code, as ``jsonmessage.JSONError``); the ``error``
    text beside ``errorDetail`` only when ``legacy`` (API < 1.52)."""
    detail = {"code": code, "message": message} if code else {"message": message}
    return encode_message(errorDetail=detail, error=message if legacy else None)


_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float) -> str:
    """go-units ``HumanSize``: decimal units, four significant digits (``1.2MB``)."""
    unit = 0
    while size >= 1000 and unit < len(_SIZE_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_SIZE_UNITS[unit]}"


def progress_bar(current: int, total: int) -> str:
    """``JSONProgress.String`` as a server renders it (width 200): bar and counts."""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, 50)
    bar = f"[{'=' * filled}>{' ' * (50 - filled)}] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def format_progress(action: str, id: str, current: int, total: int,  # noqa: A002
                    legacy: bool = True) -> bytes:
    """``streamformatter``'s progress line: ``progressDetail`` (``total`` 0 when
    unknown) and, when ``legacy`` (API < 1.52), the bar text ``progress``."""
    detail = {"current": current, "total": total} if total > 0 else {"current": current}
    return encode_message(status=action, progressDetail=detail,
                          progress=progress_bar(current, total) if legacy else None, id=id)


def format_layer(status: str, id: str) -> bytes:  # noqa: A002 - Docker's field name
    """A per-layer status line (``Pulling fs layer``, ``Pushed``): empty progressDetail."""
    return encode_message(status=status, progressDetail={}, id=id)


def format_aux(value: Any) -> bytes:
    """An ``aux`` message (push's ``{"Tag", "Digest", "Size"}``)."""
    return encode_message(progressDetail={}, aux=value)

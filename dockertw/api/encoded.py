"""JSON answers encoded once per state of what they show.

The engine answers some reads with the same object for as long as what it shows stays
the same (a container's inspect document, its list item: see
:mod:`dockertw.daemon.containers.shown`).  :class:`EncodedViews` keeps the view of such
an object at each API version, encoded, for as long as it is given that same object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dockertw.api import httputils

__all__ = ["EncodedViews"]

View = Callable[[Any, str], Any]


class EncodedViews:
    """``view(document, version)`` as JSON, made once per (document, version).

    The view works on a copy, so it may change what it is given.  ``suffix`` ends
    each body (``b"\\n"`` for a whole answer, nothing for an item of a list).
    """

    def __init__(self, view: View, suffix: bytes = b"\n", limit: int = 4096) -> None:
        self._view = view
        self._suffix = suffix
        self._limit = limit
        self._kept: dict[tuple[str, str], tuple[Any, bytes]] = {}

    def encoded(self, key: str, document: Any, version: str) -> bytes:
        """The body for ``document`` (known as ``key``) at ``version``."""
        found = self._kept.get((key, version))
        if found is not None and found[0] is document:
            return found[1]
        body = httputils.encode_json(self._view(json.loads(json.dumps(document)), version))
        body = body[:-1] + self._suffix  # encode_json ends with a newline
        if len(self._kept) >= self._limit:  # old keys of removed containers go too
            self._kept.clear()
        self._kept[(key, version)] = (document, body)
        return body

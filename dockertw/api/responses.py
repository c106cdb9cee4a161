"""What a route handler may return, besides a plain JSON-able value or ``None``.

* a ``dict`` or ``list``: 200 with a JSON body;
* :class:`Json`, :class:`Text`, :class:`Empty`: a chosen status and body;
* ``None``: the handler wrote the response itself (a stream), or, if it wrote nothing,
  200 with an empty body, as a Go handler that returns without writing.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["Json", "Text", "Empty"]


@attrs.frozen
class Json:
    body: Any
    status: int = 200


@attrs.frozen
class Text:
    body: bytes
    content_type: bytes = b"text/plain; charset=utf-8"
    status: int = 200


@attrs.frozen
class Empty:
    """No body: 204 (the default) and 304 carry no Content-Length, others ``0``."""

    status: int = 204

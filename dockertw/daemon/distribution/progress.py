"""What pulls and pushes report as they go: the sink the API frames as Docker's JSON
messages, and a helper that spaces progress updates out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ProgressOutput", "LayerProgress", "NoOutput"]

_INTERVAL = 0.1


class ProgressOutput(Protocol):
    """Called in the reactor thread; the first call starts the response stream."""

    def status(self, text: str, id: str = "") -> None: ...  # noqa: A002
    def layer(self, id: str, status: str) -> None: ...  # noqa: A002
    def progress(self, id: str, action: str, current: int, total: int) -> None: ...  # noqa: A002
    def aux(self, value: dict[str, Any]) -> None: ...


class NoOutput:
    """A sink that shows nothing (``GET /distribution`` resolves quietly)."""

    def status(self, text: str, id: str = "") -> None:  # noqa: A002
        pass

    def layer(self, id: str, status: str) -> None:  # noqa: A002
        pass

    def progress(self, id: str, action: str, current: int, total: int) -> None:  # noqa: A002
        pass

    def aux(self, value: dict[str, Any]) -> None:
        pass


class LayerProgress:
    """``Downloading``/``Pushing`` updates of one layer, at most every 0.1 s (and the
    last one always), to any number of outputs (pulls that share a download)."""

    def __init__(self, id: str, action: str, total: int,  # noqa: A002
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.id = id
        self.action = action
        self.total = total
        self.current = 0
        self.outputs: list[ProgressOutput] = []
        self._clock = clock
        self._shown = 0.0

    def advance(self, count: int) -> None:
        self.current += count
        now = self._clock()
        if now - self._shown >= _INTERVAL or self.current >= self.total > 0:
            self._shown = now
            for output in self.outputs:
                output.progress(self.id, self.action, self.current, self.total)

    def layer(self, status: str) -> None:
        for output in self.outputs:
            output.layer(self.id, status)

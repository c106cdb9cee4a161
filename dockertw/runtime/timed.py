"""Runtime commands that report how long they took (:data:`dockertw.meters.RUNTIME_SECONDS`)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from dockertw import meters

__all__ = ["timed_commands"]

_Class = TypeVar("_Class", bound=type)


def timed_commands(*names: str) -> Callable[[_Class], _Class]:
    """A class decorator: each coroutine method named reports its duration, labelled
    with its name, whether it succeeds or fails."""
    def decorate(cls: _Class) -> _Class:
        for name in names:
            setattr(cls, name, _timed(name, getattr(cls, name)))
        return cls

    return decorate


def _timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    labels = (name,)

    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return await method(*args, **kwargs)
        finally:
            meters.observe(meters.RUNTIME_SECONDS, time.monotonic() - started, labels)

    return timed

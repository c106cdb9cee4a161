"""The daemon's log level (``--log-level``, ``-D``): one threshold for dockertw's own
log lines, which use this module's :class:`Logger` instead of Twisted's."""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger as _TwistedLogger
from twisted.logger import LogLevel

__all__ = ["LEVELS", "Logger", "set_level", "current_level"]

# dockerd's (logrus) level names and what they are in Twisted's levels.
LEVELS = {
    "trace": LogLevel.debug, "debug": LogLevel.debug, "info": LogLevel.info,
    "warn": LogLevel.warn, "error": LogLevel.error, "fatal": LogLevel.critical,
    "panic": LogLevel.critical,
}
_state = {"level": "info"}


_ORDER = [LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical]


def _priority(level: LogLevel) -> int:
    return _ORDER.index(level)


def set_level(name: str) -> None:
    """Show lines of ``name``'s level and above; refuse an unknown name as dockerd."""
    if name.lower() not in LEVELS:
        raise ValueError(f"invalid logging level: {name}")
    _state["level"] = name.lower()


def current_level() -> str:
    return _state["level"]


class Logger(_TwistedLogger):
    """Twisted's Logger, quiet below the daemon's level."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:
        if _priority(level) < _priority(LEVELS[_state["level"]]):
            return
        super().emit(level, format, **kwargs)

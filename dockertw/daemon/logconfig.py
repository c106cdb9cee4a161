"""``HostConfig.LogConfig``: the logging driver and its options, checked as Docker does.

Drivers: ``json-file`` (the default, also spelled ``""``) and ``none``.  json-file takes
Docker's options: ``max-size`` (``10k``, ``1m``, ``1.5g``: decimal units, as moby's
``units.FromHumanSize``), ``max-file`` (≥ 1, used with ``max-size``), ``compress``
(only ``false``), and ``labels``, ``labels-regex``, ``env``, ``env-regex``, ``tag``,
which are accepted and not written to the log; plus Docker's ``mode`` and
``max-buffer-size`` (accepted; writing is never blocked on a slow reader here).
Docker checks values only when the container starts; dockertw checks them at create.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from dockertw import errdefs
from dockertw.daemon.jsonlog import DiscardLog, JSONLogFile

__all__ = ["LogSettings", "LogConfigError", "log_settings", "stored_log_settings",
           "check_readable", "open_log", "parse_size"]

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?) ?([kKmMgGtTpP])?[iI]?[bB]?")
_UNITS = "kmgtp"
_ATTRIBUTES = frozenset({"labels", "labels-regex", "env", "env-regex", "tag"})
_JSON_FILE_KEYS = frozenset({"max-size", "max-file", "compress"}) | _ATTRIBUTES
_BUILT_IN = frozenset({"mode", "max-buffer-size"})
# Docker's own drivers (others would be plugins, which dockertw has none of)
_DOCKER_DRIVERS = frozenset({"json-file", "local", "journald", "syslog", "gelf", "fluentd",
                             "awslogs", "splunk", "etwlogs", "gcplogs", "logentries", "none"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class LogConfigError(ValueError):
    """The LogConfig is not valid; the message is Docker's."""


@attrs.frozen
class LogSettings:
    """What the daemon does with a container's output."""

    driver: str = "json-file"  # or "none"
    max_size: int = 0  # bytes per file; 0 = no rotation
    max_files: int = 1

    @property
    def readable(self) -> bool:
        return self.driver == "json-file"


def parse_size(text: str, binary: bool = False) -> int:
    """Docker's human sizes: ``units.FromHumanSize`` (or ``RAMInBytes`` if ``binary``)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise LogConfigError(f"invalid size: '{text}'")
    base = 1024 if binary else 1000
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * base ** (_UNITS.index(unit) + 1 if unit else 0))


def log_settings(log_config: Mapping[str, Any] | None) -> LogSettings:
    """The settings of a ``LogConfig`` (``{"Type": …, "Config": {…}}``)."""
    log_config = log_config or {}
    driver = log_config.get("Type") or "json-file"
    options = _options(log_config.get("Config"))
    if driver == "none":
        return LogSettings(driver="none")
    if driver not in _DOCKER_DRIVERS:
        raise LogConfigError(f"logger: no log driver named '{driver}' is registered")
    if driver != "json-file":
        raise LogConfigError(f"logging driver {driver!r} is not supported by dockertw "
                             f"(only json-file and none)")
    _check_mode(options)
    for key in options:
        if key not in _JSON_FILE_KEYS and key not in _BUILT_IN:
            raise LogConfigError(f"unknown log opt '{key}' for json-file log driver")
    return _json_file(options)


def _options(config: Any) -> dict[str, str]:
    if config is None:
        return {}
    if not isinstance(config, dict) or not all(
            isinstance(value, str) for value in config.values()):
        raise LogConfigError("LogConfig.Config must map option names to strings")
    return config


def _check_mode(options: Mapping[str, str]) -> None:
    mode = options.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise LogConfigError(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in options:
        if mode != "non-blocking":
            raise LogConfigError("logger: max-buffer-size option is only supported with "
                                 "'mode=non-blocking'")
        try:
            parse_size(options["max-buffer-size"], binary=True)
        except LogConfigError as error:
            raise LogConfigError(f"error parsing option max-buffer-size: {error}") from None


def _json_file(options: Mapping[str, str]) -> LogSettings:
    max_size = 0
    if "max-size" in options:
        max_size = parse_size(options["max-size"])
        if max_size <= 0:
            raise LogConfigError("max-size must be a positive number")
    max_files = 1
    if "max-file" in options:
        max_files = _atoi(options["max-file"])
        if max_files < 1:
            raise LogConfigError("max-file cannot be less than 1")
    if _parse_bool(options.get("compress", "false")):
        if max_files == 1 or not max_size:
            raise LogConfigError("compress cannot be true when max-file is less than 2 or "
                                 "max-size is not set")
        raise LogConfigError("log opt compress=true is not supported by dockertw")
    return LogSettings(max_size=max_size, max_files=max_files if max_size else 1)


def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise LogConfigError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _parse_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise LogConfigError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def stored_log_settings(log_config: Mapping[str, Any] | None) -> LogSettings:
    """The settings of a stored container; defaults for options older daemons let by."""
    try:
        return log_settings(log_config)
    except LogConfigError:
        return LogSettings()


def check_readable(log_config: Mapping[str, Any] | None) -> None:
    """Refuse, as Docker does, to read the logs of a container logging to ``none``."""
    if not stored_log_settings(log_config).readable:
        raise errdefs.NotImplemented("configured logging driver does not support reading")


def open_log(path: Path, log_config: Mapping[str, Any] | None,
             on_error: Callable[[OSError | None], None] | None = None) -> JSONLogFile:
    """Where a run's output goes: its json-file log, rotated as configured, or nowhere;
    ``on_error`` hears when writing it fails and when it works again."""
    settings = stored_log_settings(log_config)
    if not settings.readable:
        return DiscardLog()
    return JSONLogFile(path, settings.max_size, settings.max_files, on_error)

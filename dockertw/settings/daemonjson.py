"""Reading daemon.json as dockerd does: unknown keys and keys also given as flags are
refused, each value is checked against its :class:`~dockertw.settings.table.Setting`."""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dockertw.settings.kinds import go_text
from dockertw.settings.table import BY_KEY, DOCKER_ONLY, FLAT, IGNORED, Setting

__all__ = ["DEFAULT_CONFIG_FILE", "ConfigFileError", "read_config_file", "file_settings"]

DEFAULT_CONFIG_FILE = "/etc/dockertw/daemon.json"


class ConfigFileError(ValueError):
    """The file cannot configure the daemon; the message says why, as dockerd would."""


def _decode(data: bytes) -> str:
    """UTF-8, or UTF-16 with a byte order mark (as dockerd accepts)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ConfigFileError(f"failed to decode configuration JSON at offset "
                              f"{error.start}") from None


def _flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """Nested objects spread into their keys, except the keys that hold objects."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key not in FLAT:
            flat.update(value)
        else:
            flat[key] = value
    return flat


def read_config_file(path: str, required: bool) -> dict[str, Any]:
    """The file's keys and raw values; an absent file is empty unless ``required``."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigFileError(f"open {path}: no such file or directory") from None
        return {}
    except OSError as error:
        raise ConfigFileError(f"open {path}: {error.strerror}") from None
    text = _decode(data).strip()
    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigFileError(f"invalid JSON: {error}") from None
    if not isinstance(values, dict):
        raise ConfigFileError("json: cannot unmarshal a non-object into the configuration")
    return _flatten(values)


def _check_keys(values: Mapping[str, Any]) -> None:
    unknown = sorted(key for key in values
                     if key not in BY_KEY and key not in IGNORED and key not in DOCKER_ONLY)
    if unknown:
        raise ConfigFileError("the following directives don't match any configuration "
                              "option: " + ", ".join(unknown))
    lacking = sorted(key for key in values if key in DOCKER_ONLY)
    if lacking:
        raise ConfigFileError("the following directives are dockerd's, but dockertw does "
                              "not have them yet: " + ", ".join(lacking))


def _flag_given(setting: Setting, given: Mapping[str, Any]) -> str | None:
    return next((flag for flag in (setting.flag, *setting.also) if flag in given), None)


def _check_conflicts(values: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    conflicts = []
    for key, value in values.items():
        setting = BY_KEY.get(key)
        if setting is None or setting.merges:
            continue
        flag = _flag_given(setting, given)
        if flag is not None:
            conflicts.append(f"{key}: (from flag: {go_text(given[flag])}, "
                             f"from file: {go_text(value)})")
    if conflicts:
        raise ConfigFileError("the following directives are specified both as a flag and "
                              "in the configuration file: " + ", ".join(conflicts))


def file_settings(path: str, required: bool,
                  given: Mapping[str, Any]) -> dict[Setting, Any]:
    """The settings the file makes, by :class:`Setting`, their values as the options
    hold them.  ``given``: the flags on the command line and their values."""
    values = {key: value for key, value in read_config_file(path, required).items()
              if value is not None}
    _check_keys(values)
    _check_conflicts(values, given)
    try:
        return {BY_KEY[key]: BY_KEY[key].kind.decode(key, value)
                for key, value in values.items() if key in BY_KEY}
    except ValueError as error:
        raise ConfigFileError(str(error)) from None

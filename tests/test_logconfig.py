"""LogConfig: drivers and json-file options, checked with Docker's messages."""

from __future__ import annotations

import pytest

from dockertw.daemon.containers.records.config import fill_host_config
from dockertw.daemon.jsonlog import DiscardLog, JSONLogFile
from dockertw.daemon.logconfig import (
    LogConfigError,
    LogSettings,
    check_readable,
    log_settings,
    open_log,
    parse_size,
    stored_log_settings,
)
from dockertw.errdefs import InvalidParameter, NotImplemented  # noqa: A004


def _settings(**options: str) -> LogSettings:
    return log_settings({"Type": "json-file", "Config": options})


@pytest.mark.parametrize(("text", "size"), [
    ("10k", 10_000), ("10K", 10_000), ("1m", 1_000_000), ("1.5m", 1_500_000),
    ("2g", 2_000_000_000), ("100", 100), ("10kb", 10_000), ("10 KiB", 10_000),
    ("0", 0),
])
def test_sizes_are_decimal_like_moby_from_human_size(text, size):
    assert parse_size(text) == size


def test_binary_sizes_for_max_buffer_size():
    assert parse_size("1k", binary=True) == 1024


@pytest.mark.parametrize("text", ["", "k", "-1", "10x", "1e3", "ten"])
def test_bad_sizes(text):
    with pytest.raises(LogConfigError, match=f"invalid size: '{text}'"):
        parse_size(text)


def test_defaults_and_rotation_settings():
    assert log_settings(None) == LogSettings()
    assert log_settings({"Type": "", "Config": {}}) == LogSettings()
    assert _settings(**{"max-size": "10k", "max-file": "3"}) == LogSettings(
        max_size=10_000, max_files=3)
    assert _settings(**{"max-file": "3"}) == LogSettings()  # needs max-size, as Docker
    assert _settings(compress="false", tag="{{.Name}}", labels="a", env="B",
                     mode="non-blocking", **{"max-buffer-size": "4m"}) == LogSettings()


@pytest.mark.parametrize(("options", "message"), [
    ({"max-size": "0"}, "max-size must be a positive number"),
    ({"max-size": "ten"}, "invalid size: 'ten'"),
    ({"max-size": "1m", "max-file": "0"}, "max-file cannot be less than 1"),
    ({"max-size": "1m", "max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
    ({"compress": "yes"}, 'strconv.ParseBool: parsing "yes": invalid syntax'),
    ({"compress": "true"}, "compress cannot be true when max-file is less than 2 or "
                           "max-size is not set"),
    ({"compress": "true", "max-size": "1m", "max-file": "2"}, "not supported by dockertw"),
    ({"bogus": "1"}, "unknown log opt 'bogus' for json-file log driver"),
    ({"mode": "fast"}, "logger: logging mode not supported: fast"),
    ({"max-buffer-size": "1m"}, "max-buffer-size option is only supported with "
                                "'mode=non-blocking'"),
])
def test_bad_options(options, message):
    with pytest.raises(LogConfigError, match=message.replace("(", r"\(")):
        _settings(**options)


def test_none_driver_takes_anything_and_cannot_be_read(tmp_path):
    settings = log_settings({"Type": "none", "Config": {"whatever": "1"}})
    assert settings.driver == "none" and not settings.readable
    assert isinstance(open_log(tmp_path / "x.log", {"Type": "none"}), DiscardLog)
    assert not (tmp_path / "x.log").exists()
    with pytest.raises(NotImplemented, match="configured logging driver does not support "
                                             "reading"):
        check_readable({"Type": "none"})


def test_other_drivers_are_refused():
    with pytest.raises(LogConfigError, match="'syslog' is not supported by dockertw"):
        log_settings({"Type": "syslog"})


def test_stored_settings_forgive_what_older_daemons_let_by(tmp_path):
    assert stored_log_settings({"Type": "json-file", "Config": {"x": "1"}}) == LogSettings()
    log = open_log(tmp_path / "c.log", {"Config": {"max-size": "1k", "max-file": "2"}})
    assert isinstance(log, JSONLogFile)
    log.close()


def test_create_answers_400_and_fills_the_type():
    fill = {"runtime": "runc", "cgroup_version": "2"}
    with pytest.raises(InvalidParameter, match="unknown log opt 'bogus'"):
        fill_host_config({"LogConfig": {"Type": "json-file", "Config": {"bogus": "1"}}},
                         {}, **fill)
    filled = fill_host_config({"LogConfig": {"Type": "none", "Config": None}}, {}, **fill)
    assert filled["LogConfig"] == {"Type": "none", "Config": {}}
    filled = fill_host_config({}, {}, **fill)
    assert filled["LogConfig"] == {"Type": "json-file", "Config": {}}


def test_unknown_and_unsupported_drivers():
    with pytest.raises(LogConfigError, match="^logger: no log driver named 'asdf' is "
                                             "registered$"):
        log_settings({"Type": "asdf"})
    with pytest.raises(LogConfigError, match="logging driver 'syslog' is not supported"):
        log_settings({"Type": "syslog"})

"""daemon.json read as dockerd reads it: keys, kinds, conflicts with flags (no daemon)."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from twisted.python import usage

from dockertw.settings import (
    BY_KEY,
    DOCKER_ONLY,
    SETTINGS,
    ConfigFileError,
    file_settings,
    go_text,
    parse_ulimit,
)
from dockertw.tap import Options


def _file(tmp_path: Path, values: object) -> str:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(values))
    return str(path)


def _parse(*args: str) -> Options:
    options = Options()
    options.parseOptions(list(args))
    return options


def test_every_key_names_an_option_of_the_daemon():
    options = Options()
    flags = {name for name in options.synonyms.values()} | {"add-runtime", "default-ulimit",
                                                          "label", "log-opt", "host", "listen"}
    for setting in SETTINGS:
        assert setting.flag in flags, setting
        assert setting.option in options or setting.option in ("addresses",), setting
    assert not DOCKER_ONLY & set(BY_KEY)


def test_absent_default_file_is_no_settings(tmp_path: Path):
    assert file_settings(str(tmp_path / "none.json"), False, {}) == {}
    assert file_settings(_file(tmp_path, {}), True, {}) == {}
    (tmp_path / "blank.json").write_text("  \n")
    assert file_settings(str(tmp_path / "blank.json"), True, {}) == {}


def test_absent_file_asked_for_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigFileError, match="no such file"):
        file_settings(str(tmp_path / "none.json"), True, {})


def test_unknown_keys_are_named(tmp_path: Path):
    with pytest.raises(ConfigFileError) as caught:
        file_settings(_file(tmp_path, {"debug": True, "colour": "red", "bogus": 1}), True, {})
    assert str(caught.value) == ("the following directives don't match any configuration "
                                 "option: bogus, colour")


def test_dockerd_keys_dockertw_lacks_say_so(tmp_path: Path):
    with pytest.raises(ConfigFileError) as caught:
        file_settings(_file(tmp_path, {"storage-driver": "vfs"}), True, {})
    assert "dockerd's, but dockertw does not have them yet: storage-driver" in str(caught.value)
    assert "don't match" not in str(caught.value)


def test_wrong_kind_is_worded_as_go_json(tmp_path: Path):
    with pytest.raises(ConfigFileError) as caught:
        file_settings(_file(tmp_path, {"debug": "yes"}), True, {})
    assert str(caught.value) == ("json: cannot unmarshal string into Go struct field "
                                 "Config.debug of type bool")


def test_invalid_json_is_refused(tmp_path: Path):
    (tmp_path / "bad.json").write_text('{"debug": tru')
    with pytest.raises(ConfigFileError, match="invalid JSON"):
        file_settings(str(tmp_path / "bad.json"), True, {})


def test_byte_order_marks_are_read_as_dockerd_does(tmp_path: Path):
    path = tmp_path / "bom.json"
    path.write_bytes(codecs.BOM_UTF16_LE + '{"debug": true}'.encode("utf-16-le"))
    assert file_settings(str(path), True, {}) == {BY_KEY["debug"]: 1}
    path.write_bytes(codecs.BOM_UTF8 + b'{"debug": false}')
    assert file_settings(str(path), True, {}) == {BY_KEY["debug"]: 0}


def test_nested_objects_spread_except_the_object_keys(tmp_path: Path):
    found = file_settings(_file(tmp_path, {"tlsopts": {"tlscert": "/c.pem"},
                                           "log-opts": {"max-size": "1m"}}), True, {})
    assert found == {BY_KEY["tlscert"]: "/c.pem", BY_KEY["log-opts"]: {"max-size": "1m"}}


def test_conflicts_name_both_values(tmp_path: Path):
    path = _file(tmp_path, {"hosts": ["unix:///b.sock"], "debug": False})
    with pytest.raises(usage.UsageError) as caught:
        _parse("--config-file", path, "-H", "unix:///a.sock", "-D")
    message = str(caught.value)
    assert message.startswith(f"unable to configure the daemon with file {path}: the "
                              "following directives are specified both as a flag and in "
                              "the configuration file: ")
    assert "hosts: (from flag: [unix:///a.sock], from file: [unix:///b.sock])" in message
    assert "debug: (from flag: 1, from file: false)" in message


def test_listen_conflicts_with_hosts_too(tmp_path: Path):
    path = _file(tmp_path, {"hosts": ["unix:///b.sock"]})
    with pytest.raises(usage.UsageError, match="hosts: "):
        _parse("--config-file", path, "--listen", "unix:/a.sock")


def test_runtimes_of_file_and_flags_add_up(tmp_path: Path):
    path = _file(tmp_path, {"runtimes": {"slow": {"path": "/bin/slow",
                                                  "runtimeArgs": ["--x"]}}})
    options = _parse("--config-file", path, "--add-runtime", "fast=/bin/fast")
    assert options["runtimes"] == {"slow": {"path": "/bin/slow", "runtimeArgs": ["--x"]},
                                   "fast": {"path": "/bin/fast"}}


def test_file_values_land_where_the_flags_put_theirs(tmp_path: Path):
    path = _file(tmp_path, {
        "hosts": ["unix:///x/d.sock"], "data-root": "/srv/dtw", "exec-root": "/run/x",
        "pidfile": "/run/x.pid", "group": "0", "debug": True, "log-level": "warn",
        "labels": ["a=b"], "experimental": True, "min-api-version": "1.30",
        "cgroup-parent": "dtw-x", "default-runtime": "runc",
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 10, "Hard": 20}},
        "log-driver": "json-file", "log-opts": {"max-size": "10k"},
    })
    options = _parse("--config-file", path)
    assert options["addresses"] == ["unix:///x/d.sock"]
    assert (options["data-root"], options["exec-root"]) == ("/srv/dtw", "/run/x")
    assert (options["pidfile"], options["socket-gid"]) == ("/run/x.pid", 0)
    assert (options["debug"], options["log-level"], options["labels"]) == (1, "warn", ["a=b"])
    assert (options["experimental"], options["min-api-version"]) == (1, "1.30")
    assert options["cgroup-parent"] == "dtw-x"
    assert options["default-ulimits"] == {"nofile": {"Name": "nofile", "Soft": 10,
                                                     "Hard": 20}}
    assert options["log-opts"] == {"max-size": "10k"}


def test_network_keys_land_in_the_network_configuration(tmp_path: Path):
    path = _file(tmp_path, {
        "bridge": "dtwx0", "bip": "10.98.0.1/24", "fixed-cidr": "10.98.0.128/25",
        "default-address-pools": [{"base": "10.99.0.0/16", "size": 24}], "mtu": 1400,
        "ip": "127.0.0.1", "ip-masq": False, "icc": False, "iptables": False,
        "ip-forward": False, "userland-proxy": False, "dns": ["127.0.0.53"],
        "dns-search": ["example.test"], "dns-opts": ["ndots:2"],
    })
    network = _parse("--config-file", path)["network"]
    assert (network.bridge, network.bip, network.fixed_cidr) == (
        "dtwx0", "10.98.0.1/24", "10.98.0.128/25")
    assert [(str(pool.base), pool.size) for pool in network.pools] == [("10.99.0.0/16", 24)]
    assert (network.mtu, network.host_ip) == (1400, "127.0.0.1")
    assert not (network.ip_masq or network.icc or network.iptables or network.ip_forward)
    assert (network.dns, network.dns_search, network.dns_options) == (
        ("127.0.0.53",), ("example.test",), ("ndots:2",))


def test_a_bad_address_pool_in_the_file_is_refused(tmp_path: Path):
    path = _file(tmp_path, {"default-address-pools": [{"base": "10.99.0.0/16", "size": 8}]})
    with pytest.raises(usage.UsageError, match="size must be between 16 and 30"):
        _parse("--config-file", path)


@pytest.mark.parametrize(("args", "message"), [
    (["--log-level", "loud"], "invalid logging level: loud"),
    (["--default-runtime", "nope"], "specified default runtime 'nope' does not exist"),
    (["--add-runtime", "runc=/bin/x"], "runtime name 'runc' is reserved"),
    (["--add-runtime", "nopath"], "expected NAME=PATH"),
    (["--default-ulimit", "nofile=20:10"], "soft limit must be less than or equal"),
    (["--log-opt", "max-size=lots"], "invalid size: 'lots'"),
    (["--log-driver", "syslog"], "syslog"),
    (["-G", "no-such-group-here"], "group 'no-such-group-here' not found"),
])
def test_bad_flags_are_refused(tmp_path: Path, args: list[str], message: str):
    with pytest.raises(usage.UsageError, match=message):
        _parse("--config-file", _file(tmp_path, {}), *args)


def test_dockerd_flag_names_and_the_old_root():
    options = _parse("--config-file", "/dev/null", "--root", "/srv/a", "-D", "-p", "/x.pid",
                     "--default-ulimit", "nproc=64", "--label", "k=v")
    assert options["data-root"] == "/srv/a"
    assert options["debug"] == 1 and options["pidfile"] == "/x.pid"
    assert options["default-ulimits"]["nproc"] == {"Name": "nproc", "Soft": 64, "Hard": 64}
    assert options["labels"] == ["k=v"]


def test_the_default_group_may_be_missing():
    options = Options()
    options.parseOptions(["--config-file", "/dev/null"])
    assert options["group"] == "docker"  # its gid, or none when there is no such group


@pytest.mark.parametrize(("text", "limit"), [
    ("nofile=1024:2048", {"Name": "nofile", "Soft": 1024, "Hard": 2048}),
    ("core=0", {"Name": "core", "Soft": 0, "Hard": 0}),
])
def test_ulimit_text(text: str, limit: dict[str, object]):
    assert parse_ulimit(text) == limit


def test_go_text_prints_as_go_does():
    assert go_text(["a", "b"]) == "[a b]"
    assert go_text({"b": 1, "a": True}) == "map[a:true b:1]"
    assert go_text(False) == "false"

"""Device nodes and device-cgroup rules as Docker makes them (the host's /dev read)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockertw.errdefs import InvalidParameter
from dockertw.runtime.devices import (
    DeviceRule,
    cgroup_rule,
    device_from_path,
    devices_from_path,
    host_devices,
)


def test_cgroup_rules():
    assert cgroup_rule("c 1:3 mr") == DeviceRule(True, "mr", "c", 1, 3)
    assert cgroup_rule("a *:* rwm").to_json() == {"allow": True, "type": "a", "major": -1,
                                                  "minor": -1, "access": "rwm"}
    for bad in ("c 1:3", "x 1:3 r", "c 1:3 rwx", "c a:3 r", " c 1:3 r"):
        with pytest.raises(InvalidParameter, match="invalid device cgroup rule format"):
            cgroup_rule(bad)


def test_a_device_and_a_directory_of_devices(tmp_path: Path):
    null = device_from_path("/dev/null")
    assert null is not None and (null.type, null.major, null.minor) == ("c", 1, 3)
    assert device_from_path("/etc/hostname" if os.path.exists("/etc/hostname")
                            else "/etc/passwd") is None
    devices, rules = devices_from_path("/dev/null", "/dev/mine", "r")
    assert [d.path for d in devices] == ["/dev/mine"]
    assert rules == [DeviceRule(True, "r", "c", 1, 3)]
    link = tmp_path / "link"
    link.symlink_to("/dev/zero")
    assert devices_from_path(str(link), "/dev/z")[0][0].minor == 5
    directory = tmp_path / "devs"
    directory.mkdir()
    os.mknod(directory / "n", 0o600 | 0o020000, os.makedev(1, 3))
    (directory / "plain").write_text("not a device")
    devices, _ = devices_from_path(str(directory), "/dev/set")
    assert [(d.path, d.file_mode) for d in devices] == [("/dev/set/n", 0o600)]
    with pytest.raises(InvalidParameter, match='custom device "/dev/nosuch": no such file'):
        devices_from_path("/dev/nosuch", "/dev/nosuch")
    with pytest.raises(InvalidParameter, match="not a device node"):
        devices_from_path(str(directory / "plain"), "/dev/p")


def test_host_devices_skip_pts_shm_and_console():
    paths = {device.path for device in host_devices()}
    assert "/dev/null" in paths and "/dev/console" not in paths
    assert not any(path.startswith(("/dev/pts/", "/dev/shm/")) for path in paths)

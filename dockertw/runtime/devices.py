"""Device nodes and device-cgroup rules for the OCI spec, as Docker makes them.

``--device /dev/x[:/dev/y[:perms]]`` gives the container a node like the host's (a
directory: every device under it) and a cgroup rule allowing it; ``--device-cgroup-rule
'c 1:3 mr'`` adds a rule; a privileged container gets every host device.  Reading the
host's ``/dev`` blocks: call these from a worker thread.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from typing import Any

import attrs

from dockertw.errdefs import InvalidParameter

__all__ = ["Device", "DeviceRule", "DEFAULT_DEVICE_RULES", "device_from_path",
           "devices_from_path", "host_devices", "cgroup_rule"]

_RULE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
# Directories of /dev a privileged container does not get (containerd's list).
_SKIPPED_DIRECTORIES = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts",
                                  ".udev"})
_KINDS = ((stat.S_ISBLK, "b"), (stat.S_ISCHR, "c"), (stat.S_ISFIFO, "p"))


@attrs.frozen
class Device:
    """A node runc makes in the container (OCI ``LinuxDevice``)."""

    path: str
    type: str  # "c", "b" or "p"
    major: int
    minor: int
    file_mode: int
    uid: int
    gid: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "type": self.type, "major": self.major,
                "minor": self.minor, "fileMode": self.file_mode, "uid": self.uid,
                "gid": self.gid}


@attrs.frozen
class DeviceRule:
    """A device-cgroup rule (OCI ``LinuxDeviceCgroup``); ``-1``: any number."""

    allow: bool
    access: str = "rwm"
    type: str = ""  # "" or "a": every device
    major: int | None = None
    minor: int | None = None

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"allow": self.allow}
        for key, value in (("type", self.type), ("major", self.major),
                           ("minor", self.minor)):
            if value not in ("", None):
                shown[key] = value
        shown["access"] = self.access
        return shown


def _char(major: int, minor: int) -> DeviceRule:
    return DeviceRule(True, "rwm", "c", major, minor)


#: Docker's defaults: nothing but zero, null, urandom, random, tty, console (runc adds
#: the rest of its standard devices), and never fuse.
DEFAULT_DEVICE_RULES = (DeviceRule(False), _char(1, 5), _char(1, 3), _char(1, 9),
                        _char(1, 8), _char(5, 0), _char(5, 1),
                        DeviceRule(False, "rwm", "c", 10, 229))


def device_from_path(path: str) -> Device | None:
    """The device at ``path`` (not followed if a link); ``None`` when not a device."""
    info = os.lstat(path)
    for test, kind in _KINDS:
        if test(info.st_mode):
            return Device(path, kind, os.major(info.st_rdev), os.minor(info.st_rdev),
                          stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    return None


def _under(directory: str) -> Iterator[Device]:
    for root, _dirs, files in os.walk(directory):
        for name in sorted(files):
            try:
                found = device_from_path(os.path.join(root, name))
            except OSError:
                continue
            if found is not None:
                yield found


def devices_from_path(on_host: str, in_container: str, permissions: str = "rwm"
                      ) -> tuple[list[Device], list[DeviceRule]]:
    """moby's ``DevicesFromPath``: the device at ``on_host`` (a link resolved; a
    directory: the devices under it) as ``in_container``, with its cgroup rules."""
    resolved = os.path.realpath(on_host) if os.path.islink(on_host) else on_host
    try:
        device = device_from_path(resolved)
    except OSError as error:
        raise _gathering_error(on_host, (error.strerror or str(error)).lower()) from None
    found = [device] if device is not None else list(_under(resolved))
    if not found:
        raise _gathering_error(on_host, "not a device node")
    devices = [attrs.evolve(d, path=in_container + d.path[len(resolved):]) for d in found]
    return devices, [DeviceRule(True, permissions, d.type, d.major, d.minor)
                     for d in devices]


def _gathering_error(on_host: str, reason: str) -> InvalidParameter:
    return InvalidParameter("error gathering device information while adding custom "
                            f"device {_quoted(on_host)}: {reason}")


def host_devices(root: str = "/dev") -> list[Device]:
    """Every device of the host a privileged container gets (containerd's choice)."""
    found: list[Device] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DIRECTORIES:
                found += host_devices(entry.path)
            continue
        if entry.name == "console":
            continue
        try:
            device = device_from_path(entry.path)
        except OSError:
            continue
        if device is not None and device.type != "p":
            found.append(device)
    return found


def _number(text: str) -> int:
    return -1 if text == "*" else int(text)


def cgroup_rule(text: str) -> DeviceRule:
    """A ``--device-cgroup-rule`` (``c 1:3 mr``, ``a *:* rwm``); 400 otherwise."""
    match = _RULE.match(text)
    if match is None:
        raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
    kind, major, minor, access = match.groups()
    return DeviceRule(True, access, kind, _number(major), _number(minor))


def _quoted(text: str) -> str:
    """Go's ``%q`` for the paths shown in messages."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

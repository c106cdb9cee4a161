"""Namespace modes, devices and isolation of a HostConfig, checked as moby checks them.

``--pid host|container:X``, ``--ipc host|container:X|shareable|none|private``,
``--uts host``, ``--userns host``, ``--cgroupns host|private``, ``--device``,
``--device-cgroup-rule``, ``--isolation default``; ``--gpus`` (device requests) is
refused as by a Docker host without a GPU driver.  The namespaces a container joins
are found when it starts (:mod:`dockertw.daemon.containers.running.namespaces`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dockertw.errdefs import InvalidParameter
from dockertw.runtime.devices import cgroup_rule

__all__ = ["check_modes", "shared_with", "adapt_shared_modes", "CONTAINER_PREFIX"]

CONTAINER_PREFIX = "container:"
_IPC_MODES = frozenset({"", "private", "none", "shareable", "host"})
_CGROUPNS_MODES = frozenset({"", "host", "private"})


def shared_with(mode: str) -> str | None:
    """The container named by a ``container:<name|id>`` mode (``None``: another mode)."""
    return mode[len(CONTAINER_PREFIX):] if mode.startswith(CONTAINER_PREFIX) else None


def _text(host: Mapping[str, Any], key: str) -> str:
    value = host.get(key) or ""
    if not isinstance(value, str):
        raise InvalidParameter(f"invalid JSON: {key} must be a string")
    return value


def _check_namespace_modes(host: Mapping[str, Any], hostname: str) -> None:
    ipc = _text(host, "IpcMode")
    if ipc not in _IPC_MODES and shared_with(ipc) is None:
        raise InvalidParameter(f"invalid IPC mode: {ipc}")
    pid = _text(host, "PidMode")
    if pid not in ("", "host") and not shared_with(pid):
        raise InvalidParameter(f"invalid PID mode: {pid}")
    uts = _text(host, "UTSMode")
    if uts not in ("", "host"):
        raise InvalidParameter(f"invalid UTS mode: {uts}")
    if uts == "host" and hostname:
        raise InvalidParameter("conflicting options: hostname and the UTS mode")
    _text(host, "UsernsMode")  # any: without user-namespace remapping all run as host
    cgroupns = _text(host, "CgroupnsMode")
    if cgroupns not in _CGROUPNS_MODES:
        raise InvalidParameter(f"invalid cgroup namespace mode: {cgroupns}")


def _check_devices(devices: Any) -> None:
    if not isinstance(devices, list):
        raise InvalidParameter("invalid JSON: Devices must be a list")
    for device in devices:
        if not isinstance(device, dict) or not all(
                isinstance(device.get(key) or "", str)
                for key in ("PathOnHost", "PathInContainer", "CgroupPermissions")):
            raise InvalidParameter("invalid JSON: Devices must hold DeviceMapping objects")
        permissions = device.get("CgroupPermissions") or "rwm"
        if not set(permissions) <= set("rwm") or len(set(permissions)) != len(permissions):
            raise InvalidParameter(f"invalid device mode: {permissions}")
        if not device.get("PathOnHost"):
            raise InvalidParameter("invalid device mapping: PathOnHost is empty")


def _check_device_requests(requests: Any) -> None:
    """``--gpus``: no device driver is registered here (moby's message)."""
    for request in requests or ():
        if not isinstance(request, dict):
            raise InvalidParameter("invalid JSON: DeviceRequests must hold objects")
        sets = request.get("Capabilities") or []
        shown = " ".join("[" + " ".join(str(c) for c in caps or ()) + "]" for caps in sets)
        raise InvalidParameter(f'could not select device driver "{request.get("Driver") or ""}"'
                               f" with capabilities: [{shown}]")


def check_modes(host: Mapping[str, Any], hostname: str = "") -> None:
    """400 for what moby refuses; ``hostname`` is the one the user asked for."""
    _check_namespace_modes(host, hostname)
    _check_devices(host.get("Devices") or [])
    rules = host.get("DeviceCgroupRules") or []
    if not isinstance(rules, list) or not all(isinstance(rule, str) for rule in rules):
        raise InvalidParameter("invalid JSON: DeviceCgroupRules must be a list of strings")
    for rule in rules:
        cgroup_rule(rule)
    _check_device_requests(host.get("DeviceRequests"))
    isolation = _text(host, "Isolation")
    if isolation.lower() not in ("", "default"):
        raise InvalidParameter(f"invalid isolation ({isolation}): linux only supports "
                               "'default'")


def adapt_shared_modes(host: dict[str, Any], container_id: Callable[[str], str | None]
                       ) -> None:
    """moby's ``adaptSharedNamespaceContainer``: ``container:<name>`` becomes
    ``container:<id>`` when the container exists (a rename keeps the link)."""
    for key in ("PidMode", "IpcMode"):
        name = shared_with(str(host.get(key) or ""))
        found = container_id(name) if name else None
        if found:
            host[key] = CONTAINER_PREFIX + found

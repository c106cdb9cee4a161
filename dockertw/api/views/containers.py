"""Container request bodies and answers at each API version (moby's container router)."""

from __future__ import annotations

import copy
from typing import Any

from dockertw.api.versions import before, drop_before, drop_since, health_config, since
from dockertw.api.views.networks import endpoints_view, mac_address_gates
from dockertw.errdefs import InvalidParameter

__all__ = ["create_body", "update_body", "exec_body", "exec_start_body", "inspect_view",
           "summary_view", "stream_content_type", "RAW_STREAM", "MULTIPLEXED_STREAM"]

RAW_STREAM = b"application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = b"application/vnd.docker.multiplexed-stream"

# Top-level NetworkSettings fields moby dropped in API 1.52 (deprecated since 1.21/1.44).
_LEGACY_NETWORK_SETTINGS = (
    "Bridge", "HairpinMode", "LinkLocalIPv6Address", "LinkLocalIPv6PrefixLen",
    "SecondaryIPAddresses", "SecondaryIPv6Addresses", "EndpointID", "Gateway",
    "GlobalIPv6Address", "GlobalIPv6PrefixLen", "IPAddress", "IPPrefixLen", "IPv6Gateway",
    "MacAddress",
)
_MOUNT_OPTIONS = (("VolumeOptions", "volume"), ("BindOptions", "bind"),
                  ("TmpfsOptions", "tmpfs"))
_VOLUME_DRIVER_WARNING = (
    "WARNING: the container-wide volume-driver configuration is ignored for volumes "
    "specified via 'mount'. Use '--mount type=volume,volume-driver=...' instead")


def stream_content_type(tty: bool, version: str) -> bytes:
    """Logs, attach and exec output: multiplexed without a TTY from API 1.42 on."""
    return MULTIPLEXED_STREAM if not tty and since(version, "1.42") else RAW_STREAM


def _member(value: dict[str, Any], key: str) -> dict[str, Any]:
    """``value[key]`` when it is an object, else an empty one."""
    found = value.get(key)
    return found if isinstance(found, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) \
        else []


def _mounts_before_142(mounts: list[dict[str, Any]]) -> None:
    """API < 1.42: ``CreateMountpoint`` unknown, mismatched options ignored."""
    for mount in mounts:
        if isinstance(mount.get("BindOptions"), dict):
            mount["BindOptions"].pop("CreateMountpoint", None)
        for field, kind in (("VolumeOptions", "volume"), ("TmpfsOptions", "tmpfs")):
            if mount.get(field) is not None and mount.get("Type") != kind:
                mount.pop(field)


def _check_mount_options(mounts: list[dict[str, Any]]) -> None:
    """API >= 1.42: options of another mount type are refused."""
    for mount in mounts:
        for field, kind in _MOUNT_OPTIONS:
            if mount.get(field) is not None and mount.get("Type") != kind:
                raise InvalidParameter(
                    f'{field} must not be specified on mount type "{mount.get("Type", "")}"')


def _check_newer_mounts(mounts: list[dict[str, Any]], version: str) -> None:
    """Mount features refused to requests older than the version that brought them."""
    for mount in mounts:
        bind, volume = _member(mount, "BindOptions"), _member(mount, "VolumeOptions")
        if before(version, "1.44") and mount.get("Type") == "bind" \
                and bind.get("ReadOnlyForceRecursive"):
            raise InvalidParameter("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer")
        if before(version, "1.45") and volume.get("Subpath"):
            raise InvalidParameter("VolumeOptions.Subpath needs API v1.45 or newer")
        if before(version, "1.48") and mount.get("Type") == "image":
            raise InvalidParameter('Mount type "Image" needs API v1.48 or newer')


def _endpoints(body: dict[str, Any]) -> dict[str, Any]:
    networking = body.get("NetworkingConfig")
    endpoints = networking.get("EndpointsConfig") if isinstance(networking, dict) else None
    return endpoints if isinstance(endpoints, dict) else {}


def _networking_gates(body: dict[str, Any], version: str) -> None:
    endpoints = _endpoints(body)
    if before(version, "1.44") and len(endpoints) > 1:
        raise InvalidParameter("Container cannot be created with multiple network "
                               f"endpoints: {', '.join(endpoints)}")
    if before(version, "1.48"):
        for endpoint in endpoints.values():
            if isinstance(endpoint, dict) and "GwPriority" in endpoint:
                endpoint["GwPriority"] = 0


def _host_config_gates(host: dict[str, Any], version: str) -> None:
    mounts = _dicts(host.get("Mounts"))
    if before(version, "1.42"):
        _mounts_before_142(mounts)
        if "ConsoleSize" in host:  # not respected on Linux before 1.42
            host["ConsoleSize"] = [0, 0]
    else:
        _check_mount_options(mounts)
        host.pop("KernelMemory", None)  # removed in 1.42: ignored
    if before(version, "1.43"):
        host.pop("Annotations", None)
    if since(version, "1.52"):
        host.pop("KernelMemoryTCP", None)
    _check_newer_mounts(mounts, version)


def _volume_driver_warning(host: dict[str, Any], version: str) -> list[str]:
    """API >= 1.48 warns that ``VolumeDriver`` does not reach ``Mounts`` volumes."""
    if not host.get("VolumeDriver") or before(version, "1.48"):
        return []
    for mount in _dicts(host.get("Mounts")):
        driver = _member(_member(mount, "VolumeOptions"), "DriverConfig")
        if mount.get("Type") == "volume" and not driver.get("Name"):
            return [_VOLUME_DRIVER_WARNING]
    return []


def create_body(body: Any, version: str) -> tuple[Any, list[str]]:
    """``POST /containers/create``'s body as moby reads it at ``version``, and the
    warnings the version adds to the answer."""
    if not isinstance(body, dict):
        return body, []
    body = copy.deepcopy(body)
    if "Healthcheck" in body:
        body["Healthcheck"] = health_config(body["Healthcheck"], version)
    host = body.get("HostConfig")
    warnings: list[str] = []
    if isinstance(host, dict):
        _host_config_gates(host, version)
        warnings = _volume_driver_warning(host, version)
    _networking_gates(body, version)
    warnings += mac_address_gates(body, version)
    return body, warnings


_BLKIO_DEVICES = ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                  "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")


def update_body(body: Any, version: str) -> Any:
    """``POST /containers/{id}/update``: fields a version does not know are ignored."""
    if not isinstance(body, dict):
        return body
    body = dict(body)
    if before(version, "1.40"):
        body.pop("PidsLimit", None)
    if since(version, "1.42"):
        body.pop("KernelMemory", None)
    if since(version, "1.52"):
        body.pop("KernelMemoryTCP", None)
    if before(version, "1.55"):
        for field in _BLKIO_DEVICES:
            body.pop(field, None)
    return body


def exec_body(body: Any, version: str) -> Any:
    """``POST /containers/{id}/exec``: ``ConsoleSize`` from API 1.42 on."""
    if isinstance(body, dict) and before(version, "1.42") and "ConsoleSize" in body:
        return {key: value for key, value in body.items() if key != "ConsoleSize"}
    return body


def exec_start_body(body: Any, version: str) -> Any:
    """``POST /exec/{id}/start``: ``ConsoleSize`` from API 1.42 on, with ``Tty`` only."""
    if isinstance(body, dict) and "ConsoleSize" in body \
            and (before(version, "1.42") or not body.get("Tty")):
        return {key: value for key, value in body.items() if key != "ConsoleSize"}
    return body


def _unset(value: Any) -> bool:
    return value is None or value == 0


def inspect_view(document: dict[str, Any], version: str) -> dict[str, Any]:
    """``GET /containers/{id}/json`` at ``version``."""
    host = document.get("HostConfig")
    if isinstance(host, dict) and since(version, "1.42"):
        document["HostConfig"] = host = dict(host)
        for field in ("KernelMemory", "KernelMemoryTCP"):  # omitted when unset
            if _unset(host.get(field)):
                host.pop(field, None)
        drop_since(host, version, "1.52", "KernelMemoryTCP")
    if isinstance(host, dict):
        drop_before(host, version, "1.43", "Annotations")
    settings = document.get("NetworkSettings")
    if isinstance(settings, dict):
        drop_since(settings, version, "1.52", *_LEGACY_NETWORK_SETTINGS)
    endpoints_view(settings, version)
    config = document.get("Config")
    if isinstance(config, dict) and since(version, "1.52") and not config.get("OnBuild"):
        config.pop("OnBuild", None)
    return document


def summary_view(item: dict[str, Any], version: str) -> dict[str, Any]:
    """An item of ``GET /containers/json``: ``HostConfig.Annotations`` from API 1.46,
    the ``Health`` summary from 1.52."""
    if before(version, "1.52"):
        item.pop("Health", None)
    endpoints_view(item.get("NetworkSettings"), version)
    host = item.get("HostConfig")
    if isinstance(host, dict) and before(version, "1.46") and "Annotations" in host:
        item["HostConfig"] = {key: value for key, value in host.items()
                              if key != "Annotations"}
    return item

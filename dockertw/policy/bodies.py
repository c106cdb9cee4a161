"""What a rule lets a container create or an exec body ask for.

Each check answers the first thing the body asks for that the limits refuse, as a
sentence for the client, or ``None``.  Bodies are read with the exact keys the
engine reads (``HostConfig.Privileged``, ...), so nothing the engine honours is
missed.  Host paths are resolved with the function the caller gives (the daemon
passes ``os.path.realpath``, so a symbolic link under an allowed prefix cannot point
outside it at the time of the request).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import attrs

__all__ = ["CreateLimits", "ExecLimits", "capability_name", "create_violation",
           "exec_violation", "under_prefix"]

_NAMESPACE_MODES = ("PidMode", "IpcMode", "NetworkMode", "UTSMode", "UsernsMode",
                    "CgroupnsMode")
_JOINABLE_MODES = ("PidMode", "IpcMode", "NetworkMode")
_DEVICE_KEYS = ("Devices", "DeviceRequests", "DeviceCgroupRules")

Resolve = Callable[[str], str]


@attrs.frozen
class CreateLimits:
    """``[rules.create]``: every key off (refused) unless the policy allows it."""

    privileged: bool = False
    host_namespaces: bool = False
    other_containers: bool = False
    bind_prefixes: tuple[str, ...] = ()
    volume_options: bool = False
    capabilities: frozenset[str] = frozenset()
    devices: bool = False
    unconfined: bool = False
    images: tuple[str, ...] = ("*",)

    @property
    def checks_images(self) -> bool:
        return "*" not in self.images


@attrs.frozen
class ExecLimits:
    """``[rules.exec]``: no privileged exec unless allowed; users as patterns."""

    privileged: bool = False
    users: tuple[str, ...] = ("*",)


def under_prefix(path: str, prefixes: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or lies beneath one."""
    path = posixpath.normpath(path)
    return any(path == prefix or path.startswith(prefix.rstrip("/") + "/")
               for prefix in prefixes)


def _host(body: Mapping[str, Any]) -> Mapping[str, Any]:
    host = body.get("HostConfig")
    return host if isinstance(host, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _privileged(host: Mapping[str, Any], limits: CreateLimits) -> str | None:
    if host.get("Privileged") and not limits.privileged:
        return "privileged containers are not allowed"
    return None


def _namespaces(host: Mapping[str, Any], limits: CreateLimits) -> str | None:
    for key in _NAMESPACE_MODES:
        mode = host.get(key)
        if mode == "host" and not limits.host_namespaces:
            return f"the host's namespaces are not allowed (HostConfig.{key}=host)"
    return None


def _other_containers(host: Mapping[str, Any], limits: CreateLimits) -> str | None:
    if limits.other_containers:
        return None
    for key in _JOINABLE_MODES:
        mode = host.get(key)
        if isinstance(mode, str) and mode.startswith("container:"):
            return f"joining another container is not allowed (HostConfig.{key}={mode})"
    if _list(host.get("VolumesFrom")):
        return "volumes from other containers are not allowed (HostConfig.VolumesFrom)"
    return None


def _bind_source(bind: Any) -> str | None:
    """The host path of a ``Binds`` entry (``None`` for a named volume)."""
    if not isinstance(bind, str):
        return None
    source = bind.split(":", 1)[0]
    return source if source.startswith("/") else None


def _outside(source: str, limits: CreateLimits, resolve: Resolve) -> str | None:
    if under_prefix(source, limits.bind_prefixes) and under_prefix(
            resolve(source), limits.bind_prefixes):
        return None
    if not limits.bind_prefixes:
        return f"bind mounts of host paths are not allowed ({source})"
    allowed = ", ".join(limits.bind_prefixes)
    return f"bind mount of {source} is not allowed: host paths must be under {allowed}"


def _binds(host: Mapping[str, Any], limits: CreateLimits, resolve: Resolve) -> str | None:
    for bind in _list(host.get("Binds")):
        source = _bind_source(bind)
        if source is not None and (refused := _outside(source, limits, resolve)):
            return refused
    for mount in _list(host.get("Mounts")):
        if isinstance(mount, Mapping) and (refused := _mount(mount, limits, resolve)):
            return refused
    return None


def _mount(mount: Mapping[str, Any], limits: CreateLimits, resolve: Resolve) -> str | None:
    kind = mount.get("Type")
    if kind == "bind":
        return _outside(str(mount.get("Source") or ""), limits, resolve)
    options = mount.get("VolumeOptions")
    driver = options.get("DriverConfig") if isinstance(options, Mapping) else None
    if kind == "volume" and driver and not limits.volume_options:
        return "volume driver options are not allowed (Mounts[].VolumeOptions.DriverConfig)"
    return None


def capability_name(name: Any) -> str:
    """A capability as runc names it without ``CAP_`` (``ALL`` stays ``ALL``)."""
    text = str(name).upper()
    return text if text == "ALL" else text.removeprefix("CAP_")


def _capabilities(host: Mapping[str, Any], limits: CreateLimits) -> str | None:
    for name in _list(host.get("CapAdd")):
        if capability_name(name) not in limits.capabilities:
            return f"adding the capability {name} is not allowed"
    return None


def _devices(host: Mapping[str, Any], limits: CreateLimits) -> str | None:
    if limits.devices:
        return None
    for key in _DEVICE_KEYS:
        if _list(host.get(key)):
            return f"host devices are not allowed (HostConfig.{key})"
    return None


def _unconfined(host: Mapping[str, Any], limits: CreateLimits) -> str | None:
    if limits.unconfined:
        return None
    for option in _list(host.get("SecurityOpt")):
        text = str(option).replace(":", "=")
        if text.endswith("=unconfined") or text == "label=disable":
            return f"the security option {option} is not allowed"
    for key in ("MaskedPaths", "ReadonlyPaths"):
        if isinstance(host.get(key), list):
            return f"changing the masked or read-only paths is not allowed (HostConfig.{key})"
    return None


def _image(names: Iterable[str], limits: CreateLimits) -> str | None:
    names = tuple(names)
    if not limits.checks_images or any(
            fnmatchcase(name, pattern) for name in names for pattern in limits.images):
        return None
    shown = names[0] if names else "(none)"
    return f"the image {shown} is not allowed: images must match {', '.join(limits.images)}"


def create_violation(body: Mapping[str, Any], limits: CreateLimits,
                     image_names: Iterable[str] = (),
                     resolve: Resolve = posixpath.normpath) -> str | None:
    """The first thing a ``POST /containers/create`` body asks for that ``limits``
    refuse.  ``image_names``: the image as asked for, and the names of the image it is
    (an image is allowed when any of them matches)."""
    host = _host(body)
    return (_privileged(host, limits) or _namespaces(host, limits)
            or _other_containers(host, limits) or _binds(host, limits, resolve)
            or _capabilities(host, limits) or _devices(host, limits)
            or _unconfined(host, limits) or _image(image_names, limits))


def exec_violation(body: Mapping[str, Any], limits: ExecLimits) -> str | None:
    """The first thing a ``POST /containers/{id}/exec`` body asks for that ``limits``
    refuse."""
    if body.get("Privileged") and not limits.privileged:
        return "privileged exec is not allowed"
    user = str(body.get("User") or "")
    if "*" not in limits.users and not any(fnmatchcase(user, u) for u in limits.users):
        shown = user or "the container's default user"
        return f"exec as {shown} is not allowed: users must match {', '.join(limits.users)}"
    return None

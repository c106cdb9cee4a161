"""A container's mounts from ``HostConfig.Binds``, ``Mounts`` and ``Tmpfs``.

Checked at create with moby's messages; at start they become OCI mounts (host paths
bound, tmpfs mounted), destinations resolved inside the root filesystem by runc.
Named volumes are not supported yet and answer 400.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from dockertw.errdefs import InvalidParameter
from dockertw.runtime.spec import Mount

__all__ = ["ContainerMount", "container_mounts", "oci_mounts", "inspect_mounts"]

_PROPAGATIONS = frozenset({"shared", "rshared", "slave", "rslave", "private", "rprivate"})
_TMPFS_FLAGS = frozenset({"exec", "noexec", "suid", "nosuid", "dev", "nodev", "ro", "rw",
                          "atime", "noatime", "relatime", "strictatime", "nodiratime"})
_SIZE = re.compile(r"^[0-9]+[kmgKMG%]?$")
_MODE = re.compile(r"^[0-7]{1,4}$")


@attrs.frozen
class ContainerMount:
    """One checked mount: a host path bound (``bind``) or a ``tmpfs``."""

    type: str
    destination: str
    source: str = ""
    read_only: bool = False
    propagation: str = "rprivate"
    options: tuple[str, ...] = ()  # tmpfs options
    create_source: bool = False  # Binds create a missing host directory, Mounts do not
    listed: bool = True  # shown in inspect's Mounts (not for HostConfig.Tmpfs)


def _invalid(spec: str, why: str) -> InvalidParameter:
    return InvalidParameter(f"invalid volume specification: '{spec}': {why}")


def _destination(path: str, spec: str, kind: str) -> str:
    if not path.startswith("/"):
        raise _invalid(spec, f'invalid mount config for type "{kind}": invalid mount '
                             f"path: '{path}' mount path must be absolute")
    clean = posixpath.normpath(path)
    if clean == "/":
        raise InvalidParameter("invalid specification: destination can't be '/'")
    return clean


def _parse_bind(spec: str) -> ContainerMount:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    source, target = parts[0], parts[1]
    if not source.startswith("/"):
        raise InvalidParameter(f"named volumes are not supported by dockertw yet: "
                               f"'{spec}'")
    read_only, propagation = False, "rprivate"
    for option in (parts[2].split(",") if len(parts) == 3 else []):
        if option in ("ro", "rw"):
            read_only = option == "ro"
        elif option in _PROPAGATIONS:
            propagation = option
        elif option not in ("z", "Z", "consistent", "cached", "delegated"):
            raise _invalid(spec, f"invalid mode: {parts[2]}")
    return ContainerMount("bind", _destination(target, spec, "bind"),
                          posixpath.normpath(source), read_only, propagation,
                          create_source=True)


def _parse_mount(value: Any, check_sources: bool = True) -> ContainerMount:
    if not isinstance(value, dict):
        raise InvalidParameter("invalid JSON: Mounts must hold objects")
    kind, target = value.get("Type") or "", str(value.get("Target") or "")
    spec = f"{kind}:{target}"
    if kind == "bind":
        source = str(value.get("Source") or "")
        if not source.startswith("/"):
            raise InvalidParameter('invalid mount config for type "bind": invalid mount '
                                   f"path: '{source}' mount path must be absolute")
        if check_sources and not os.path.exists(source):
            raise InvalidParameter('invalid mount config for type "bind": bind source '
                                   f"path does not exist: {source}")
        options = value.get("BindOptions") or {}
        return ContainerMount("bind", _destination(target, spec, kind),
                              posixpath.normpath(source), bool(value.get("ReadOnly")),
                              str(options.get("Propagation") or "rprivate"))
    if kind == "tmpfs":
        return ContainerMount("tmpfs", _destination(target, spec, kind),
                              read_only=bool(value.get("ReadOnly")),
                              options=_tmpfs_options(value.get("TmpfsOptions") or {}))
    if kind == "volume":
        raise InvalidParameter("named volumes are not supported by dockertw yet")
    raise InvalidParameter(f"mount type unknown: {kind!r}" if kind else
                           "invalid mount config: type is required")


def _tmpfs_options(options: Mapping[str, Any]) -> tuple[str, ...]:
    found = []
    if options.get("SizeBytes"):
        found.append(f"size={int(options['SizeBytes'])}")
    if options.get("Mode"):
        found.append(f"mode={int(options['Mode']):o}")
    return tuple(found)


def _parse_tmpfs(destination: str, raw: str) -> ContainerMount:
    options = [option for option in str(raw or "").split(",") if option]
    for option in options:
        key, _, value = option.partition("=")
        valid = (key == "size" and _SIZE.match(value)) or (
            key == "mode" and _MODE.match(value)) or (not value and key in _TMPFS_FLAGS)
        if not valid:
            raise InvalidParameter(f"invalid tmpfs option {option!r} for {destination}")
    return ContainerMount("tmpfs", _destination(destination, destination, "tmpfs"),
                          read_only="ro" in options, options=tuple(options), listed=False)


def container_mounts(host: Mapping[str, Any], check_sources: bool = True
                     ) -> list[ContainerMount]:
    """Every mount of a HostConfig, checked (``check_sources``: that the sources of
    ``Mounts`` binds exist); 400 with Docker's messages."""
    binds, mounts, tmpfs = (host.get("Binds") or [], host.get("Mounts") or [],
                            host.get("Tmpfs") or {})
    if not isinstance(binds, list) or not isinstance(mounts, list) \
            or not isinstance(tmpfs, dict):
        raise InvalidParameter("invalid JSON: Binds and Mounts are lists, Tmpfs an object")
    found = ([_parse_bind(str(spec)) for spec in binds]
             + [_parse_mount(value, check_sources) for value in mounts]
             + [_parse_tmpfs(str(path), raw) for path, raw in tmpfs.items()])
    seen: set[str] = set()
    for mount in found:
        if mount.destination in seen:
            raise InvalidParameter(f"Duplicate mount point: {mount.destination}")
        seen.add(mount.destination)
    return sorted(found, key=lambda m: m.destination.count("/"))  # parents first


def oci_mounts(mounts: list[ContainerMount]) -> tuple[Mount, ...]:
    """The OCI mounts of checked mounts; creates missing ``Binds`` sources (blocking)."""
    result = []
    for mount in mounts:
        if mount.type == "bind":
            if mount.create_source and not os.path.exists(mount.source):
                Path(mount.source).mkdir(mode=0o755, parents=True, exist_ok=True)
            options = ("rbind", mount.propagation, *(("ro",) if mount.read_only else ()))
            result.append(Mount(mount.destination, mount.source, "bind", options))
        else:
            options = ("nosuid", "nodev", "noexec", *mount.options)
            result.append(Mount(mount.destination, "tmpfs", "tmpfs", options))
    return tuple(result)


def inspect_mounts(host: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ContainerJSON's ``Mounts`` (Docker's MountPoint shape)."""
    try:
        mounts = container_mounts(host, check_sources=False)
    except InvalidParameter:
        return []
    return [{"Type": m.type, "Source": m.source, "Destination": m.destination,
             "Mode": "ro" if m.read_only and m.type == "bind" else "", "RW": not m.read_only,
             "Propagation": m.propagation if m.type == "bind" else ""}
            for m in mounts if m.listed]

"""A container's mounts: ``Binds``, ``Mounts``, ``Tmpfs``, ``VolumesFrom`` and the
image's ``Volumes``, parsed and validated with moby's messages (``linux_parser.go``).

Pure apart from :func:`check_bind_source` (one ``stat``): specs in, :class:`MountPoint`
values out.  Named and anonymous volumes are resolved by the volume service; the
runtime mounts are built by :func:`runtime_mounts` once every source is known.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from dockertw.daemon.mountpoint import MountPoint
from dockertw.errdefs import InvalidParameter
from dockertw.runtime.spec import Mount

__all__ = ["resolve_subpath", "parse_bind", "parse_mount", "parse_tmpfs", "parse_volumes_from",
           "collect", "runtime_mounts", "PROPAGATIONS"]

PROPAGATIONS = frozenset({"private", "rprivate", "slave", "rslave", "shared", "rshared"})
_RW_MODES = frozenset({"rw", "ro"})
_LABEL_MODES = frozenset({"z", "Z"})
_CONSISTENCY = frozenset({"consistent", "cached", "delegated"})
_TMPFS_DEFAULTS = ("noexec", "nosuid", "nodev")
_TYPES = ("bind", "volume", "tmpfs")


def _spec_error(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _config_error(kind: str, message: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {message}')


def valid_mode(mode: str) -> bool:
    """moby ``linuxValidMountMode``: at most one option of each kind."""
    if not mode:
        return True
    counts: dict[str, int] = {}
    for option in mode.split(","):
        kind = ("rw" if option in _RW_MODES else "label" if option in _LABEL_MODES
                else "propagation" if option in PROPAGATIONS
                else "copy" if option == "nocopy"
                else "consistency" if option in _CONSISTENCY else "")
        if not kind:
            return False
        counts[kind] = counts.get(kind, 0) + 1
    return all(count <= 1 for count in counts.values())


def _check_target(kind: str, target: str) -> str:
    """The clean absolute destination (moby's order: empty, root, relative)."""
    if not target:
        raise _config_error(kind, "field Target must not be empty")
    if posixpath.normpath(target.replace("\\", "/")) in ("/", "//"):
        raise _config_error(kind, "invalid specification: destination can't be '/'")
    if not target.startswith("/"):
        raise _config_error(kind, f"invalid mount path: '{target}' mount path must be "
                                  "absolute")
    return posixpath.normpath(target)


def _propagation_of(mode: str) -> str:
    chosen = [option for option in mode.split(",") if option in PROPAGATIONS]
    return chosen[0] if chosen else ""


def parse_bind(raw: str, volume_driver: str = "local") -> MountPoint:
    """One ``Binds`` entry: ``/host:/ctr[:opts]``, ``name:/ctr[:opts]`` or ``/ctr``."""
    parts = raw.split(":", 3)
    if not parts[0] or len(parts) > 3 or (len(parts) == 2 and valid_mode(parts[1])):
        raise InvalidParameter(_spec_error(raw))
    source, target = ("", parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    mode = parts[2] if len(parts) == 3 else ""
    if not valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    kind = "bind" if source.startswith("/") else "volume"
    rw = "ro" not in mode.split(",")
    try:
        destination = _check_target(kind, target)
    except InvalidParameter as error:
        raise InvalidParameter(f"{_spec_error(raw)}: {error}") from None
    if kind == "bind":
        return MountPoint("bind", destination, source=posixpath.normpath(source), rw=rw,
                          mode=mode, propagation=_propagation_of(mode) or "rprivate",
                          create_source=True)
    return MountPoint("volume", destination, name=source, driver=volume_driver, rw=rw,
                      mode=mode or "z", copy_data="nocopy" not in mode.split(","),
                      anonymous=not source, propagation=_propagation_of(mode))


def _options(spec: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, dict):
        raise InvalidParameter(f"invalid JSON: {key} must be an object")
    return value


def parse_mount(spec: Any) -> MountPoint:
    """One ``HostConfig.Mounts`` item (``--mount``); a bind source must exist."""
    if not isinstance(spec, dict):
        raise InvalidParameter("invalid JSON: Mounts must be an array of objects")
    kind = str(spec.get("Type") or "")
    if kind not in _TYPES:
        if kind in ("npipe", "cluster", "image"):
            raise _config_error(kind, "mount type not supported by dockertw")
        raise _config_error(kind, "mount type unknown")
    destination = _check_target(kind, str(spec.get("Target") or ""))
    source = str(spec.get("Source") or "")
    bind, volume = _options(spec, "BindOptions"), _options(spec, "VolumeOptions")
    tmpfs = _options(spec, "TmpfsOptions")
    rw = not spec.get("ReadOnly")
    if kind != "bind" and bind is not None:
        raise _config_error(kind, "field BindOptions must not be specified")
    if kind == "bind":
        return _bind_mount(source, destination, rw, bind, volume)
    if kind == "volume":
        return _volume_mount(source, destination, rw, volume, tmpfs)
    if source:
        raise _config_error(kind, "field Source must not be specified")
    if volume is not None:
        raise _config_error(kind, "field VolumeOptions must not be specified")
    return MountPoint("tmpfs", destination, rw=rw, data=_tmpfs_data(tmpfs or {}, rw))


def _bind_mount(source: str, destination: str, rw: bool, bind: Mapping[str, Any] | None,
                volume: Mapping[str, Any] | None) -> MountPoint:
    if not source:
        raise _config_error("bind", "field Source must not be empty")
    propagation = str((bind or {}).get("Propagation") or "")
    if propagation and propagation not in PROPAGATIONS:
        raise _config_error("bind", f"invalid propagation mode: {propagation}")
    if volume is not None:
        raise _config_error("bind", "field VolumeOptions must not be specified")
    if not source.startswith("/"):
        raise _config_error("bind", f"invalid mount path: '{source}' mount path must be "
                                    "absolute")
    if not os.path.exists(source) and not (bind or {}).get("CreateMountpoint"):
        raise _config_error("bind", f"bind source path does not exist: {source}")
    return MountPoint("bind", destination, source=posixpath.normpath(source), rw=rw,
                      propagation=propagation or "rprivate",
                      create_source=bool((bind or {}).get("CreateMountpoint")))


def _volume_mount(source: str, destination: str, rw: bool,
                  volume: Mapping[str, Any] | None,
                  tmpfs: Mapping[str, Any] | None) -> MountPoint:
    if tmpfs is not None:
        raise _config_error("volume", "field TmpfsOptions must not be specified")
    if not rw and not source:
        raise _config_error("volume", "must not set ReadOnly mode when using anonymous "
                                      "volumes")
    options = volume or {}
    driver = str(_options(options, "DriverConfig") and options["DriverConfig"].get("Name")
                 or "local")
    subpath = _subpath(options.get("Subpath"), source)
    config = options.get("DriverConfig") or {}
    return MountPoint("volume", destination, name=source, driver=driver, rw=rw,
                      subpath=subpath,
                      copy_data=not options.get("NoCopy"), anonymous=not source,
                      labels=_strings_map(options.get("Labels"), "VolumeOptions.Labels"),
                      options=_strings_map(config.get("Options"),
                                           "VolumeOptions.DriverConfig.Options"))


def _subpath(value: Any, source: str) -> str:
    """``VolumeOptions.Subpath``: a relative path that stays inside the volume."""
    if not value:
        return ""
    if not source:
        raise _config_error("volume", "must not set Subpath when using anonymous volumes")
    cleaned = posixpath.normpath(str(value))
    if posixpath.isabs(cleaned) or cleaned == ".." or cleaned.startswith("../"):
        raise _config_error("volume", "subpath must be a relative path within the volume")
    return cleaned


def resolve_subpath(point: MountPoint) -> str:
    """The host path of a volume's ``Subpath``, links followed: it must stay inside
    the volume (moby's ``safepath`` message otherwise); it may not exist."""
    base = os.path.realpath(point.source)
    real = os.path.realpath(os.path.join(base, point.subpath))
    if os.path.commonpath([base, real]) != base:
        raise InvalidParameter("path concatenation escapes the base directory, base: "
                               f"{base}, subpath: {point.subpath}")
    return real


def _strings_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidParameter(f"invalid JSON: {what} must map strings to strings")
    return dict(value)


def _size_text(size: int) -> str:
    for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % divisor == 0:
            return f"{size // divisor}{suffix}"
    return str(size)


def _tmpfs_data(options: Mapping[str, Any], rw: bool) -> str:
    """moby ``ConvertTmpfsOptions``: ``ro``, ``mode=``, ``size=``, exec/noexec."""
    raw = [] if rw else ["ro"]
    mode, size = options.get("Mode") or 0, options.get("SizeBytes") or 0
    if not isinstance(mode, int) or not isinstance(size, int) or size < 0:
        raise _config_error("tmpfs", "invalid TmpfsOptions")
    if mode:
        raw.append(f"mode={mode:o}")
    if size:
        raw.append(f"size={_size_text(size)}")
    for option in options.get("Options") or ():
        if not isinstance(option, list) or not 1 <= len(option) <= 2:
            raise _config_error("tmpfs", "invalid option array length")
        if option[0] not in ("exec", "noexec"):
            raise _config_error("tmpfs", f"invalid option: {option[0]}")
        raw.append("=".join(str(part) for part in option))
    return ",".join(raw)


def parse_tmpfs(destination: str, options: Any) -> MountPoint:
    """One ``HostConfig.Tmpfs`` entry (``--tmpfs /run:size=64k``)."""
    if not isinstance(options, str):
        raise InvalidParameter("invalid JSON: Tmpfs must map paths to strings")
    if posixpath.normpath(destination or ".") == "/":
        raise InvalidParameter("invalid specification: destination can't be '/'")
    if not destination.startswith("/"):
        raise InvalidParameter(f"invalid mount path: '{destination}' mount path must be "
                               "absolute")
    for option in filter(None, options.split(",")):
        if "=" not in option and option not in _TMPFS_FLAGS:
            raise InvalidParameter(f"invalid tmpfs option [\"{option}\"]")
    return MountPoint("tmpfs", posixpath.normpath(destination),
                      rw="ro" not in options.split(","), data=options, shown=False)


_TMPFS_FLAGS = frozenset({"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev",
                          "atime", "noatime", "diratime", "nodiratime", "relatime",
                          "norelatime", "strictatime", "nostrictatime", "sync", "async",
                          "dirsync", "mand", "nomand", "remount"})


def parse_volumes_from(spec: str) -> tuple[str, str]:
    """``container[:ro|rw]``: the container and the mode (``rw`` by default)."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    name, _, mode = spec.partition(":")
    if not mode:
        return name, "rw"
    if not valid_mode(mode) or _propagation_of(mode) or "nocopy" in mode.split(","):
        raise InvalidParameter(f"invalid mode: {mode}")
    return name, mode


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParameter(f"invalid JSON: {what} must be an array")
    return value


def collect(host: Mapping[str, Any], image_volumes: Iterable[str] = (),
            inherited: Iterable[MountPoint] = ()) -> list[MountPoint]:
    """Every mount of a new container, in moby's order of precedence: volumes-from
    (``inherited``), ``Binds``, ``Mounts``, ``Tmpfs``, then the image's volumes on the
    destinations still free.  A destination given twice is refused.  The volumes of
    ``Binds`` and of the image come from ``VolumeDriver`` (``local`` when empty)."""
    chosen: dict[str, MountPoint] = {point.destination: point for point in inherited}
    given: set[str] = set()

    def add(point: MountPoint) -> None:
        if point.destination in given:
            raise InvalidParameter(f"Duplicate mount point: {point.destination}")
        given.add(point.destination)
        chosen[point.destination] = point

    driver = str(host.get("VolumeDriver") or "local")  # of Binds' and the image's volumes
    for raw in _list(host.get("Binds"), "Binds"):
        add(parse_bind(str(raw), driver))
    for spec in _list(host.get("Mounts"), "Mounts"):
        add(parse_mount(spec))
    tmpfs = host.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise InvalidParameter("invalid JSON: Tmpfs must be an object")
    for destination, options in tmpfs.items():
        add(parse_tmpfs(destination, options))
    for destination in image_volumes:
        target = _check_target("volume", destination)
        if target not in chosen:
            chosen[target] = MountPoint("volume", target, driver=driver, anonymous=True)
    return sort_points(chosen.values())


def sort_points(points: Iterable[MountPoint]) -> list[MountPoint]:
    """Parents before children: by the number of path components, then by path."""
    return sorted(points, key=lambda p: (len(p.destination.strip("/").split("/")),
                                         p.destination))


def _tmpfs_options(data: str) -> tuple[str, ...]:
    """Docker's defaults (noexec, nosuid, nodev) under the user's options."""
    given = [option for option in data.split(",") if option]
    overridden = {"noexec": "exec", "nosuid": "suid", "nodev": "dev"}
    defaults = [d for d in _TMPFS_DEFAULTS if overridden[d] not in given]
    return (*defaults, *given)


def runtime_mounts(points: Iterable[MountPoint]) -> tuple[Mount, ...]:
    """The OCI mounts of resolved mount points (every source known)."""
    result = []
    for point in sort_points(points):
        if point.type == "tmpfs":
            result.append(Mount(point.destination, "tmpfs", "tmpfs",
                                _tmpfs_options(point.data)))
            continue
        options = ["rbind", point.propagation or "rprivate", "rw" if point.rw else "ro"]
        result.append(Mount(point.destination, point.source, "bind", tuple(options)))
    return tuple(result)

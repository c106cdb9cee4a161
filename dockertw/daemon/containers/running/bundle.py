"""A container's OCI bundle: its overlay root filesystem and ``config.json``.

Everything here blocks (mounts, file writes, reading the image's ``/etc/passwd``):
call it from a worker thread.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import attrs

from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.records.tuning import tuning_of
from dockertw.daemon.storage import atomic_write
from dockertw.errdefs import InvalidParameter
from dockertw.runtime import mounts
from dockertw.runtime.devices import (
    Device,
    DeviceRule,
    cgroup_rule,
    devices_from_path,
    host_devices,
)
from dockertw.runtime.spec import (
    ContainerRuntimeConfig,
    Mount,
    Namespaces,
    ProcessUser,
    build_spec,
)

__all__ = ["rootfs_of", "bundle_of", "shm_of", "subpaths_of", "prepare_bundle",
           "release_rootfs", "release_unowned", "resolve_user", "read_root_file",
           "account_entries", "runtime_config", "cgroup_path", "NetworkSetup"]

_MAX_ACCOUNT_FILE = 1 << 20
_OWN_NAMESPACES = Namespaces()  # every namespace the container's own


def bundle_of(container_dir: Path) -> Path:
    return container_dir


def rootfs_of(container_dir: Path) -> Path:
    return container_dir / "rootfs"


def subpaths_of(container_dir: Path) -> Path:
    """Where the ``Subpath`` of a container's volumes are pinned while it runs."""
    return container_dir / "subpaths"


def shm_of(container_dir: Path) -> Path:
    """The ``/dev/shm`` tmpfs of a ``shareable`` IPC container, mounted on the host so
    that the containers joining its IPC namespace bind it too (as moby)."""
    return container_dir / "shm"


def _mount_shm(container: Container, container_dir: Path) -> None:
    if container.host_config.get("IpcMode") != "shareable":
        return
    target = shm_of(container_dir)
    target.mkdir(mode=0o700, exist_ok=True)
    if not mounts.is_mounted(target):
        size = int(container.host_config.get("ShmSize") or 64 << 20)
        mounts.mount_filesystem("shm", target, "tmpfs",
                                f"nosuid,nodev,noexec,mode=1777,size={size}")


def read_root_file(rootfs: Path, relative: str) -> bytes | None:
    """A regular file inside ``rootfs``, never following a symbolic link (``None``
    when missing, a link, or not a regular file)."""
    parts = [p for p in relative.split("/") if p]
    opened = [os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for part in parts[:-1]:
            if part == "..":
                return None
            opened.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                  dir_fd=opened[-1]))
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                     dir_fd=opened[-1])
        opened.append(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, _MAX_ACCOUNT_FILE)
    except OSError:
        return None
    finally:
        for fd in reversed(opened):
            os.close(fd)


def account_entries(data: bytes | None) -> list[list[str]]:
    """The fields of each line of an ``/etc/passwd`` or ``/etc/group`` file."""
    if not data:
        return []
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("#")]


def resolve_user(rootfs: Path, user: str, groups: Sequence[str] = ()) -> ProcessUser:
    """``User`` (``name``, ``uid``, ``name:group``, ``uid:gid``) and the ``GroupAdd``
    groups against the image's ``/etc/passwd`` and ``/etc/group``."""
    if not user:
        user = "0"
    name, _, group = user.partition(":")
    passwd = account_entries(read_root_file(rootfs, "/etc/passwd"))
    uid, gid, home = -1, 0, "/"
    for entry in passwd:
        if len(entry) >= 6 and (entry[0] == name or (name.isdigit() and entry[2] == name)):
            uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
            break
    if uid < 0:
        if not name.isdigit():
            raise InvalidParameter(f"unable to find user {name}: no matching entries "
                                   "in passwd file")
        uid = int(name)
        home = "/root" if uid == 0 else "/"
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            for entry in account_entries(read_root_file(rootfs, "/etc/group")):
                if len(entry) >= 3 and entry[0] == group:
                    gid = int(entry[2])
                    break
            else:
                raise InvalidParameter(f"unable to find group {group}: no matching "
                                       "entries in group file")
    return ProcessUser(uid=uid, gid=gid, home=home,
                       additional_gids=_group_ids(rootfs, groups))


def _group_ids(rootfs: Path, groups: Sequence[str]) -> tuple[int, ...]:
    """``--group-add`` names or numbers as group IDs."""
    if not groups:
        return ()
    known = {entry[0]: int(entry[2]) for entry in
             account_entries(read_root_file(rootfs, "/etc/group")) if len(entry) >= 3}
    found = []
    for group in groups:
        if str(group).isdigit():
            found.append(int(group))
        elif group in known:
            found.append(known[group])
        else:
            raise InvalidParameter(f"Unable to find group {group}: no matching entries "
                                   "in group file")
    return tuple(found)


def _network(mode: str) -> str:
    return "host" if mode == "host" else ("none" if mode == "none" else "private")


def _console_size(value: Any) -> tuple[int, int]:
    """``HostConfig.ConsoleSize`` (``[height, width]``); ``(0, 0)`` when unset."""
    try:
        height, width = (int(number) for number in value)
    except (TypeError, ValueError):
        return (0, 0)
    return (max(height, 0), max(width, 0))


def cgroup_path(container: Container, cgroup_parent: str = "dockertw") -> str:
    """The container's cgroup: ``/<HostConfig.CgroupParent or cgroup_parent>/<id>``."""
    parent = str(container.host_config.get("CgroupParent") or cgroup_parent).strip("/")
    return f"/{parent}/{container.id}" if parent else f"/{container.id}"


def _devices(host: dict[str, Any]) -> tuple[list[Device], list[DeviceRule]]:
    """``--device`` nodes with their cgroup rules and ``--device-cgroup-rule``s, as
    moby's ``WithDevices`` (a privileged container: every host device)."""
    privileged = bool(host.get("Privileged"))
    devices: list[Device] = host_devices() if privileged else []
    rules: list[DeviceRule] = []
    for mapping in host.get("Devices") or ():
        on_host = str(mapping.get("PathOnHost") or "")
        in_container = str(mapping.get("PathInContainer") or on_host)
        if privileged and on_host == in_container:
            continue  # already there
        found, allowed = devices_from_path(
            on_host, in_container,
            "rwm" if privileged else str(mapping.get("CgroupPermissions") or "rwm"))
        devices += found
        rules += allowed
    if not privileged:
        rules += [cgroup_rule(rule) for rule in host.get("DeviceCgroupRules") or ()]
    return devices, rules


@attrs.frozen
class NetworkSetup:
    """What a start's networking puts in ``config.json``: the namespace to join (empty:
    runc makes one, or none with ``host``), extra environment (links) and the
    ``/etc/hosts``, ``/etc/hostname``, ``/etc/resolv.conf`` bind mounts."""

    netns_path: str = ""
    env: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    hostname: str = ""


def _with_network_mounts(mounts: tuple[Mount, ...], network: NetworkSetup
                         ) -> tuple[Mount, ...]:
    """The container's mounts, then the network files it does not mount itself."""
    taken = {mount.destination for mount in mounts}
    return mounts + tuple(m for m in network.mounts if m.destination not in taken)


def runtime_config(container: Container, rootfs: Path, cgroup_parent: str = "dockertw",
                   mounts: tuple[Mount, ...] = (),
                   namespaces: Namespaces = _OWN_NAMESPACES,
                   network: NetworkSetup = NetworkSetup()) -> ContainerRuntimeConfig:
    """The runtime settings of ``container`` (its root filesystem must be mounted);
    its cgroup is ``<HostConfig.CgroupParent or cgroup_parent>/<id>``."""
    config: dict[str, Any] = container.config
    host: dict[str, Any] = container.host_config
    devices, device_rules = _devices(host)
    return ContainerRuntimeConfig(
        args=(container.path, *container.args),
        rootfs=str(rootfs),
        hostname=network.hostname or str(config.get("Hostname") or container.id[:12]),
        env=(*(config.get("Env") or ()), *network.env),
        cwd=str(config.get("WorkingDir") or "/"),
        user=resolve_user(rootfs, str(config.get("User") or ""),
                          host.get("GroupAdd") or ()),
        terminal=bool(config.get("Tty")),
        console_size=_console_size(host.get("ConsoleSize")),
        readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        network=_network(str(host.get("NetworkMode") or "default")),
        netns_path=network.netns_path,
        cap_add=tuple(host.get("CapAdd") or ()),
        cap_drop=tuple(host.get("CapDrop") or ()),
        privileged=bool(host.get("Privileged")),
        memory=int(host.get("Memory") or 0),
        nano_cpus=int(host.get("NanoCpus") or 0),
        cpu_shares=int(host.get("CpuShares") or 0),
        pids_limit=int(host.get("PidsLimit") or 0),
        cgroups_path=cgroup_path(container, cgroup_parent),
        tuning=tuning_of(host),
        mounts=_with_network_mounts(mounts, network),
        namespaces=namespaces,
        devices=tuple(devices),
        device_rules=tuple(device_rules),
    )


def prepare_bundle(container: Container, container_dir: Path,
                   layers: Sequence[Path], cgroup_parent: str = "dockertw",
                   setup_mounts: Callable[[Path], tuple[Mount, ...]] | None = None,
                   namespaces: Namespaces = _OWN_NAMESPACES,
                   network: NetworkSetup = NetworkSetup()) -> Path:
    """Mount the root filesystem (``layers`` bottom first) and write ``config.json``;
    ``setup_mounts`` readies the container's mounts once the root is there."""
    rootfs = rootfs_of(container_dir)
    lowers = list(reversed(layers))
    if not lowers:
        empty = container_dir / "empty-lower"
        empty.mkdir(exist_ok=True)
        lowers = [empty]
    if not mounts.is_mounted(rootfs):
        mounts.mount_overlay(lowers, container_dir / "upper", container_dir / "work", rootfs)
    try:
        _mount_shm(container, container_dir)
        extra = setup_mounts(rootfs) if setup_mounts is not None else ()
        spec = build_spec(runtime_config(container, rootfs, cgroup_parent, extra,
                                         namespaces, network))
        bundle = bundle_of(container_dir)
        atomic_write(bundle / "config.json", json.dumps(spec).encode(), durable=False)
    except BaseException:
        release_rootfs(container_dir)
        raise
    return bundle


def release_rootfs(container_dir: Path) -> None:
    """Unmount the root filesystem (and a shareable ``/dev/shm``, volumes' pinned
    subpaths) if mounted."""
    for target in (rootfs_of(container_dir), shm_of(container_dir)):
        if mounts.is_mounted(target):
            mounts.unmount(target)
    for target in mounts.mounts_under(subpaths_of(container_dir)):
        mounts.unmount(target)


def release_unowned(containers_root: Path, running: Collection[str]) -> None:
    """Unmount what is mounted for a container that does not run (blocking, at start:
    a start or a stop the daemon was killed in the middle of)."""
    for target in mounts.mounts_under(containers_root):
        if target.relative_to(containers_root).parts[0] not in running:
            mounts.unmount(target)

"""OCI runtime ``config.json`` from a container's settings, with Docker's defaults.

Pure: values in, a JSON-able dict out.  What Docker adds on its own is here too: the
default capabilities, masked and read-only paths, ``/dev`` and ``/sys`` mounts, the
``PATH``/``HOSTNAME``/``HOME`` environment, CPU quota from ``NanoCpus``, the seccomp
filter of the container's profile for its capabilities.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from dockertw.errdefs import InvalidParameter
from dockertw.runtime.devices import DEFAULT_DEVICE_RULES, Device, DeviceRule
from dockertw.runtime.seccomp import Profile, oci_seccomp

__all__ = [
    "Mount", "ProcessUser", "Namespaces", "Tuning", "ContainerRuntimeConfig",
    "DEFAULT_CAPABILITIES",
    "ALL_CAPABILITIES", "normalize_capabilities", "build_spec", "process_env", "DEFAULT_PATH",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware",
)
_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_CPU_PERIOD = 100_000
INIT_DESTINATION = "/sbin/docker-init"


@attrs.frozen
class Mount:
    destination: str
    source: str
    type: str = "bind"
    options: tuple[str, ...] = ("rbind", "rprivate")

    def to_json(self) -> dict[str, Any]:
        return {"destination": self.destination, "type": self.type, "source": self.source,
                "options": list(self.options)}


@attrs.frozen
class ProcessUser:
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    home: str = "/root"


@attrs.frozen
class Namespaces:
    """Where the pid, ipc and uts namespaces come from: ``""`` the container's own,
    ``"host"`` the host's, or a ``/proc/<pid>/ns/<kind>`` path to join."""

    pid: str = ""
    ipc: str = ""
    uts: str = ""
    cgroup_private: bool = False  # a cgroup namespace of its own
    shm: str = ""  # /dev/shm: "" a tmpfs of its own, "none" none, else a path to bind


@attrs.frozen
class Tuning:
    """HostConfig settings the runtime applies as they are (zero or empty: unset)."""

    oom_score_adj: int = 0
    sysctls: tuple[tuple[str, str], ...] = ()
    rlimits: tuple[tuple[str, int, int], ...] = ()  # (name such as "nofile", soft, hard)
    no_new_privileges: bool = False
    shm_size: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    memory_swap: int = 0
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    blkio_weight: int = 0
    init_path: str = ""  # a static init (tini) run as PID 1, as ``docker run --init``
    seccomp: Profile | None = None  # None: no seccomp filter
    writable_cgroups: bool = False  # /sys/fs/cgroup mounted read-write


@attrs.frozen
class ContainerRuntimeConfig:
    """What the runtime needs to know about one container, already resolved."""

    args: tuple[str, ...]
    rootfs: str
    hostname: str
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: ProcessUser = ProcessUser()
    terminal: bool = False
    console_size: tuple[int, int] = (0, 0)  # (height, width); zero: runc's default
    readonly_rootfs: bool = False
    network: str = "private"  # "private" (own namespace), "none" (the same), "host"
    netns_path: str = ""  # a namespace made by the daemon (pinned) or another process's
    mounts: tuple[Mount, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    memory: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    pids_limit: int = 0
    cgroups_path: str = ""
    tuning: Tuning = Tuning()
    namespaces: Namespaces = Namespaces()
    devices: tuple[Device, ...] = ()  # nodes made in the container
    device_rules: tuple[DeviceRule, ...] = ()  # device-cgroup rules after Docker's


def _capability_name(name: str) -> str:
    upper = name.strip().upper()
    return upper if upper.startswith("CAP_") or upper == "ALL" else f"CAP_{upper}"


def normalize_capabilities(names: Iterable[str], option: str) -> tuple[str, ...]:
    """``net_admin``, ``NET_ADMIN`` and ``CAP_NET_ADMIN`` are one name; ``ALL`` stays."""
    normalized = []
    for name in names:
        capability = _capability_name(name)
        if capability != "ALL" and capability not in ALL_CAPABILITIES:
            raise InvalidParameter(f'invalid {option}: unknown capability: "{capability}"')
        normalized.append(capability)
    return tuple(normalized)


def held_capabilities(status: str) -> tuple[str, ...]:
    """The capabilities in the ``CapBnd`` of a ``/proc/<pid>/status`` text: all that
    a process started by the daemon can get (``ALL_CAPABILITIES`` is in kernel order)."""
    for line in status.splitlines():
        if line.startswith("CapBnd:"):
            mask = int(line.split()[1], 16)
            return tuple(c for bit, c in enumerate(ALL_CAPABILITIES) if mask >> bit & 1)
    return ALL_CAPABILITIES


@functools.cache
def daemon_capabilities() -> tuple[str, ...]:
    """What "all capabilities" can mean here: the daemon's own bounding set (a
    sandboxed host may lack some, and runc fails when asked for them)."""
    with open("/proc/self/status") as status:
        return held_capabilities(status.read())


def _capabilities(config: ContainerRuntimeConfig) -> list[str]:
    if config.privileged:
        return list(daemon_capabilities())
    added = normalize_capabilities(config.cap_add, "CapAdd")
    dropped = normalize_capabilities(config.cap_drop, "CapDrop")
    base = daemon_capabilities() if "ALL" in added else DEFAULT_CAPABILITIES
    chosen = [] if "ALL" in dropped else [c for c in base if c not in dropped]
    chosen += [c for c in added if c != "ALL" and c not in chosen]
    return chosen


def process_env(config: ContainerRuntimeConfig) -> list[str]:
    """The image/container environment plus what Docker adds when it is missing."""
    env = list(config.env)
    names = {entry.split("=", 1)[0] for entry in env}
    if "PATH" not in names:
        env.insert(0, f"PATH={DEFAULT_PATH}")
    env.append(f"HOSTNAME={config.hostname}")
    if "HOME" not in names:
        env.append(f"HOME={config.user.home}")
    if config.terminal and "TERM" not in names:
        env.append("TERM=xterm")
    return env


def _process(config: ContainerRuntimeConfig) -> dict[str, Any]:
    capabilities = _capabilities(config)
    user: dict[str, Any] = {"uid": config.user.uid, "gid": config.user.gid}
    if config.user.additional_gids:
        user["additionalGids"] = list(config.user.additional_gids)
    process: dict[str, Any] = {
        "terminal": config.terminal,
        "user": user,
        "args": list(config.args),
        "env": process_env(config),
        "cwd": config.cwd or "/",
        "capabilities": {"bounding": capabilities, "effective": capabilities,
                         "permitted": capabilities},
        "rlimits": [{"type": f"RLIMIT_{name.upper()}", "soft": soft, "hard": hard}
                    for name, soft, hard in config.tuning.rlimits],
        "noNewPrivileges": config.tuning.no_new_privileges,
    }
    if config.tuning.oom_score_adj:
        process["oomScoreAdj"] = config.tuning.oom_score_adj
    if config.tuning.init_path:
        process["args"] = [INIT_DESTINATION, "--", *config.args]
    height, width = config.console_size
    if config.terminal and height > 0 and width > 0:
        process["consoleSize"] = {"height": height, "width": width}
    return process


def _system_mounts(privileged: bool, tuning: Tuning) -> list[dict[str, Any]]:
    sys_options = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    cgroup_options = ["nosuid", "noexec", "nodev", "relatime"] + (
        [] if tuning.writable_cgroups else ["ro"])
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                     "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": cgroup_options},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
    ]


def _shm_mount(shm: str, size: int) -> list[dict[str, Any]]:
    """``/dev/shm``: a tmpfs of the container's own, another's (or the host's) bound,
    or none (``--ipc none``)."""
    if shm == "none":
        return []
    if shm:
        return [Mount("/dev/shm", shm, options=("rbind", "rprivate")).to_json()]
    return [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777",
                         f"size={size or 64 << 20}"]}]


def _mounts(config: ContainerRuntimeConfig) -> list[dict[str, Any]]:
    taken = {mount.destination for mount in config.mounts}
    system = [m for m in _system_mounts(config.privileged, config.tuning)
              + _shm_mount(config.namespaces.shm, config.tuning.shm_size)
              if m["destination"] not in taken]
    init = [Mount(INIT_DESTINATION, config.tuning.init_path, options=("bind", "ro"))
            .to_json()] if config.tuning.init_path else []
    return system + init + [mount.to_json() for mount in config.mounts]


def _resources(config: ContainerRuntimeConfig) -> dict[str, Any]:
    rules = (DeviceRule(True),) if config.privileged else \
        DEFAULT_DEVICE_RULES + config.device_rules
    devices = [rule.to_json() for rule in rules]
    resources = {"devices": devices, **limits(config.memory, config.nano_cpus,
                                              config.cpu_shares, config.pids_limit)}
    _tune_resources(resources, config.tuning)
    return resources


def _tune_resources(resources: dict[str, Any], tuning: Tuning) -> None:
    memory = resources.setdefault("memory", {})
    for key, value in (("swap", tuning.memory_swap),
                       ("reservation", tuning.memory_reservation),
                       ("swappiness", tuning.memory_swappiness)):
        if value:
            memory[key] = value
    if tuning.oom_kill_disable:
        memory["disableOOMKiller"] = True
    cpu = resources.setdefault("cpu", {})
    cpu_settings: tuple[tuple[str, Any], ...] = (
        ("quota", tuning.cpu_quota), ("period", tuning.cpu_period),
        ("cpus", tuning.cpuset_cpus), ("mems", tuning.cpuset_mems))
    for key, value in cpu_settings:
        if value:
            cpu[key] = value
    if tuning.blkio_weight:
        resources["blockIO"] = {"weight": tuning.blkio_weight}
    for key in ("memory", "cpu"):
        if not resources[key]:
            del resources[key]


def limits(memory: int = 0, nano_cpus: int = 0, cpu_shares: int = 0,
           pids_limit: int = 0) -> dict[str, Any]:
    """OCI ``linux.resources`` for the limits given (zero: none), as ``runc update``
    also takes them."""
    resources: dict[str, Any] = {}
    if memory:
        resources["memory"] = {"limit": memory}
    cpu: dict[str, Any] = {}
    if cpu_shares:
        cpu["shares"] = cpu_shares
    if nano_cpus:
        cpu.update(period=_CPU_PERIOD, quota=nano_cpus * _CPU_PERIOD // 1_000_000_000)
    if cpu:
        resources["cpu"] = cpu
    if pids_limit > 0:
        resources["pids"] = {"limit": pids_limit}
    return resources


def _namespaces(config: ContainerRuntimeConfig) -> list[dict[str, str]]:
    """The namespaces runc makes (``{"type"}``) or joins (with a ``path``)."""
    shared = config.namespaces
    found: list[dict[str, str]] = []
    for kind, mode in (("pid", shared.pid), ("ipc", shared.ipc), ("uts", shared.uts)):
        if mode != "host":
            found.append({"type": kind, "path": mode} if mode else {"type": kind})
    found.append({"type": "mount"})
    if config.network != "host":
        found.append({"type": "network", "path": config.netns_path} if config.netns_path
                     else {"type": "network"})
    if shared.cgroup_private:
        found.append({"type": "cgroup"})
    return found


def _linux(config: ContainerRuntimeConfig) -> dict[str, Any]:
    linux: dict[str, Any] = {
        "resources": _resources(config),
        "namespaces": _namespaces(config),
    }
    if config.devices:
        linux["devices"] = [device.to_json() for device in config.devices]
    if config.cgroups_path:
        linux["cgroupsPath"] = config.cgroups_path
    if config.tuning.sysctls:
        linux["sysctl"] = dict(config.tuning.sysctls)
    if not config.privileged:
        linux["maskedPaths"] = list(_MASKED_PATHS)
        linux["readonlyPaths"] = list(_READONLY_PATHS)
    if config.tuning.seccomp is not None:
        seccomp = oci_seccomp(config.tuning.seccomp, _capabilities(config))
        if seccomp is not None:
            linux["seccomp"] = seccomp
    return linux


def build_spec(config: ContainerRuntimeConfig,
               annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``config.json`` of the container's OCI bundle."""
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": _process(config),
        "root": {"path": config.rootfs, "readonly": config.readonly_rootfs},
        "hostname": "" if config.namespaces.uts == "host" else config.hostname,
        "mounts": _mounts(config),
        "linux": _linux(config),
    }
    if annotations:
        spec["annotations"] = dict(annotations)
    return spec

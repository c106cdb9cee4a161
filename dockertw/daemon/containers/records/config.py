"""The create body: validated, merged with the image config, defaults filled as Docker does.

``Config`` keys are kept in the order Docker serialises them; ``HostConfig`` is filled
from :data:`HOST_CONFIG_DEFAULTS` (the order and values of a 20.10 inspect).  What the
engine cannot honour yet is refused with a 400 rather than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from dockertw.daemon.containers.records.health import check_healthcheck
from dockertw.daemon.containers.records.modes import check_modes
from dockertw.daemon.containers.records.netoptions import check_network_options
from dockertw.daemon.containers.records.tuning import check_tuning
from dockertw.daemon.jsonfields import json_object, json_string_map, json_text
from dockertw.daemon.logconfig import LogConfigError, log_settings
from dockertw.daemon.signals import parse_signal
from dockertw.errdefs import InvalidParameter
from dockertw.runtime.spec import normalize_capabilities

__all__ = ["CreateRequest", "parse_create_body", "merge_image_config", "fill_config",
           "fill_host_config", "entrypoint_and_args", "network_name",
           "HOST_CONFIG_DEFAULTS", "MASKED_PATHS", "READONLY_PATHS"]

MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

_NULL = None
#: HostConfig keys in Docker's order with their defaults; ``...`` marks omitempty keys.
HOST_CONFIG_DEFAULTS: tuple[tuple[str, Any], ...] = (
    ("Binds", _NULL), ("ContainerIDFile", ""), ("LogConfig", _NULL),
    ("NetworkMode", "default"), ("PortBindings", {}), ("RestartPolicy", _NULL),
    ("AutoRemove", False), ("VolumeDriver", ""), ("VolumesFrom", _NULL),
    ("CapAdd", _NULL), ("CapDrop", _NULL), ("CgroupnsMode", _NULL), ("Dns", []),
    ("DnsOptions", []), ("DnsSearch", []), ("ExtraHosts", _NULL), ("GroupAdd", _NULL),
    ("IpcMode", "private"), ("Cgroup", ""), ("Links", _NULL), ("OomScoreAdj", 0),
    ("PidMode", ""), ("Privileged", False), ("PublishAllPorts", False),
    ("ReadonlyRootfs", False), ("SecurityOpt", _NULL), ("StorageOpt", ...),
    ("Tmpfs", ...), ("UTSMode", ""), ("UsernsMode", ""), ("ShmSize", 67108864),
    ("Sysctls", ...), ("Runtime", _NULL), ("ConsoleSize", [0, 0]), ("Isolation", ""),
    ("CpuShares", 0), ("Memory", 0), ("NanoCpus", 0), ("CgroupParent", ""),
    ("BlkioWeight", 0), ("BlkioWeightDevice", []), ("BlkioDeviceReadBps", []),
    ("BlkioDeviceWriteBps", []), ("BlkioDeviceReadIOps", []),
    ("BlkioDeviceWriteIOps", []), ("CpuPeriod", 0), ("CpuQuota", 0),
    ("CpuRealtimePeriod", 0), ("CpuRealtimeRuntime", 0), ("CpusetCpus", ""),
    ("CpusetMems", ""), ("Devices", []), ("DeviceCgroupRules", _NULL),
    ("DeviceRequests", _NULL), ("KernelMemory", 0), ("KernelMemoryTCP", 0),
    ("MemoryReservation", 0), ("MemorySwap", 0), ("MemorySwappiness", _NULL),
    ("OomKillDisable", False), ("PidsLimit", _NULL), ("Ulimits", []), ("CpuCount", 0),
    ("CpuPercent", 0), ("IOMaximumIOps", 0), ("IOMaximumBandwidth", 0), ("Mounts", ...),
    ("MaskedPaths", _NULL), ("ReadonlyPaths", _NULL), ("Init", ...), ("Annotations", ...),
)

_CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout",
                "AttachStderr", "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env",
                "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
                "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels",
                "StopSignal", "StopTimeout", "Shell")
_CONFIG_OMITEMPTY = frozenset({"ExposedPorts", "Healthcheck", "ArgsEscaped",
                               "NetworkDisabled", "MacAddress", "StopSignal",
                               "StopTimeout", "Shell"})
_CONFIG_DEFAULTS: Mapping[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
}
_RESTART_POLICIES = frozenset({"", "no", "always", "on-failure", "unless-stopped"})
# HostConfig fields whose non-empty values the engine cannot honour yet.
_UNSUPPORTED = (
    ("StorageOpt", "--storage-opt"),
    ("CpuRealtimePeriod", "--cpu-rt-period"), ("CpuRealtimeRuntime", "--cpu-rt-runtime"),
    ("BlkioWeightDevice", "--blkio-weight-device"),
    ("BlkioDeviceReadBps", "--device-read-bps"),
    ("BlkioDeviceWriteBps", "--device-write-bps"),
    ("BlkioDeviceReadIOps", "--device-read-iops"),
    ("BlkioDeviceWriteIOps", "--device-write-iops"), ("KernelMemory", "--kernel-memory"),
    ("KernelMemoryTCP", "kernel TCP memory"), ("CpuCount", "CPU count"),
    ("CpuPercent", "CPU percent"), ("IOMaximumIOps", "maximum IOps"),
    ("IOMaximumBandwidth", "maximum IO bandwidth"),
)


@attrs.frozen
class CreateRequest:
    """A decoded ``POST /containers/create`` body."""

    config: dict[str, Any]
    host_config: dict[str, Any]
    networking: dict[str, Any]




def _strings(value: Any, what: str, split_string: bool = False) -> list[str] | None:
    """A Go ``[]string`` (or ``strslice``, which also takes one string)."""
    if value is None:
        return None
    if isinstance(value, str) and split_string:
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidParameter(f"invalid JSON: {what} must be an array of strings")






def parse_create_body(body: Any) -> CreateRequest:
    """Split the body into Config, HostConfig and NetworkingConfig; check their types."""
    if body is None:
        raise InvalidParameter("invalid JSON: got EOF while reading request body")
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the body must be a JSON object")
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    if not config:
        raise InvalidParameter("Config cannot be empty in order to create a container")
    _check_config_types(config)
    return CreateRequest(config, dict(json_object(body.get("HostConfig"), "HostConfig")),
                         json_object(body.get("NetworkingConfig"), "NetworkingConfig"))


def _check_config_types(config: dict[str, Any]) -> None:
    for key in ("Cmd", "Entrypoint"):
        config[key] = _strings(config.get(key), key, split_string=True)
    for key in ("Env", "Shell", "OnBuild"):
        config[key] = _strings(config.get(key), key)
    for key in ("Image", "User", "WorkingDir", "Hostname", "Domainname", "StopSignal"):
        config[key] = json_text(config.get(key), key)
    config["Labels"] = json_string_map(config.get("Labels"), "Labels")
    for key in ("ExposedPorts", "Volumes"):
        if config.get(key) is not None:
            config[key] = json_object(config[key], key)
    timeout = config.get("StopTimeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)):
        raise InvalidParameter("invalid JSON: StopTimeout must be an integer")


def merge_image_config(user: dict[str, Any], image: Mapping[str, Any]) -> None:
    """moby's ``merge``: what the container leaves unset comes from the image."""
    if not user.get("User"):
        user["User"] = image.get("User") or ""
    ports = {**(image.get("ExposedPorts") or {}), **(user.get("ExposedPorts") or {})}
    user["ExposedPorts"] = ports or None
    user["Env"] = _merge_env(user.get("Env"), image.get("Env"))
    labels = dict(image.get("Labels") or {})
    labels.update(user.get("Labels") or {})
    user["Labels"] = labels
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = image.get("Cmd")
            user["ArgsEscaped"] = image.get("ArgsEscaped")
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = image.get("Entrypoint")
    for key in ("WorkingDir", "StopSignal"):
        if not user.get(key):
            user[key] = image.get(key) or ""
    user["Healthcheck"] = _merge_healthcheck(user.get("Healthcheck"),
                                             image.get("Healthcheck"))
    volumes = {**(image.get("Volumes") or {}), **(user.get("Volumes") or {})}
    user["Volumes"] = volumes or None


def _merge_healthcheck(user: Any, image: Any) -> Any:
    """moby's merge: what the container's Healthcheck leaves empty is the image's."""
    if user is None or not isinstance(image, dict) or not isinstance(user, dict):
        return image if user is None else user
    merged = dict(user)
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not merged.get(key) and image.get(key):
            merged[key] = image[key]
    return merged


def _merge_env(user: list[str] | None, image: Sequence[str] | None) -> list[str] | None:
    if not user:
        return list(image) if image else None
    names = {entry.split("=", 1)[0] for entry in user}
    return user + [entry for entry in image or () if entry.split("=", 1)[0] not in names]


def fill_config(config: Mapping[str, Any], container_id: str) -> dict[str, Any]:
    """The Config in Docker's key order, defaults filled, empty optional keys left out;
    ``No command specified`` (400) when there is nothing to run."""
    if not _command_words(config):
        raise InvalidParameter("No command specified")
    for entry in config.get("Env") or ():
        if not entry or entry.startswith("="):
            raise InvalidParameter(f"invalid environment variable: {entry}")
    workdir = config.get("WorkingDir") or ""
    if workdir and not workdir.startswith("/"):
        raise InvalidParameter(f"the working directory '{workdir}' is invalid, it needs "
                               f"to be an absolute path")
    if config.get("StopSignal"):
        parse_signal(str(config["StopSignal"]))
    check_healthcheck(config.get("Healthcheck"))
    filled = {**config, "Hostname": config.get("Hostname") or container_id[:12]}
    result: dict[str, Any] = {}
    for key in _CONFIG_KEYS:
        value = filled.get(key, _CONFIG_DEFAULTS.get(key))
        if key in _CONFIG_OMITEMPTY and value in (None, "", False, {}, []):
            continue
        result[key] = value if value is not None or key not in _CONFIG_DEFAULTS \
            else _CONFIG_DEFAULTS[key]
    return result


def _command_words(config: Mapping[str, Any]) -> list[str]:
    """The entrypoint (``[""]`` resets it) followed by the command."""
    entrypoint = list(config.get("Entrypoint") or ())
    if entrypoint == [""]:
        entrypoint = []
    return entrypoint + list(config.get("Cmd") or ())


def entrypoint_and_args(config: Mapping[str, Any]) -> tuple[str, list[str]]:
    """``Path`` and ``Args``: the entrypoint followed by the command."""
    words = _command_words(config)
    return words[0], words[1:]


def network_name(mode: str) -> str:
    """The network a container in ``mode`` is attached to (``default`` is ``bridge``)."""
    return "bridge" if mode in ("", "default") else mode


def _check_unsupported(host: Mapping[str, Any]) -> None:
    for key, feature in _UNSUPPORTED:
        if host.get(key):
            raise InvalidParameter(f"{feature} is not supported by dockertw yet")
    try:
        log_settings(json_object(host.get("LogConfig"), "LogConfig"))
    except LogConfigError as error:
        raise InvalidParameter(str(error)) from None


def _check_restart_policy(host: Mapping[str, Any]) -> dict[str, Any]:
    policy = json_object(host.get("RestartPolicy"), "RestartPolicy")
    name = json_text(policy.get("Name"), "RestartPolicy.Name")
    retries = policy.get("MaximumRetryCount") or 0
    if name not in _RESTART_POLICIES:
        raise InvalidParameter(f"invalid restart policy '{name}'")
    if not isinstance(retries, int) or retries < 0:
        raise InvalidParameter("maximum retry count cannot be negative")
    if retries and name != "on-failure":
        raise InvalidParameter(f"maximum retry count cannot be used with restart "
                               f"policy '{name}'")
    if host.get("AutoRemove") and name not in ("", "no"):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    return {"Name": name or "no", "MaximumRetryCount": retries}


def check_cgroup_parent(value: Any) -> str:
    """A cgroup parent path: no ``.`` or ``..`` component may leave the hierarchy."""
    text = json_text(value, "CgroupParent")
    if any(part in (".", "..") for part in text.strip("/").split("/")):
        raise InvalidParameter(f"invalid cgroup parent {text!r}: it must not contain "
                               "'.' or '..'")
    return text


def _check_networking(networking: Mapping[str, Any]) -> None:
    endpoints = json_object(networking.get("EndpointsConfig"), "EndpointsConfig")
    for settings in endpoints.values():
        json_object(settings, "an endpoint config")


def fill_host_config(host: Mapping[str, Any], networking: Mapping[str, Any], *,
                     runtime: str, cgroup_version: str, hostname: str = "",
                     default_ulimits: Sequence[Mapping[str, Any]] = (),
                     default_log: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate the HostConfig and fill Docker's defaults, in Docker's key order
    (``hostname``: the one the create body asks for); the daemon's ``default_ulimits``
    join the container's own (which win, by name), its ``default_log`` (``{"Type",
    "Config"}``) fills a LogConfig without a type."""
    _check_unsupported(host)
    check_modes(host, hostname)
    _check_networking(networking)
    check_network_options(host)
    check_tuning(host, str(host.get("NetworkMode") or "default"))
    memory = host.get("Memory") or 0
    if not isinstance(memory, int) or (memory and memory < 6 * 1024 * 1024):
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    filled = dict(host)
    filled["RestartPolicy"] = _check_restart_policy(host)
    filled["CgroupParent"] = check_cgroup_parent(host.get("CgroupParent"))
    for key in ("CapAdd", "CapDrop"):
        names = _strings(host.get(key), key)
        if names is not None:
            normalize_capabilities(names, key)
    filled["LogConfig"] = _log_config(json_object(host.get("LogConfig"), "LogConfig"),
                                      default_log or {"Type": "json-file", "Config": {}})
    filled["CgroupnsMode"] = host.get("CgroupnsMode") or (
        "private" if cgroup_version == "2" else "host")
    filled["Runtime"] = host.get("Runtime") or runtime
    if default_ulimits:
        filled["Ulimits"] = _with_default_ulimits(host.get("Ulimits"), default_ulimits)
    if not isinstance(host.get("PidsLimit") or 0, int) or (host.get("PidsLimit") or 0) <= 0:
        filled["PidsLimit"] = None
    _fill_paths(filled)
    return _ordered_host_config(filled)


def _log_config(own: Mapping[str, Any], default: Mapping[str, Any]) -> dict[str, Any]:
    """As moby: no type takes the daemon's; the daemon's type adds its options."""
    kind = own.get("Type") or default["Type"]
    options = dict(own.get("Config") or {})
    if kind == default["Type"]:
        options = {**default["Config"], **options}
    return {"Type": kind, "Config": options}


def _with_default_ulimits(own: Any, defaults: Sequence[Mapping[str, Any]]
                          ) -> list[dict[str, Any]]:
    mine = [dict(limit) for limit in own or ()]
    names = {limit.get("Name") for limit in mine}
    return mine + [dict(limit) for limit in defaults if limit["Name"] not in names]


def _fill_paths(filled: dict[str, Any]) -> None:
    privileged = bool(filled.get("Privileged"))
    if filled.get("MaskedPaths") is None and not privileged:
        filled["MaskedPaths"] = list(MASKED_PATHS)
    if filled.get("ReadonlyPaths") is None and not privileged:
        filled["ReadonlyPaths"] = list(READONLY_PATHS)


def _ordered_host_config(filled: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, default in HOST_CONFIG_DEFAULTS:
        value = filled.get(key)
        if default is ...:
            if value:
                result[key] = value
            continue
        if value in (None, "", 0) and default not in (None, False):
            value = default
        result[key] = value if value is not None else default
    return result


# ``docker update`` resources dockertw applies; other non-zero ones are refused.
_UPDATABLE = ("Memory", "CpuShares", "NanoCpus", "PidsLimit")
_NOT_UPDATABLE = ("MemorySwap", "BlkioWeight", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
                  "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "KernelMemory",
                  "KernelMemoryTCP", "MemoryReservation", "MemorySwappiness",
                  "OomKillDisable", "BlkioWeightDevice", "BlkioDeviceReadBps",
                  "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
                  "Devices", "DeviceCgroupRules", "DeviceRequests", "Ulimits", "CpuCount",
                  "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth", "CgroupParent")


@attrs.frozen
class UpdateRequest:
    """A decoded ``POST /containers/{name}/update`` body."""

    resources: dict[str, Any]  # only the keys given with a non-zero value
    restart_policy: dict[str, Any] | None  # None: unchanged


def parse_update_body(body: Any) -> UpdateRequest:
    """Validate an UpdateConfig; 400 for what dockertw cannot change."""
    update = json_object(body, "UpdateConfig")
    for key in _NOT_UPDATABLE:
        if update.get(key):
            raise InvalidParameter(f"updating {key} is not supported by dockertw yet")
    resources = {key: update[key] for key in _UPDATABLE if update.get(key)}
    for key, value in resources.items():
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidParameter(f"invalid JSON: {key} must be an integer")
    memory = resources.get("Memory", 0)
    if memory and memory < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    for key in ("CpuShares", "NanoCpus"):
        if resources.get(key, 0) < 0:
            raise InvalidParameter(f"invalid {key}: it cannot be negative")
    policy = json_object(update.get("RestartPolicy"), "RestartPolicy")
    restart = _check_restart_policy({"RestartPolicy": policy}) if policy.get("Name") \
        else None
    return UpdateRequest(resources, restart)


def apply_update(host: Mapping[str, Any], update: UpdateRequest) -> dict[str, Any]:
    """The HostConfig after ``update`` (moby ``UpdateContainer``'s rules)."""
    if update.restart_policy is not None and host.get("AutoRemove") \
            and update.restart_policy["Name"] != "no":
        raise InvalidParameter("Restart policy cannot be updated because AutoRemove is "
                               "enabled for the container")
    swap = int(host.get("MemorySwap") or 0)
    memory = update.resources.get("Memory", 0)
    if memory > 0 and swap > 0 and memory > swap and "MemorySwap" not in update.resources:
        raise InvalidParameter("Memory limit should be smaller than already set "
                               "memoryswap limit, update the memoryswap at the same time")
    new = dict(host, **update.resources)
    if update.restart_policy is not None:
        new["RestartPolicy"] = update.restart_policy
    return new

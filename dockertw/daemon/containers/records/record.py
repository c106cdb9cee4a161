"""One container's record: what is persisted, and Docker's JSON views of it."""

from __future__ import annotations

import json
from typing import Any

import attrs

from dockertw.daemon.containers.records import networking
from dockertw.daemon.containers.records.config import network_name
from dockertw.daemon.containers.records.health import NO_HEALTHCHECK, Health
from dockertw.daemon.containers.records.security import apparmor_profile
from dockertw.daemon.mountpoint import MountPoint
from dockertw.daemon.networks.ports import summary_ports
from dockertw.daemon.timestamps import rfc3339_nano

__all__ = ["Container", "State", "ZERO_TIME", "command_line", "human_duration"]

ZERO_TIME = "0001-01-01T00:00:00Z"


def command_line(path: str, args: list[str]) -> str:
    """The list's ``Command``: arguments with a space are single-quoted."""
    return " ".join([path, *(f"'{a}'" if " " in a else a for a in args)])


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``, as in ``Up 5 seconds`` or ``Exited (0) 2 hours ago``."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


@attrs.define
class State:
    """The runtime state kept with the record (``State`` of inspect)."""

    running: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_ns: int = 0
    finished_ns: int = 0
    restarting: bool = False  # waiting to be restarted by its policy (running too)
    restart_count: int = 0
    manually_stopped: bool = False  # stopped or killed by the user
    paused: bool = False
    oom_killed: bool = False  # the kernel killed a process of the last run for memory
    health: Health | None = None  # None: no health check ran yet

    def to_json(self) -> dict[str, Any]:
        return {"Running": self.running, "Pid": self.pid, "ExitCode": self.exit_code,
                "Error": self.error, "StartedNano": self.started_ns,
                "FinishedNano": self.finished_ns, "Restarting": self.restarting,
                "RestartCount": self.restart_count,
                "HasBeenManuallyStopped": self.manually_stopped, "Paused": self.paused,
                "OOMKilled": self.oom_killed,
                "Health": None if self.health is None else self.health.to_json()}

    @classmethod
    def from_json(cls, value: Any) -> State:
        if not isinstance(value, dict):
            return cls()
        return cls(running=bool(value.get("Running")), pid=int(value.get("Pid") or 0),
                   exit_code=int(value.get("ExitCode") or 0),
                   error=str(value.get("Error") or ""),
                   started_ns=int(value.get("StartedNano") or 0),
                   finished_ns=int(value.get("FinishedNano") or 0),
                   restarting=bool(value.get("Restarting")),
                   restart_count=int(value.get("RestartCount") or 0),
                   manually_stopped=bool(value.get("HasBeenManuallyStopped")),
                   paused=bool(value.get("Paused")),
                   oom_killed=bool(value.get("OOMKilled")),
                   health=Health.from_json(value.get("Health")))

    def stopped(self, exit_code: int, now_ns: int, oom_killed: bool = False) -> State:
        """This state after the run ended with ``exit_code``."""
        return attrs.evolve(self, running=False, restarting=False, paused=False, pid=0,
                            exit_code=exit_code, finished_ns=now_ns, oom_killed=oom_killed)


def _time(nanoseconds: int) -> str:
    return rfc3339_nano(nanoseconds) if nanoseconds else ZERO_TIME


Sizes = tuple[int, int]  # the writable layer's and the whole root filesystem's bytes


@attrs.define
class Container:
    """A container as the engine keeps it: its settings and its last known state."""

    id: str
    name: str
    created_ns: int
    path: str
    args: list[str]
    config: dict[str, Any]
    host_config: dict[str, Any]
    image_id: str
    state: State = attrs.field(factory=State)
    log_path: str = ""
    mount_points: list[dict[str, Any]] = attrs.field(factory=list)  # MountPoint.to_json
    network_settings: dict[str, Any] = attrs.field(factory=networking.empty_settings)
    hosts_path: str = ""
    hostname_path: str = ""
    resolv_conf_path: str = ""

    @property
    def network_mode(self) -> str:
        return str(self.host_config.get("NetworkMode") or "default")

    @property
    def networks(self) -> dict[str, dict[str, Any]]:
        """The networks it is connected to (by name) and its settings on each."""
        return dict(self.network_settings.get("Networks") or {})

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def state_string(self) -> str:
        """``State.Status`` (moby ``StateString``)."""
        if self.state.restarting:
            return "restarting"
        if self.state.running and self.state.paused:
            return "paused"
        if self.state.running:
            return "running"
        return "exited" if self.state.started_ns else "created"

    @property
    def running(self) -> bool:
        return self.state.running

    def status_text(self, now_ns: int) -> str:
        """The list's human ``Status`` (moby ``State.String``)."""
        if self.state.restarting:
            ago = human_duration((now_ns - self.state.finished_ns) / 1e9)
            return f"Restarting ({self.state.exit_code}) {ago} ago"
        if self.state.running:
            up = "Up " + human_duration((now_ns - self.state.started_ns) / 1e9)
            if self.state.paused:
                return up + " (Paused)"
            health = self.state.health
            return up if health is None else f"{up} ({health.shown()})"
        if not self.state.started_ns:
            return "Created"
        if not self.state.finished_ns:
            return ""
        ago = human_duration((now_ns - self.state.finished_ns) / 1e9)
        return f"Exited ({self.state.exit_code}) {ago} ago"

    @property
    def health_status(self) -> str:
        """The health the list filters on (``none`` without a health check)."""
        return NO_HEALTHCHECK if self.state.health is None else self.state.health.status

    def health_summary(self) -> dict[str, Any]:
        """The list's ``Health`` (API 1.52)."""
        health = self.state.health
        return {"Status": self.health_status,
                "FailingStreak": 0 if health is None else health.failing_streak}

    def event_attributes(self) -> dict[str, str]:
        """Attributes of a container event: labels, ``image`` and ``name``."""
        return {**self.labels, "image": str(self.config.get("Image") or ""),
                "name": self.name.removeprefix("/")}

    # -- persistence -----------------------------------------------------------------

    def config_json(self) -> bytes:
        """``config.v2.json``: everything but the HostConfig."""
        record = {"ID": self.id, "Name": self.name, "CreatedNano": self.created_ns,
                  "Path": self.path, "Args": self.args, "Config": self.config,
                  "Image": self.image_id, "State": self.state.to_json(),
                  "LogPath": self.log_path, "MountPoints": self.mount_points,
                  "NetworkSettings": self.network_settings, "HostsPath": self.hosts_path,
                  "HostnamePath": self.hostname_path,
                  "ResolvConfPath": self.resolv_conf_path}
        return json.dumps(record, indent=None).encode()

    def host_config_json(self) -> bytes:
        return json.dumps(self.host_config).encode()

    @classmethod
    def from_json(cls, config_v2: bytes, host_config: bytes) -> Container:
        """The record read back from its two files (``ValueError`` when unreadable)."""
        record = json.loads(config_v2)
        hosted = json.loads(host_config)
        if not isinstance(record, dict) or not isinstance(hosted, dict):
            raise ValueError("not a JSON object")
        try:
            return cls(id=record["ID"], name=record["Name"],
                       created_ns=int(record["CreatedNano"]), path=record["Path"],
                       args=list(record["Args"]), config=dict(record["Config"]),
                       host_config=hosted, image_id=record["Image"],
                       state=State.from_json(record.get("State")),
                       log_path=str(record.get("LogPath") or ""),
                       mount_points=list(record.get("MountPoints") or []),
                       network_settings=_network_settings(record.get("NetworkSettings"),
                                                          hosted),
                       hosts_path=str(record.get("HostsPath") or ""),
                       hostname_path=str(record.get("HostnamePath") or ""),
                       resolv_conf_path=str(record.get("ResolvConfPath") or ""))
        except (KeyError, TypeError) as error:
            raise ValueError(f"incomplete record: {error}") from None

    # -- views -----------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        state = self.state
        return {"Status": self.state_string, "Running": state.running, "Paused": state.paused,
                "Restarting": state.restarting, "OOMKilled": state.oom_killed, "Dead": False,
                "Pid": state.pid, "ExitCode": state.exit_code, "Error": state.error,
                "StartedAt": _time(state.started_ns),
                "FinishedAt": _time(state.finished_ns),
                **({} if state.health is None else {"Health": state.health.to_json()})}

    def inspect(self, sizes: Sizes | None = None) -> dict[str, Any]:
        """``GET /containers/{id}/json``: ContainerJSON in Docker's field order;
        ``sizes`` (writable layer, root filesystem) when asked for."""
        document: dict[str, Any] = {
            "Id": self.id, "Created": rfc3339_nano(self.created_ns), "Path": self.path,
            "Args": list(self.args), "State": self._state(), "Image": self.image_id,
            "ResolvConfPath": self.resolv_conf_path, "HostnamePath": self.hostname_path,
            "HostsPath": self.hosts_path, "LogPath": self.log_path,
            "Name": self.name, "RestartCount": self.state.restart_count, "Driver": "overlay2",
            "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
            "AppArmorProfile": apparmor_profile(self.host_config), "ExecIDs": None,
            "HostConfig": self.host_config,
            "GraphDriver": {"Data": None, "Name": "overlay2"},
        }
        if sizes is not None:
            document.update(SizeRw=sizes[0], SizeRootFs=sizes[1])
        document.update(Mounts=self.mounts_view(), Config=self.config,
                        NetworkSettings=self._network_settings())
        return json.loads(json.dumps(document))  # a deep copy the caller may keep

    def points(self) -> list[MountPoint]:
        """The container's mounts (``mount_points`` decoded)."""
        return [MountPoint.from_json(item) for item in self.mount_points]

    def mounts_view(self) -> list[dict[str, Any]]:
        """``Mounts``: Docker's MountPoint items (``--tmpfs`` ones are not shown)."""
        return [point.view() for point in self.points()
                if point.type != "tmpfs" or point.shown]

    def _network_settings(self) -> dict[str, Any]:
        return networking.network_settings_view(self.network_settings, self.running)

    def _summary_host_config(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "NetworkMode": self.host_config.get("NetworkMode") or "default"}
        if self.host_config.get("Annotations"):
            shown["Annotations"] = dict(self.host_config["Annotations"])
        return shown

    def summary(self, image: str, sizes: Sizes | None = None,
                now_ns: int = 0) -> dict[str, Any]:
        """An item of ``GET /containers/json``; ``image`` is the name to show."""
        item: dict[str, Any] = {
            "Id": self.id, "Names": [self.name], "Image": image, "ImageID": self.image_id,
            "Command": command_line(self.path, self.args),
            "Created": self.created_ns // 1_000_000_000,
            "Ports": summary_ports(self.network_settings.get("Ports")
                                   if self.running else None),
        }
        if sizes is not None:  # both omitted when empty, as Go's omitempty does
            item.update({key: value for key, value in zip(("SizeRw", "SizeRootFs"), sizes,
                                                          strict=True) if value})
        item.update(Labels=self.labels, State=self.state_string,
                    Status=self.status_text(now_ns),
                    HostConfig=self._summary_host_config(),
                    NetworkSettings=networking.summary_networks(self.network_settings),
                    Mounts=self.mounts_view(), Health=self.health_summary())
        return item


def _network_settings(stored: Any, host_config: dict[str, Any]) -> dict[str, Any]:
    """The stored settings, or those of a record written before networks existed."""
    if isinstance(stored, dict) and "Networks" in stored:
        return stored
    mode = str(host_config.get("NetworkMode") or "default")
    settings = networking.empty_settings()
    settings["Networks"] = {network_name(mode): networking.endpoint_settings(None)}
    return settings

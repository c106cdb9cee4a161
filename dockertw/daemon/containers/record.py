"""One container's record: what is persisted, and Docker's JSON views of it."""

from __future__ import annotations

import json
from typing import Any

import attrs

from dockertw.daemon.containers.config import network_name
from dockertw.daemon.images.views import rfc3339_nano

__all__ = ["Container", "ZERO_TIME", "command_line"]

ZERO_TIME = "0001-01-01T00:00:00Z"
_ENDPOINT = {"IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": "",
             "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
             "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
             "MacAddress": "", "DriverOpts": None}


def command_line(path: str, args: list[str]) -> str:
    """The list's ``Command``: arguments with a space are single-quoted."""
    return " ".join([path, *(f"'{a}'" if " " in a else a for a in args)])


@attrs.define
class Container:
    """A container as the engine keeps it (never started: state is ``created``)."""

    id: str
    name: str
    created_ns: int
    path: str
    args: list[str]
    config: dict[str, Any]
    host_config: dict[str, Any]
    image_id: str

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.get("Labels") or {})

    @property
    def state_string(self) -> str:
        """``State.Status``: nothing starts yet, so every record is ``created``."""
        return "created"

    @property
    def running(self) -> bool:
        return False

    def event_attributes(self) -> dict[str, str]:
        """Attributes of a container event: labels, ``image`` and ``name``."""
        return {**self.labels, "image": str(self.config.get("Image") or ""),
                "name": self.name.removeprefix("/")}

    # -- persistence -----------------------------------------------------------------

    def config_json(self) -> bytes:
        """``config.v2.json``: everything but the HostConfig."""
        record = {"ID": self.id, "Name": self.name, "CreatedNano": self.created_ns,
                  "Path": self.path, "Args": self.args, "Config": self.config,
                  "Image": self.image_id}
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
                       host_config=hosted, image_id=record["Image"])
        except (KeyError, TypeError) as error:
            raise ValueError(f"incomplete record: {error}") from None

    # -- views -----------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {"Status": self.state_string, "Running": False, "Paused": False,
                "Restarting": False, "OOMKilled": False, "Dead": False, "Pid": 0,
                "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME,
                "FinishedAt": ZERO_TIME}

    def _networks(self) -> dict[str, Any]:
        mode = str(self.host_config.get("NetworkMode") or "default")
        return {network_name(mode): dict(_ENDPOINT)}

    def inspect(self, size_root_fs: int | None = None) -> dict[str, Any]:
        """``GET /containers/{id}/json``: ContainerJSON in Docker's field order."""
        document: dict[str, Any] = {
            "Id": self.id, "Created": rfc3339_nano(self.created_ns), "Path": self.path,
            "Args": list(self.args), "State": self._state(), "Image": self.image_id,
            "ResolvConfPath": "", "HostnamePath": "", "HostsPath": "", "LogPath": "",
            "Name": self.name, "RestartCount": 0, "Driver": "overlay2",
            "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
            "AppArmorProfile": "", "ExecIDs": None, "HostConfig": self.host_config,
            "GraphDriver": {"Data": None, "Name": "overlay2"},
        }
        if size_root_fs is not None:
            document.update(SizeRw=0, SizeRootFs=size_root_fs)
        document.update(Mounts=[], Config=self.config,
                        NetworkSettings=self._network_settings())
        return json.loads(json.dumps(document))  # a deep copy the caller may keep

    def _network_settings(self) -> dict[str, Any]:
        return {"Bridge": "", "SandboxID": "", "HairpinMode": False,
                "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
                "SandboxKey": "", "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
                "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
                "Networks": self._networks()}

    def summary(self, image: str, size_root_fs: int | None = None) -> dict[str, Any]:
        """An item of ``GET /containers/json``; ``image`` is the name to show."""
        item: dict[str, Any] = {
            "Id": self.id, "Names": [self.name], "Image": image, "ImageID": self.image_id,
            "Command": command_line(self.path, self.args),
            "Created": self.created_ns // 1_000_000_000, "Ports": [],
        }
        if size_root_fs:
            item["SizeRootFs"] = size_root_fs
        item.update(Labels=self.labels, State=self.state_string,
                    Status="Created",
                    HostConfig={"NetworkMode": self.host_config.get("NetworkMode")
                                or "default"},
                    NetworkSettings={"Networks": self._networks()}, Mounts=[])
        return item


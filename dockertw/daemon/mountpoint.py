"""One mount of a container as its record keeps it: what volumes and containers share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["MountPoint"]


@attrs.frozen
class MountPoint:
    """One mount of a container, as kept in its record."""

    type: str  # bind, volume or tmpfs
    destination: str
    source: str = ""  # the host path (bind) or the volume's _data (volume)
    name: str = ""  # the volume's name
    driver: str = ""
    rw: bool = True
    mode: str = ""
    propagation: str = ""
    copy_data: bool = True
    anonymous: bool = False
    create_source: bool = False  # a Binds source that is created when missing
    data: str = ""  # tmpfs options
    shown: bool = True  # in inspect's Mounts (``--tmpfs`` mounts are not)
    labels: dict[str, str] = attrs.field(factory=dict)  # of a volume made for it
    options: dict[str, str] = attrs.field(factory=dict)  # its driver options
    subpath: str = ""  # VolumeOptions.Subpath: what of the volume is mounted (API 1.45)

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> MountPoint:
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{key: item for key, item in value.items() if key in known})

    def view(self) -> dict[str, Any]:
        """Docker's ``MountPoint`` (ContainerJSON and the list's ``Mounts``)."""
        shown: dict[str, Any] = {"Type": self.type}
        if self.type == "volume":
            shown["Name"] = self.name
        shown.update(Source=self.source, Destination=self.destination)
        if self.type == "volume":
            shown["Driver"] = self.driver
        shown.update(Mode=self.mode, RW=self.rw, Propagation=self.propagation)
        return shown

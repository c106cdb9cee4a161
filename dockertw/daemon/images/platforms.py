"""OCI platforms of a single-platform image store, as moby's graph-driver store
matches them (``platforms.Only`` with its fallback, on the image config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from dockertw.errdefs import InvalidParameter, NotFound

__all__ = ["Platform", "only_one", "of_config"]

_ARCHITECTURES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64",
                  "armhf": "arm", "armel": "arm", "i386": "386"}


def _normal_arch(architecture: str) -> str:
    lowered = architecture.lower()
    return _ARCHITECTURES.get(lowered, lowered)


@attrs.frozen
class Platform:
    """An OCI platform: ``os``, ``architecture`` and an optional ``variant``."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        """containerd's ``FormatAll``: ``linux/arm64/v8``."""
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)

    def matches(self, other: Platform) -> bool:
        """Same OS and architecture; a variant only counts when both have one."""
        if self.os.lower() != other.os.lower() \
                or _normal_arch(self.architecture) != _normal_arch(other.architecture):
            return False
        return not (self.variant and other.variant) or self.variant == other.variant

    def check_image(self, config: Mapping[str, Any], name: str) -> None:
        """404 unless the image of ``config`` (called ``name``) is of this platform."""
        found = of_config(config)
        if not self.matches(found):
            raise NotFound(f"image with reference {name} was found but its platform "
                           f"({found}) does not match the specified platform ({self})")


def of_config(config: Mapping[str, Any]) -> Platform:
    """The platform an image config declares (Linux when it says nothing)."""
    return Platform(str(config.get("os") or "linux"), str(config.get("architecture") or ""),
                    str(config.get("variant") or ""))


def only_one(platforms: list[Platform]) -> Platform | None:
    """The one platform a single-platform store can serve (400 for several)."""
    if len(platforms) > 1:
        raise InvalidParameter("multiple platforms not supported for this image store; use "
                               "a multi-platform image store such as containerd-snapshotter")
    return platforms[0] if platforms else None

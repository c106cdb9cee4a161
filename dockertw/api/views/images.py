"""Image answers and parameters at each API version (moby's image router)."""

from __future__ import annotations

import json
from typing import Any

from dockertw.api.versions import before, drop_since, since
from dockertw.daemon.images.platforms import Platform
from dockertw.errdefs import InvalidParameter

__all__ = ["summary_view", "inspect_view", "decode_platform", "decode_platforms"]

_ZERO_TIME = "0001-01-01T00:00:00Z"
# Config fields of container.Config that image inspect showed up to API 1.49.
_CONTAINER_ONLY_CONFIG = (
    "Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty",
    "OpenStdin", "StdinOnce", "Image", "NetworkDisabled", "MacAddress", "StopTimeout",
)
# Config fields omitted when unset from API 1.52 on (OCI image config's omitempty).
_OMITTED_WHEN_UNSET = ("Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes",
                       "WorkingDir")


def summary_view(item: dict[str, Any], version: str) -> dict[str, Any]:
    """An item of ``GET /images/json``: ``VirtualSize`` before 1.44, ``Containers``
    counted from 1.51 (``-1`` before)."""
    if before(version, "1.44"):
        item["VirtualSize"] = item.get("Size", 0)
    else:
        item.pop("VirtualSize", None)
    if before(version, "1.51"):
        item["Containers"] = -1
    return item


def _config_view(config: dict[str, Any], version: str) -> dict[str, Any]:
    if since(version, "1.50"):
        config = {k: v for k, v in config.items() if k not in _CONTAINER_ONLY_CONFIG}
    if since(version, "1.52"):
        config = {k: v for k, v in config.items()
                  if k not in _OMITTED_WHEN_UNSET or v not in (None, "", [], {})}
    return config


def inspect_view(document: dict[str, Any], version: str) -> dict[str, Any]:
    """``GET /images/{name}/json`` at ``version``: ``VirtualSize`` until 1.43,
    ``Container``/``ContainerConfig`` until 1.44, the container-only ``Config``
    fields until 1.49, empty ``Parent``/``Comment``/``DockerVersion``/``Author`` and
    unset config fields until 1.51."""
    if before(version, "1.44"):
        document["VirtualSize"] = document.get("Size", 0)
    else:
        document.pop("VirtualSize", None)
        if document.get("Created") == _ZERO_TIME:
            document.pop("Created")
    drop_since(document, version, "1.45", "Container", "ContainerConfig")
    if isinstance(document.get("Config"), dict):
        document["Config"] = _config_view(document["Config"], version)
    if since(version, "1.52"):
        for field in ("Parent", "Comment", "DockerVersion", "Author"):
            if not document.get(field):
                document.pop(field, None)
    return document


def decode_platform(raw: str) -> Platform:
    """A JSON-encoded OCI platform parameter (moby's ``DecodePlatform``); 400 when
    unreadable or without OS and architecture."""
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise InvalidParameter(f"failed to parse platform: {error}") from None
    if not isinstance(value, dict):
        raise InvalidParameter("failed to parse platform: not a JSON object")
    platform = Platform(str(value.get("os") or ""), str(value.get("architecture") or ""),
                        str(value.get("variant") or ""))
    optional = platform.variant or value.get("os.version") or value.get("os.features")
    if not platform.os and not platform.architecture and optional:
        raise InvalidParameter(
            "optional platform fields provided, but OS and Architecture are missing")
    if not platform.os or not platform.architecture:
        raise InvalidParameter("both OS and Architecture must be provided")
    return platform


def decode_platforms(raws: list[str]) -> list[Platform]:
    return [decode_platform(raw) for raw in raws]

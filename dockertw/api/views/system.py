"""``/info``, ``/system/df`` and ``/events`` at each API version (moby's system router)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dockertw.api.versions import before, drop_since, since
from dockertw.errdefs import InvalidParameter

__all__ = ["info_view", "disk_usage_view", "disk_usage_types", "event_view",
           "events_content_type", "parse_accept", "JSON_LINES", "JSON_SEQUENCE"]

JSON_LINES = "application/jsonl"
NDJSON = "application/x-ndjson"
JSON_SEQUENCE = "application/json-seq"
_STREAM_TYPES = (JSON_LINES, NDJSON, JSON_SEQUENCE)
_DF_TYPES = ("container", "image", "volume", "build-cache")


def info_view(info: dict[str, Any], version: str) -> dict[str, Any]:
    """``GET /info``: fields moby dropped go from the version that dropped them."""
    info = dict(info)
    if not info.get("KernelMemory"):
        drop_since(info, version, "1.42", "KernelMemory")
    if not info.get("KernelMemoryTCP"):
        drop_since(info, version, "1.42", "KernelMemoryTCP")
    drop_since(info, version, "1.50", "BridgeNfIptables", "BridgeNfIp6tables")
    if since(version, "1.49"):
        registry = info.get("RegistryConfig")
        if isinstance(registry, dict):
            info["RegistryConfig"] = {
                key: value for key, value in registry.items()
                if not key.startswith("AllowNondistributableArtifacts")}
        for commit in ("ContainerdCommit", "RuncCommit", "InitCommit"):
            if isinstance(info.get(commit), dict):
                info[commit] = {k: v for k, v in info[commit].items() if k != "Expected"}
    return info


def disk_usage_types(values: list[str], present: bool, version: str) -> frozenset[str]:
    """``type`` of ``/system/df`` (API 1.42): the object types to count."""
    if before(version, "1.42") or not present:
        return frozenset(_DF_TYPES)
    for value in values:
        if value not in _DF_TYPES:
            raise InvalidParameter(f"unknown object type: {value}")
    return frozenset(values)


def _usage(items: list[dict[str, Any]], active: Iterable[bool], sizes: Iterable[int],
           reclaimable: int, verbose: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {"ActiveCount": sum(active), "TotalCount": len(items),
                             "Reclaimable": reclaimable, "TotalSize": sum(sizes)}
    if verbose:
        usage["Items"] = items
    return usage


def _images_usage(layers_size: int, images: list[dict[str, Any]],
                  verbose: bool) -> dict[str, Any]:
    reclaimable = sum(image["Size"] - image["SharedSize"] for image in images
                      if image.get("Containers") == 0 and image.get("SharedSize", -1) != -1)
    usage = _usage(images, (image.get("Containers", 0) > 0 for image in images), (),
                   reclaimable, verbose)
    usage["TotalSize"] = layers_size
    return usage


def _containers_usage(containers: list[dict[str, Any]], verbose: bool) -> dict[str, Any]:
    idle = [c for c in containers if c.get("State") not in ("running", "paused",
                                                             "restarting")]
    return _usage(containers, (c not in idle for c in containers),
                  (c.get("SizeRw", 0) for c in containers),
                  sum(c.get("SizeRw", 0) for c in idle), verbose)


def _volumes_usage(volumes: list[dict[str, Any]], verbose: bool) -> dict[str, Any]:
    data = [v.get("UsageData") or {} for v in volumes]
    sized = [d for d in data if d.get("Size", -1) != -1]
    return _usage(volumes, (d.get("Size", -1) == -1 or d.get("RefCount") != 0 for d in data),
                  (d["Size"] for d in sized),
                  sum(d["Size"] for d in sized if d.get("RefCount") == 0), verbose)


def _legacy(usage: dict[str, Any], types: frozenset[str], version: str) -> dict[str, Any]:
    legacy: dict[str, Any] = {}
    if "image" in types:
        images = [dict(item) for item in usage["Images"]]
        for image in images:
            if before(version, "1.44"):
                image["VirtualSize"] = image.get("Size", 0)
            else:
                image.pop("VirtualSize", None)
        if usage["LayersSize"]:
            legacy["LayersSize"] = usage["LayersSize"]
        legacy["Images"] = images
    for kind, field in (("container", "Containers"), ("volume", "Volumes"),
                        ("build-cache", "BuildCache")):
        if kind in types:
            legacy[field] = usage[field]
    if before(version, "1.42"):
        legacy["LayersSize"] = usage["LayersSize"]
        legacy["BuilderSize"] = sum(item["Size"] for item in usage["BuildCache"])
        legacy["BuildCache"] = [_single_parent(item) for item in usage["BuildCache"]]
    return legacy


def _single_parent(record: dict[str, Any]) -> dict[str, Any]:
    """A build cache record before API 1.42: one ``Parent`` instead of ``Parents``."""
    shown = {key: value for key, value in record.items() if key != "Parents"}
    shown["Parent"] = (record.get("Parents") or [""])[0]
    return shown


def disk_usage_view(usage: dict[str, Any], types: frozenset[str], verbose: bool,
                    version: str) -> dict[str, Any]:
    """``GET /system/df``: the legacy lists until 1.51; from 1.52 the ``*Usage``
    summaries too (with ``Items`` and without the legacy lists when ``verbose``)."""
    if before(version, "1.52"):
        return _legacy(usage, types, version)
    answer = {} if verbose else _legacy(usage, types, version)
    if "image" in types:
        answer["ImageUsage"] = _images_usage(usage["LayersSize"], usage["Images"], verbose)
    if "container" in types:
        answer["ContainerUsage"] = _containers_usage(usage["Containers"], verbose)
    if "volume" in types:
        answer["VolumeUsage"] = _volumes_usage(usage["Volumes"], verbose)
    if "build-cache" in types:
        answer["BuildCacheUsage"] = _usage(usage["BuildCache"], (), (), 0, verbose)
    return answer


def parse_accept(header: str) -> list[tuple[str, float]]:
    """The media ranges of an ``Accept`` header with their quality."""
    ranges = []
    for item in header.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges.append((media.lower(), quality))
    return ranges


def events_content_type(accept: str, version: str) -> str:
    """``/events``: ``application/json`` until 1.51, ``application/jsonl`` from 1.52;
    an ``Accept`` naming a JSON stream type exactly chooses it (moby's
    ``MatchAcceptStrict``)."""
    chosen = JSON_LINES if since(version, "1.52") else "application/json"
    best = -1.0
    ranges = parse_accept(accept) if accept else []
    for offer in _STREAM_TYPES:
        for media, quality in ranges:
            if media == offer and quality > best and quality != 0:
                chosen, best = offer, quality
    return chosen


_LEGACY_EVENT_FIELDS = ("status", "id", "from")


def event_view(message: dict[str, Any], version: str) -> dict[str, Any]:
    """An event: the legacy ``status``, ``id`` and ``from`` only until API 1.51."""
    if since(version, "1.52"):
        return {key: value for key, value in message.items()
                if key not in _LEGACY_EVENT_FIELDS}
    return message

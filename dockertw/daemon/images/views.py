"""Docker's JSON shapes for images, and the list and prune filters (pure functions).

Everything here works on :class:`~dockertw.daemon.images.store.Image` snapshots and
returns plain JSON-able values in the field order Docker Engine 20.10 writes:
``ImageSummary`` for lists, ``ImageInspect``, ``HistoryResponseItem``, the image
config of an import, and the image part of ``/system/df``.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from dockertw.daemon.images.store import Image, Layer
from dockertw.daemon.timestamps import parse_filter_time, rfc3339_nano
from dockertw.errdefs import InvalidParameter
from dockertw.filters import Filters

__all__ = [
    "LIST_FILTERS",
    "check_list_filters",
    "check_prune_filters",
    "PRUNE_FILTERS",
    "ZERO_TIME",
    "container_config",
    "disk_usage",
    "history_items",
    "import_config",
    "inspect",
    "glob_regex",
    "list_images",
    "parse_filter_time",
    "prune_candidates",
    "reference_matches",
    "rfc3339_nano",
    "shared_sizes",
    "squashed_config",
    "summary",
]

LIST_FILTERS = frozenset({"dangling", "label", "before", "since", "reference", "until"})
PRUNE_FILTERS = frozenset({"dangling", "label", "label!", "until"})
ZERO_TIME = "0001-01-01T00:00:00Z"
_ZERO_UNIX = -62135596800

_OMIT = object()
# Go's container.Config, in field order; _OMIT marks `omitempty` fields.
_CONFIG_FIELDS: tuple[tuple[str, Any], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", _OMIT),
    ("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("Env", None),
    ("Cmd", None), ("Healthcheck", _OMIT), ("ArgsEscaped", _OMIT), ("Image", ""),
    ("Volumes", None), ("WorkingDir", ""), ("Entrypoint", None),
    ("NetworkDisabled", _OMIT), ("MacAddress", _OMIT), ("OnBuild", None),
    ("Labels", None), ("StopSignal", _OMIT), ("StopTimeout", _OMIT), ("Shell", _OMIT),
)
_MAP_FIELDS = frozenset({"ExposedPorts", "Volumes", "Labels"})


# -- times -------------------------------------------------------------------------


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _unix(text: Any) -> int:
    """Unix seconds of an RFC 3339 time; Go's zero time when missing or unreadable."""
    moment = _parse_time(text)
    return int(moment.timestamp()) if moment else _ZERO_UNIX


# -- configs -----------------------------------------------------------------------


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value in ([], {})


def container_config(value: Any) -> dict[str, Any] | None:
    """A container config as Go's ``container.Config`` marshals it (``None`` stays)."""
    if not isinstance(value, dict):
        return None
    result: dict[str, Any] = {}
    for name, default in _CONFIG_FIELDS:
        item = value.get(name, None if default is _OMIT else default)
        if default is _OMIT and (item is None if name == "StopTimeout" else _is_empty(item)):
            continue
        if name in _MAP_FIELDS and isinstance(item, dict):
            item = {key: item[key] for key in sorted(item)}
        result[name] = item
    return result


def import_config(*, architecture: str, comment: str, config: dict[str, Any],
                  created_ns: int, diff_id: str, docker_version: str) -> bytes:
    """The image config ``docker import`` writes (top-level keys sorted, as Docker's)."""
    created = rfc3339_nano(created_ns)
    history: dict[str, Any] = {"created": created}
    if comment:
        history["comment"] = comment
    document: dict[str, Any] = {
        "architecture": architecture,
        "comment": comment,
        "config": container_config(config),
        "container_config": container_config({}),
        "created": created,
        "docker_version": docker_version,
        "history": [history],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    if not comment:
        del document["comment"]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


@attrs.frozen
class CommitConfig:
    """What ``docker commit`` records about the container it was made from."""

    config: dict[str, Any]
    container_config: dict[str, Any]
    container_id: str
    author: str = ""
    comment: str = ""


def child_config(parent: Image | None, commit: CommitConfig, *, diff_id: str | None,
                 created_ns: int, docker_version: str, architecture: str = "amd64") -> bytes:
    """The config of an image made from ``parent`` (``None``: from nothing, as a build
    ``FROM scratch``) plus one layer (``None``: empty)."""
    created = rfc3339_nano(created_ns)
    step: dict[str, Any] = {"created": created, "created_by": " ".join(
        str(word) for word in commit.container_config.get("Cmd") or [])}
    step.update({key: value for key, value in (("author", commit.author),
                                               ("comment", commit.comment)) if value})
    if diff_id is None:
        step["empty_layer"] = True
    base = parent.config if parent is not None else {}
    rootfs = base.get("rootfs") or {}
    document: dict[str, Any] = {
        "architecture": base.get("architecture") or architecture,
        "author": commit.author, "comment": commit.comment,
        "config": container_config(commit.config),
        "container": commit.container_id,
        "container_config": container_config(commit.container_config),
        "created": created, "docker_version": docker_version,
        "history": [*(base.get("history") or []), step], "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [
            *(rootfs.get("diff_ids") or []), *([diff_id] if diff_id else [])]},
    }
    for key in ("author", "comment"):
        if not document[key]:
            del document[key]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def squashed_config(image: Image, parent: Image | None, diff_id: str, created_ns: int) -> bytes:
    """moby's ``SquashImage``: ``image`` with one layer (``diff_id``) above
    ``parent``'s, its own steps kept in the history as empty, and a merge step."""
    document = dict(image.config)
    base = parent.config if parent is not None else {}
    kept = len(base.get("history") or [])
    history = [dict(entry, empty_layer=True) if index >= kept else dict(entry)
               for index, entry in enumerate(image.config.get("history") or [])]
    created = rfc3339_nano(created_ns)
    comment = (f"merge {image.id} to {parent.id}" if parent is not None
               else f"create new from {image.id}")
    document.update(created=created, history=[*history, {"created": created,
                                                         "comment": comment}])
    diff_ids = list((base.get("rootfs") or {}).get("diff_ids") or [])
    document["rootfs"] = {"type": "layers", "diff_ids": [*diff_ids, diff_id]}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _labels(image: Image) -> dict[str, str] | None:
    config = image.config.get("config")
    labels = config.get("Labels") if isinstance(config, dict) else None
    return dict(labels) if isinstance(labels, dict) else None


def _has_config(image: Image) -> bool:
    return isinstance(image.config.get("config"), dict)


# -- summaries and inspect -----------------------------------------------------------


def summary(image: Image, repo_tags: Sequence[str] | None,
            repo_digests: Sequence[str] | None, *, containers: int = -1,
            shared_size: int = -1) -> dict[str, Any]:
    """One ``ImageSummary`` of ``GET /images/json``."""
    return {
        "Containers": containers,
        "Created": image.created_unix,
        "Id": image.id,
        "Labels": _labels(image),
        "ParentId": image.parent,
        "RepoDigests": list(repo_digests) if repo_digests is not None else None,
        "RepoTags": list(repo_tags) if repo_tags is not None else None,
        "SharedSize": shared_size,
        "Size": image.size,
        "VirtualSize": image.size,
    }


def _graph_driver_data(layers: Sequence[Layer]) -> dict[str, str] | None:
    """overlay2's metadata for the top layer of ``layers`` (bottom first)."""
    if not layers:
        return None
    top = layers[-1].path.parent
    data = {"MergedDir": str(top / "merged"), "UpperDir": str(layers[-1].path),
            "WorkDir": str(top / "work")}
    if len(layers) > 1:
        data["LowerDir"] = ":".join(str(layer.path) for layer in reversed(layers[:-1]))
    return {key: data[key] for key in sorted(data)}


def _comment(config: Mapping[str, Any]) -> str:
    comment = config.get("comment")
    if isinstance(comment, str) and comment:
        return comment
    history = config.get("history")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        return str(history[-1].get("comment") or "")
    return ""


def _text(config: Mapping[str, Any], key: str) -> str:
    value = config.get(key)
    return value if isinstance(value, str) else ""


def _root_fs(config: Mapping[str, Any]) -> dict[str, Any]:
    found = config.get("rootfs")
    rootfs: Mapping[str, Any] = found if isinstance(found, dict) else {}
    result: dict[str, Any] = {"Type": str(rootfs.get("type") or "")}
    if rootfs.get("diff_ids"):
        result["Layers"] = list(rootfs["diff_ids"])
    return result


def inspect(image: Image, layers: Sequence[Layer]) -> dict[str, Any]:
    """``GET /images/{name}/json``: Docker's ``ImageInspect`` (``layers`` bottom first)."""
    config = image.config
    result: dict[str, Any] = {
        "Id": image.id, "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests), "Parent": image.parent,
        "Comment": _comment(config), "Created": _text(config, "created") or ZERO_TIME,
        "Container": _text(config, "container"),
        "ContainerConfig": container_config(config.get("container_config"))
        or container_config({}),
        "DockerVersion": _text(config, "docker_version"), "Author": _text(config, "author"),
        "Config": container_config(config.get("config")),
        "Architecture": _text(config, "architecture"),
    }
    if _text(config, "variant"):
        result["Variant"] = _text(config, "variant")
    result["Os"] = _text(config, "os") or "linux"
    if _text(config, "os.version"):
        result["OsVersion"] = _text(config, "os.version")
    result.update({
        "Size": image.size, "VirtualSize": image.size,
        "GraphDriver": {"Data": _graph_driver_data(layers), "Name": "overlay2"},
        "RootFS": _root_fs(config),
        "Metadata": {"LastTagTime": image.last_tag_time or ZERO_TIME},
    })
    return result


def history_items(image: Image, layer_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """The history of ``image``, newest first, every ``Id`` ``<missing>`` and no tags;
    ``layer_sizes`` are the sizes of its layers, bottom first."""
    entries = image.config.get("history")
    items: list[dict[str, Any]] = []
    sizes = iter(layer_sizes)
    for entry in entries if isinstance(entries, list) else ():
        entry = entry if isinstance(entry, dict) else {}
        size = 0 if entry.get("empty_layer") else next(sizes, 0)
        items.append({"Comment": str(entry.get("comment") or ""),
                      "Created": _unix(entry.get("created")),
                      "CreatedBy": str(entry.get("created_by") or ""),
                      "Id": "<missing>", "Size": size, "Tags": None})
    items.reverse()
    return items


# -- reference patterns ----------------------------------------------------------------


def _class_char(pattern: str, index: int) -> tuple[str, int]:
    """One character of a ``[...]`` class (Go's ``getEsc``)."""
    if index >= len(pattern) or pattern[index] in "-]":
        raise InvalidParameter("syntax error in pattern")
    if pattern[index] == "\\":
        index += 1
        if index >= len(pattern):
            raise InvalidParameter("syntax error in pattern")
    return pattern[index], index + 1


def _glob_class(pattern: str, index: int) -> tuple[str, int]:
    negated = index < len(pattern) and pattern[index] == "^"
    index += negated
    ranges: list[str] = []
    count = 0
    while True:
        if index < len(pattern) and pattern[index] == "]" and count:
            break
        low, index = _class_char(pattern, index)
        high = low
        if index < len(pattern) and pattern[index] == "-":
            high, index = _class_char(pattern, index + 1)
        count += 1
        if low <= high:
            ranges.append(f"{re.escape(low)}-{re.escape(high)}")
    body = "".join(ranges)
    if negated:
        return (f"[^{body}]" if body else "(?s:.)"), index + 1
    return (f"[{body}]" if body else "(?!)"), index + 1


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``path.Match`` pattern as a regular expression (``*`` stops at ``/``)."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char, index = pattern[index], index + 1
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "[":
            part, index = _glob_class(pattern, index)
            parts.append(part)
        elif char == "\\":
            if index >= len(pattern):
                raise InvalidParameter("syntax error in pattern")
            parts.append(re.escape(pattern[index]))
            index += 1
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _familiar_name(reference: str) -> str:
    name = reference.split("@", 1)[0]
    head, colon, tail = name.rpartition(":")
    return head if colon and "/" not in tail else name


def reference_matches(pattern: str, reference: str) -> bool:
    """Docker's ``FamiliarMatch``: ``pattern`` matches the familiar string or its name."""
    regex = glob_regex(pattern)
    return bool(regex.fullmatch(reference) or regex.fullmatch(_familiar_name(reference)))


# -- list ----------------------------------------------------------------------------


def _invalid_dangling(values: frozenset[str]) -> InvalidParameter:
    return InvalidParameter(f"Invalid filter 'dangling=[{' '.join(sorted(values))}]'")


def _dangling_only(filters: Filters) -> bool:
    """The list's ``dangling`` filter: ``true`` or ``false``, anything else is a 400."""
    values = filters.get("dangling")
    if not values:
        return False
    if "true" in values:
        return True
    if "false" in values:
        return False
    raise _invalid_dangling(values)


def _prune_dangling_only(filters: Filters) -> bool:
    """The prune ``dangling`` filter: only dangling images unless ``false``/``0``."""
    values = filters.get("dangling")
    if not values:
        return True
    if values & {"false", "0"}:
        return False
    if values & {"true", "1"}:
        return True
    raise _invalid_dangling(values)


def check_list_filters(filters: Filters) -> None:
    """Refuse bad values before any lookup: ``dangling``, ``reference`` patterns."""
    _dangling_only(filters)
    _list_until(filters, time.time())
    for pattern in filters.get("reference"):
        glob_regex(pattern)


def _matching(references: Sequence[str], patterns: frozenset[str]) -> list[str]:
    if not patterns:
        return list(references)
    return [r for r in references if any(reference_matches(p, r) for p in patterns)]


def _in_window(image: Image, before: Image | None, since: Image | None) -> bool:
    if before is not None and image.created_time >= before.created_time:
        return False
    return since is None or image.created_time > since.created_time


def _names_shown(image: Image, filters: Filters, dangling_only: bool, shown_all: bool,
                 parents: set[str], placeholders: bool) -> tuple[list[str], list[str]] | None:
    """The tags and digests to list, or ``None`` to leave ``image`` out (moby's rules)."""
    patterns = filters.get("reference")
    tags = _matching(image.repo_tags, patterns)
    digests = _matching(image.repo_digests, patterns)
    if tags or digests:
        return None if dangling_only and tags else (tags, digests)
    if not shown_all and image.id in parents:
        return None
    if ("dangling" in filters and not dangling_only) or patterns:
        return None
    return (["<none>:<none>"], ["<none>@<none>"]) if placeholders else ([], [])


def list_images(images: Sequence[Image], filters: Filters, *, shown_all: bool = False,
                before: Image | None = None, since: Image | None = None,
                placeholders: bool = True) -> list[dict[str, Any]]:
    """``GET /images/json``: summaries of ``images`` (newest first) that pass ``filters``.

    ``placeholders`` puts ``<none>:<none>`` in untagged images' names (API < 1.43).
    """
    dangling_only = _dangling_only(filters)
    until = _list_until(filters, time.time())
    parents = {image.parent for image in images if image.parent}
    result = []
    for image in images:
        if dangling_only and image.id in parents:
            continue
        if not _in_window(image, before, since) or (
                until is not None and image.created_time >= until):
            continue
        if "label" in filters and not (_has_config(image) and filters.match_labels(
                "label", _labels(image) or {})):
            continue
        names = _names_shown(image, filters, dangling_only, shown_all, parents, placeholders)
        if names is not None:  # API < 1.43 (Go's nil slices) has null for no names
            tags, digests = names
            result.append(summary(image, tags or None, digests or None) if placeholders
                          else summary(image, tags, digests))
    return result


def _layer_references(images: Sequence[Image]) -> Counter[str]:
    """How many images (tagged, or leaves) use each layer chain."""
    parents = {image.parent for image in images if image.parent}
    used = [image for image in images
            if image.repo_tags or image.repo_digests or image.id not in parents]
    return Counter(chain for image in used for chain in image.chain)


def shared_sizes(images: Sequence[Image], layers: Sequence[Layer]
                 ) -> list[tuple[str, int]]:
    """Each image's ``SharedSize``: its layers that other images use too."""
    sizes = {layer.chain_id: layer.size for layer in layers}
    references = _layer_references(images)
    return [(image.id, sum(sizes.get(c, 0) for c in image.chain if references[c] > 1))
            for image in images]


def disk_usage(images: Sequence[Image], layers: Sequence[Layer]
               ) -> tuple[int, list[dict[str, Any]]]:
    """``/system/df``: the size of the layers images use, and their summaries with
    ``Containers`` and ``SharedSize`` counted."""
    sizes = {layer.chain_id: layer.size for layer in layers}
    layers_size = sum(sizes.get(chain, 0) for chain in _layer_references(images))
    listed = list_images(images, Filters())
    shared = dict(shared_sizes(images, layers))
    for item in listed:
        item["Containers"] = 0
        item["SharedSize"] = shared[item["Id"]]
    return layers_size, listed


# -- prune ---------------------------------------------------------------------------


def check_prune_filters(filters: Filters) -> None:
    """Refuse bad ``dangling`` and ``until`` values before touching the store."""
    _prune_dangling_only(filters)
    _until(filters, time.time())


def _list_until(filters: Filters, now: float) -> datetime | None:
    """The list's ``until`` (API 1.44, every version): images created before it; the
    last value counts, as moby walks them."""
    moments = [parse_filter_time(value, now) for value in sorted(filters.get("until"))]
    return datetime.fromtimestamp(moments[-1], UTC) if moments else None


def _until(filters: Filters, now: float) -> datetime | None:
    values = filters.get("until")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter("more than one until filter specified")
    return datetime.fromtimestamp(parse_filter_time(next(iter(values)), now), UTC)


def _prune_labels_match(filters: Filters, image: Image) -> bool:
    if not _has_config(image):
        return True
    labels = _labels(image) or {}
    if "label" in filters and not filters.match_labels("label", labels):
        return False
    return not ("label!" in filters and labels and filters.match_labels("label!", labels))


def prune_candidates(images: Sequence[Image], filters: Filters,
                     now: float | None = None) -> tuple[bool, list[Image]]:
    """``POST /images/prune``: whether only dangling images go, and the images to try."""
    dangling_only = _prune_dangling_only(filters)
    until = _until(filters, time.time() if now is None else now)
    parents = {image.parent for image in images if image.parent}
    chosen = []
    for image in images:
        if image.id in parents and (dangling_only or not (image.repo_tags
                                                          or image.repo_digests)):
            continue
        if until is not None and image.created_time > until:
            continue
        if _prune_labels_match(filters, image):
            chosen.append(image)
    return dangling_only, chosen

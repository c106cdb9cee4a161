"""The classic build cache: a step's image is an earlier child of the same parent
whose ``container_config`` (the step's command and config) matches.

As moby's ``image/cache``: the newest matching child wins; once a step misses, the
rest of the stage is built (``cacheBusted``); ``--no-cache`` never probes.  With
``cachefrom`` images, a local hit counts only if one of them descends from it; else a
step of a ``cachefrom`` image whose history matches this build so far is taken (its
image restored as a child of the current one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dockertw.daemon.images.store import Image, ImageStore
from dockertw.errdefs import DockerError

__all__ = ["ImageProber", "matches", "RestoreImage"]

#: Stores a restored image config as a child of ``parent``; answers its ID.
RestoreImage = Callable[[bytes, str], str]


def _items(value: Any) -> list[Any]:
    return list(value or ())


def matches(stored: Mapping[str, Any] | None, probe: Mapping[str, Any]) -> bool:
    """moby's ``compare``: command, environment, labels, ports, entrypoint, volumes,
    user and the attach/tty flags agree (``Image`` and ``Hostname`` do not count)."""
    if not isinstance(stored, Mapping) or stored.get("OpenStdin") or probe.get("OpenStdin"):
        return False
    for key in ("AttachStdout", "AttachStderr", "Tty"):
        if bool(stored.get(key)) != bool(probe.get(key)):
            return False
    if (stored.get("User") or "") != (probe.get("User") or ""):
        return False
    for key in ("Cmd", "Env", "Entrypoint"):
        if _items(stored.get(key)) != _items(probe.get(key)):
            return False
    for key in ("Labels", "ExposedPorts", "Volumes"):
        if _key_set(stored.get(key), key == "Labels") != _key_set(probe.get(key),
                                                                   key == "Labels"):
            return False
    return True


def _key_set(value: Any, with_values: bool) -> Any:
    mapping = dict(value or {})
    return mapping if with_values else set(mapping)


class ImageProber:
    """One build's cache lookups (``reset`` at each stage)."""

    def __init__(self, store: ImageStore, *, enabled: bool = True,
                 cache_from: Sequence[Image] | None = None,
                 restore: RestoreImage | None = None) -> None:
        """``cache_from``: ``None`` without the option, else the images it named that
        exist (none found: no step is taken from the cache)."""
        self._store = store
        self._enabled = enabled
        self._from_sources_only = cache_from is not None
        self._initial_sources = list(cache_from or ())
        self._sources = list(self._initial_sources)
        self._restore = restore
        self._busted = False

    def reset(self) -> None:
        self._busted = False
        self._sources = list(self._initial_sources)

    def probe(self, parent_id: str, config: Mapping[str, Any]) -> str:
        """The cached image of a step on ``parent_id``, or ``""`` (then the stage's
        later steps are not probed)."""
        if not self._enabled or self._busted:
            return ""
        found = self._lookup(parent_id, config)
        if not found:
            self._busted = True
        return found

    def _lookup(self, parent_id: str, config: Mapping[str, Any]) -> str:
        local = self._local(parent_id, config)
        if not self._from_sources_only:
            return local
        if local and any(self._descends(source.id, local) for source in self._sources):
            return local
        return self._from_sources(parent_id, config)

    def _local(self, parent_id: str, config: Mapping[str, Any]) -> str:
        best: Image | None = None
        for child_id in self._store.children(parent_id):
            try:
                child = self._store.get(child_id)
            except DockerError:
                continue
            if matches(child.config.get("container_config"), config) and (
                    best is None or best.created_time < child.created_time):
                best = child
        return best.id if best is not None else ""

    def _descends(self, image_id: str, ancestor: str) -> bool:
        current = image_id
        seen: set[str] = set()
        while current and current not in seen:
            seen.add(current)
            try:
                current = self._store.get(current).parent
            except DockerError:
                return False
            if current == ancestor:
                return True
        return False

    def _from_sources(self, parent_id: str, config: Mapping[str, Any]) -> str:
        parent = self._store.get(parent_id) if parent_id else None
        done = len(_history(parent)) if parent is not None else 0
        created_by = " ".join(str(word) for word in _items(config.get("Cmd")))
        for target in self._sources:
            history = _history(target)
            if not _valid_parent(target, parent) or history[done].get("created_by",
                                                                       "") != created_by:
                continue
            if len(history) - 1 == done:
                return target.id
            if self._restore is None:
                return ""
            restored = self._restore(_restored_config(parent, target, done, config),
                                     parent_id)
            self._sources = [target]  # as moby: stay on this image's line
            return restored
        return ""


def _history(image: Image | None) -> list[dict[str, Any]]:
    if image is None:
        return []
    return [entry for entry in image.config.get("history") or [] if isinstance(entry, dict)]


def _diff_ids(image: Image | None) -> list[str]:
    rootfs = image.config.get("rootfs") if image is not None else None
    return list((rootfs or {}).get("diff_ids") or []) if isinstance(rootfs, dict) else []


def _valid_parent(image: Image, parent: Image | None) -> bool:
    """moby's ``isValidParent``: ``parent``'s history and layers start ``image``'s."""
    history, parent_history = _history(image), _history(parent)
    if not history:
        return False
    if parent is None or (not parent_history and not _diff_ids(parent)):
        return True
    if len(parent_history) >= len(history) or len(_diff_ids(parent)) > len(_diff_ids(image)):
        return False
    return history[:len(parent_history)] == parent_history and \
        _diff_ids(image)[:len(_diff_ids(parent))] == _diff_ids(parent)


def _layer_at(image: Image, index: int) -> str:
    """The diff ID of the layer the ``index``-th history entry made (``""``: none)."""
    history = _history(image)
    if history[index].get("empty_layer"):
        return ""
    layers = sum(1 for entry in history[:index] if not entry.get("empty_layer"))
    return _diff_ids(image)[layers]


def _restored_config(parent: Image | None, target: Image, index: int,
                     config: Mapping[str, Any]) -> bytes:
    """moby's ``restoreCachedImage``: the parent plus one step of ``target``."""
    history = [*_history(parent), _history(target)[index]]
    diff_ids = _diff_ids(parent)
    layer = _layer_at(target, index)
    if layer:
        diff_ids.append(layer)
    document = {
        "architecture": target.config.get("architecture"), "config": dict(config),
        "created": history[-1].get("created"), "history": history, "os": target.config.get("os"),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if target.config.get("author"):
        document["author"] = target.config["author"]
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()

"""``--policy LISTENER=POLICY``: each listener's policy, read at start and again on
reload (SIGHUP), and the gates that apply them.

A listener without a policy is ``full``.  A policy is a preset (``full``,
``readonly``, ``none``) or the path of a TOML file (docs/security.md).  On reload
every file is read again; a file that has become unreadable or wrong is reported and
its listener keeps the policy it had.  Connections are never dropped: a connection
asks its listener's current policy at each request.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from dockertw.api.gate import Gate, route_facts
from dockertw.api.router import Router
from dockertw.errdefs import DockerError
from dockertw.filters import Filters
from dockertw.listeners import ListenerSpec
from dockertw.loglevel import Logger
from dockertw.policy import PRESETS, Policy, PolicyError, parse_policy, preset

__all__ = ["PolicyBook", "EngineTargets", "policy_sources", "policy_key", "make_gate",
           "RELOAD_EVENTS"]

_log = Logger()
_FULL = preset("full")

#: The events after which policies are read again (the daemon's reload, on SIGHUP).
RELOAD_EVENTS = Filters({"type": frozenset({"daemon"}), "event": frozenset({"reload"})})


def policy_sources(entries: Iterable[str], listeners: Collection[str]) -> dict[str, str]:
    """``LISTENER=POLICY`` entries (split at the last ``=``) by listener; each
    listener must be one given to ``--listen`` or ``-H``, at most once."""
    sources: dict[str, str] = {}
    for entry in entries:
        listener, equals, source = entry.rpartition("=")
        if not equals or not listener or not source:
            raise ValueError(f"invalid --policy {entry!r}: expected LISTENER=POLICY")
        if listener not in listeners:
            known = ", ".join(sorted(listeners))
            raise ValueError(f"invalid --policy {entry!r}: no listener {listener!r} "
                             f"(listeners: {known})")
        if listener in sources:
            raise ValueError(f"invalid --policy {entry!r}: {listener!r} has a policy already")
        sources[listener] = source
    return sources


def policy_key(spec: ListenerSpec, sources: Mapping[str, str]) -> str:
    """The ``--policy`` name of the listener ``spec`` (``fd://`` may have opened
    several, named ``fd://#0``...); ``""`` when it has none."""
    name = spec.name
    if name in sources:
        return name
    base, hash_sign, index = name.rpartition("#")
    return base if hash_sign and index.isdigit() and base in sources else ""


class PolicyBook:
    """The current policy of each listener named by ``--policy``."""

    def __init__(self, sources: Mapping[str, str], routers: Sequence[Router]) -> None:
        facts = [route_facts(route) for router in routers for route in router.routes()]
        self._routes = frozenset(fact.name for fact in facts)
        self._methods = frozenset(fact.method for fact in facts)
        self._sources = dict(sources)
        self._policies = {key: self._read(source) for key, source in self._sources.items()}

    def policy(self, listener: str) -> Policy:
        return self._policies.get(listener, _FULL)

    def reload(self) -> None:
        """Read every policy again; a listener whose policy fails keeps its old one."""
        for key, source in self._sources.items():
            try:
                self._policies[key] = self._read(source)
            except PolicyError as error:
                _log.error("Policy of {listener} not reloaded: {error}", listener=key,
                           error=str(error))
            else:
                _log.info("Policy of {listener} reloaded from {source}", listener=key,
                          source=source)

    def _read(self, source: str) -> Policy:
        if source in PRESETS:
            return preset(source)
        try:
            text = Path(source).read_text()
        except (OSError, UnicodeDecodeError) as error:
            raise PolicyError(f"cannot read the policy file {source}: {error}") from None
        return parse_policy(text, source, self._routes, self._methods)


class _Inspecting(Protocol):
    def inspect(self, name: str) -> Deferred[dict[str, Any]]: ...


class _ExecInspecting(Protocol):
    def inspect(self, exec_id: str) -> dict[str, Any]: ...


def _none_on_error(failure: Failure) -> None:
    failure.trap(DockerError)
    return None


class EngineTargets:
    """The gate's look-ups, answered by the engine's services."""

    def __init__(self, containers: _Inspecting, execs: _ExecInspecting,
                 images: _Inspecting) -> None:
        self._containers = containers
        self._execs = execs
        self._images = images

    def container_labels(self, reference: str) -> Deferred[Mapping[str, str] | None]:
        """The labels of a container (``None``: there is no such container)."""
        shown = self._containers.inspect(reference)
        return shown.addCallbacks(lambda found: found["Config"].get("Labels") or {},
                                  _none_on_error)

    def exec_container(self, exec_id: str) -> str | None:
        try:
            return str(self._execs.inspect(exec_id)["ContainerID"])
        except DockerError:
            return None

    def image_names(self, reference: str) -> Deferred[list[str]]:
        """The names (``RepoTags``) of the image ``reference`` is, if there is one."""
        shown = self._images.inspect(reference)
        shown.addCallbacks(lambda found: list(found.get("RepoTags") or []), _none_on_error)
        return shown.addCallback(lambda names: names or [])


def make_gate(spec: ListenerSpec, sources: Mapping[str, str], book: PolicyBook,
              targets: EngineTargets, metered: bool) -> Gate | None:
    """The gate of a listener: none when it has no policy and nothing is measured."""
    key = policy_key(spec, sources)
    if not key and not metered:
        return None
    return Gate(spec.name, key, book, targets, metered)

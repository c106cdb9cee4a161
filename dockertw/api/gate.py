"""A listener's gate: every routed request passes here before its handler.

The router calls the gate of the request's listener (``ApiSite.gate``) with the route
and the call.  The gate names the route (for metrics), finds the peer's identity
(once per connection), asks the listener's policy, and then runs the handler, or
refuses with a 403 and an audit log line.  The decision itself is the policy's
(:mod:`dockertw.policy`, no I/O); the gate gathers what it needs (the container's
labels, the body, the image's names) and applies the answer (a label filter on a
listing).  Hijacked routes (attach, exec start) pass here before they hijack.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Protocol

from twisted.internet.defer import Deferred, ensureDeferred, succeed

from dockertw import meters
from dockertw.api import httputils
from dockertw.api.peers import identity_of
from dockertw.api.router import ApiCall, Route, route_name
from dockertw.errdefs import DockerError, Forbidden
from dockertw.filters import Filters
from dockertw.loglevel import Logger
from dockertw.policy import Decision, Identity, Plan, Policy, RequestFacts, RouteFacts, Target

__all__ = ["Gate", "Policies", "TargetBackend", "route_facts"]

_log = Logger()


class Policies(Protocol):
    """The current policy of each listener (it may change on reload)."""

    def policy(self, listener: str) -> Policy: ...


class TargetBackend(Protocol):
    """What the gate looks up about the objects a request names."""

    def container_labels(self, reference: str) -> Deferred[Mapping[str, str] | None]: ...
    def exec_container(self, exec_id: str) -> str | None: ...
    def image_names(self, reference: str) -> Deferred[list[str]]: ...


_LISTINGS = frozenset({"/containers/json", "/containers/prune", "/events"})


def route_facts(route: Route) -> RouteFacts:
    """The route as the policy sees it: name, method, what it is about."""
    path = route.path
    body = ""
    if path == "/containers/create":
        target, body = Target.CREATE, "create"
    elif path in _LISTINGS:
        target = Target.LISTING
    elif path.startswith(("/containers/<", "/exec/<")) or path == "/commit":
        target = Target.CONTAINER
        body = "exec" if path == "/containers/<path:name>/exec" else ""
    else:
        target = Target.NONE
    return RouteFacts(route_name(route), route.method.upper(), target, body)


class Gate:
    """The gate of one listener (``key``: its name in ``--policy``)."""

    def __init__(self, listener: str, key: str, policies: Policies,
                 targets: TargetBackend, metered: bool = False) -> None:
        self._listener = listener
        self._key = key
        self._policies = policies
        self._targets = targets
        self._metered = metered
        self._facts: dict[int, RouteFacts] = {}

    def __call__(self, route: Route, call: ApiCall) -> Any:
        facts = self._facts.get(id(route)) or self._learn(route)
        request: Any = call.request
        request.route_name = facts.name
        identity = request.channel.identity or self._identity(request)
        policy = self._policies.policy(self._key)
        plan = policy.plan(facts, identity)
        decision = plan.settled
        if decision is None:
            return self._decide_by_request(plan, policy, identity, route, call)
        if decision.allowed and not decision.narrow and not self._metered:
            return route.handler(call)  # the fast path: nothing to do
        return self._apply(decision, policy, identity, route, call, facts)

    def _learn(self, route: Route) -> RouteFacts:
        facts = self._facts[id(route)] = route_facts(route)
        return facts

    @staticmethod
    def _identity(request: Any) -> Identity:
        """The peer's identity, worked out on the connection's first request."""
        channel = request.channel
        identity: Identity = identity_of(channel.transport)
        channel.identity = identity
        return identity

    def _decide_by_request(self, plan: Plan, policy: Policy, identity: Identity,
                           route: Route, call: ApiCall) -> Any:
        body = _read_body(call) if plan.needs_body else None
        if not plan.needs_labels and not (plan.needs_image and isinstance(body, Mapping)):
            return self._apply(plan.decide(RequestFacts(body=body)), policy, identity,
                               route, call)
        facts = ensureDeferred(self._looked_up(plan, route, call, body))
        return facts.addCallback(lambda found: self._apply(plan.decide(found), policy,
                                                           identity, route, call))

    async def _looked_up(self, plan: Plan, route: Route, call: ApiCall,
                         body: Any) -> RequestFacts:
        """The facts that take a look-up: the container's labels, the image's names."""
        labels = await self._labels(route, call) if plan.needs_labels else None
        images: tuple[str, ...] = ()
        if plan.needs_image and isinstance(body, Mapping):
            images = await self._image_names(body.get("Image"))
        return RequestFacts(labels=labels, body=body, image_names=images)

    def _apply(self, decision: Decision, policy: Policy, identity: Identity,
               route: Route, call: ApiCall, facts: RouteFacts | None = None) -> Any:
        facts = facts or self._facts[id(route)]
        if not decision.allowed:
            self._refused(policy, facts, identity, decision)
        else:
            if self._metered:
                meters.count(meters.POLICY_DECISIONS, (self._listener, facts.name, "allow"))
            if decision.narrow and not policy.log_only:
                _narrow(call, decision.narrow)
        return route.handler(call)

    def _refused(self, policy: Policy, facts: RouteFacts, identity: Identity,
                 decision: Decision) -> None:
        """Log the denial; refuse unless the policy only logs."""
        verdict = "would-deny" if policy.log_only else "deny"
        _log.info("{line}", line=(
            f"policy {verdict}: listener={self._listener} identity={identity.display} "
            f"route={facts.name} method={facts.method} policy={policy.name} "
            f"rule={decision.rule} reason={decision.text}"))
        if self._metered:
            meters.count(meters.POLICY_DECISIONS,
                         (self._listener, facts.name, verdict.replace("-", "_")))
        if not policy.log_only:
            raise Forbidden(f"access denied by policy {policy.name}: {decision.text}")

    def _labels(self, route: Route, call: ApiCall) -> Deferred[Mapping[str, str] | None]:
        reference = _container_reference(route, call)
        if route.path.startswith("/exec/<"):
            reference = self._targets.exec_container(reference) or ""
        if not reference:
            return succeed(None)
        return self._targets.container_labels(reference)

    async def _image_names(self, reference: Any) -> tuple[str, ...]:
        if not isinstance(reference, str) or not reference:
            return ()
        return (reference, *await self._targets.image_names(reference))


def _container_reference(route: Route, call: ApiCall) -> str:
    """The container (or, under ``/exec/``, the exec) a request is about."""
    if route.path == "/commit":
        return call.query("container")
    return call.params.get("name", "")


def _read_body(call: ApiCall) -> Any:
    """The decoded JSON body, left for the handler to read again (``None`` when it
    cannot be decoded: the handler answers that with its own 400)."""
    content = call.request.content
    if content is None:
        return None
    raw = content.read()
    content.seek(0, os.SEEK_SET)
    header = call.request.getHeader(b"content-type")
    try:
        return httputils.decode_json_body(header.decode("latin-1") if header else None, raw)
    except DockerError:
        return None


def _narrow(call: ApiCall, labels: tuple[tuple[str, str], ...]) -> None:
    """Add ``label=KEY=VALUE`` filters to the request's ``filters`` argument."""
    current = Filters.from_json(call.query("filters"))
    merged = {key: dict.fromkeys(sorted(current.get(key)), True)
              for key in sorted(current.keys())}
    merged.setdefault("label", {}).update(
        dict.fromkeys((f"{key}={value}" for key, value in labels), True))
    call.request.args[b"filters"] = [json.dumps(merged).encode()]

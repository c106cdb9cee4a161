"""Policies, their rules, and the decision for one request (no I/O).

A policy is an ordered list of rules and a default.  The first rule that names the
request's route and method and the client's identity decides.  A rule with
``labels`` only reaches containers that carry them: on a route about one container
(inspect, start, exec, ...) it decides only when the container has them (else the
next rules are tried); on a listing (``containers.list``, ``containers.prune``,
``system.events``) an allowing rule narrows the result to them; a create must carry
them.  Elsewhere a rule with labels never applies.

What depends only on the route and the identity is worked out once, as a
:class:`Plan`, and kept; what depends on the request (the container's labels, the
body) is decided by :meth:`Plan.decide`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import attrs

from dockertw.policy.bodies import CreateLimits, ExecLimits, create_violation, exec_violation
from dockertw.policy.identity import Identity, IdentityMatcher

__all__ = ["Target", "RouteFacts", "Rule", "Policy", "Plan", "Decision", "RequestFacts"]

Labels = tuple[tuple[str, str], ...]
_PLAN_CACHE_SIZE = 4096


class Target(enum.Enum):
    """What a route is about, as far as labels go."""

    NONE = "none"  # no container: labelled rules never apply
    CONTAINER = "container"  # one container (by name, by exec, by query)
    LISTING = "listing"  # many containers or events: narrowed by a label filter
    CREATE = "create"  # a new container: its body's labels


@attrs.frozen(eq=False)
class RouteFacts:
    """A route as the policy sees it: name, method, what it is about, which body
    limits apply (``create``, ``exec`` or none).  Made once per route and kept (plans
    are kept by this object)."""

    name: str
    method: str
    target: Target = Target.NONE
    body: str = ""


@attrs.frozen
class Rule:
    """One ``[[rules]]`` entry; ``index`` is its place in the file (from 1)."""

    index: int
    allow: bool
    routes: tuple[str, ...] = ("*",)
    methods: frozenset[str] | None = None
    identities: IdentityMatcher | None = None
    labels: Labels = ()
    create: CreateLimits | None = None
    exec: ExecLimits | None = None
    message: str = ""

    def names(self, route: RouteFacts) -> bool:
        """Whether the rule covers the route, method and identity-free parts."""
        return ((self.methods is None or route.method in self.methods)
                and any(fnmatchcase(route.name, pattern) for pattern in self.routes))

    def limits(self, route: RouteFacts) -> CreateLimits | ExecLimits | None:
        return {"create": self.create, "exec": self.exec}.get(route.body)


@attrs.frozen
class Decision:
    """The answer for one request: allowed or not, which rule (0: the default), why
    (``reason``; ``message`` is the policy's or rule's own words), and the labels a
    listing is narrowed to."""

    allowed: bool
    rule: int
    reason: str = ""
    message: str = ""
    narrow: Labels = ()
    limits: CreateLimits | ExecLimits | None = None

    @property
    def text(self) -> str:
        """What a refused client is told."""
        return f"{self.reason} ({self.message})" if self.message else self.reason


@attrs.frozen
class RequestFacts:
    """What :meth:`Plan.decide` may need beyond the route and identity."""

    labels: Mapping[str, str] | None = None  # of the container the request is about
    body: Any = None  # the decoded JSON body (create, exec)
    image_names: tuple[str, ...] = ()  # the image a create asks for, and its names


def _has(labels: Mapping[str, str], wanted: Labels) -> bool:
    return all(labels.get(key) == value for key, value in wanted)


def _shown(labels: Labels) -> str:
    return ",".join(f"{key}={value}" for key, value in labels)


def _body_labels(body: Any) -> Mapping[str, str]:
    labels = body.get("Labels") if isinstance(body, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


@attrs.frozen
class Plan:
    """The decision for one route and identity, up to what the request says.

    ``steps`` are labelled rules tried in order against the container's labels;
    ``final`` decides when none holds.
    """

    route: RouteFacts
    steps: tuple[tuple[Labels, Decision], ...]
    final: Decision
    #: The decision when the request changes nothing (the fast path), else ``None``.
    settled: Decision | None = attrs.field(init=False)

    @settled.default
    def _settled(self) -> Decision | None:
        return None if self.steps or self.final.limits is not None else self.final

    @property
    def needs_labels(self) -> bool:
        return bool(self.steps) and self.route.target is Target.CONTAINER

    @property
    def needs_body(self) -> bool:
        return (bool(self.steps) and self.route.target is Target.CREATE) or any(
            decision.limits is not None for decision in self._decisions())

    @property
    def needs_image(self) -> bool:
        return any(isinstance(d.limits, CreateLimits) and d.limits.checks_images
                   for d in self._decisions())

    def _decisions(self) -> Iterable[Decision]:
        yield from (decision for _, decision in self.steps)
        yield self.final

    def decide(self, facts: RequestFacts) -> Decision:
        labels = (_body_labels(facts.body) if self.route.target is Target.CREATE
                  else facts.labels or {})
        chosen = next((decision for wanted, decision in self.steps
                       if _has(labels, wanted)), None)
        if chosen is None:
            chosen = self._unlabelled()
        return self._within_limits(chosen, facts)

    def _unlabelled(self) -> Decision:
        if not self.steps or self.final.allowed or self.final.rule:
            return self.final
        wanted = " or ".join(_shown(labels) for labels, _ in self.steps)
        what = "a create" if self.route.target is Target.CREATE else "a container"
        return attrs.evolve(self.final, reason=f"{self.route.name} needs {what} "
                                               f"labelled {wanted}")

    @staticmethod
    def _within_limits(decision: Decision, facts: RequestFacts) -> Decision:
        limits, body = decision.limits, facts.body
        if not decision.allowed or limits is None or not isinstance(body, Mapping):
            return decision  # a body that is no object is refused by the route itself
        if isinstance(limits, CreateLimits):
            refused = create_violation(body, limits, facts.image_names)
        else:
            refused = exec_violation(body, limits)
        if refused is None:
            return decision
        return attrs.evolve(decision, allowed=False, reason=refused)


@attrs.define(eq=False)
class Policy:
    """A named, ordered set of rules with a default; ``log_only`` reports denials
    without enforcing them."""

    name: str
    rules: tuple[Rule, ...] = ()
    default_allow: bool = False
    message: str = ""
    log_only: bool = False
    _plans: dict[tuple[RouteFacts, frozenset[str]], Plan] = attrs.field(factory=dict,
                                                                        init=False)

    def plan(self, route: RouteFacts, identity: Identity) -> Plan:
        """The plan for ``route`` and ``identity`` (worked out once, then kept)."""
        key = (route, identity.principals)
        found = self._plans.get(key)
        if found is None:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            found = self._plans[key] = self._make_plan(route, identity)
        return found

    def decide(self, route: RouteFacts, identity: Identity,
               facts: RequestFacts = RequestFacts()) -> Decision:
        """The decision for one request (the plan, then what the request says)."""
        plan = self.plan(route, identity)
        return plan.settled or plan.decide(facts)

    def _make_plan(self, route: RouteFacts, identity: Identity) -> Plan:
        steps: list[tuple[Labels, Decision]] = []
        for rule in self.rules:
            if not rule.names(route) or not (
                    rule.identities is None or rule.identities.matches(identity)):
                continue
            if not rule.labels:
                return Plan(route, tuple(steps), self._decision(rule, route))
            if route.target is Target.LISTING and rule.allow:
                return Plan(route, tuple(steps), self._decision(rule, route, rule.labels))
            if route.target in (Target.CONTAINER, Target.CREATE):
                steps.append((rule.labels, self._decision(rule, route)))
        return Plan(route, tuple(steps), self._default(route))

    def _decision(self, rule: Rule, route: RouteFacts, narrow: Labels = ()) -> Decision:
        reason = "" if rule.allow else f"{route.name} is denied by rule {rule.index}"
        limits = rule.limits(route) if rule.allow else None
        return Decision(rule.allow, rule.index, reason, rule.message or self.message,
                        narrow, limits)

    def _default(self, route: RouteFacts) -> Decision:
        if self.default_allow:
            return Decision(True, 0)
        return Decision(False, 0, f"{route.name} is not allowed", self.message)

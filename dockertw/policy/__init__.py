"""Access policies per listener: rules, identities, body limits, decisions.

Pure: request facts in, a decision out; no I/O, no HTTP (the API's gate gathers the
facts and applies the decision).
"""

from dockertw.policy.bodies import CreateLimits, ExecLimits
from dockertw.policy.identity import (
    ANONYMOUS,
    Identity,
    IdentityMatcher,
    certificate_identity,
    peer_identity,
)
from dockertw.policy.loading import PRESETS, PolicyError, parse_policy, preset
from dockertw.policy.rules import (
    Decision,
    Plan,
    Policy,
    RequestFacts,
    RouteFacts,
    Rule,
    Target,
)

__all__ = [
    "ANONYMOUS", "CreateLimits", "Decision", "ExecLimits", "Identity", "IdentityMatcher",
    "PRESETS", "Plan", "Policy", "PolicyError", "RequestFacts", "RouteFacts", "Rule",
    "Target", "certificate_identity", "parse_policy", "peer_identity", "preset",
]

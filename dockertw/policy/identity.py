"""Who a connection is: the principals a policy rule can name.

A client on a TLS listener with a client certificate is ``cn:<subject CN>`` and
``san:<each subject alternative name>``; a client on a UNIX socket is
``uid:<uid>`` and ``gid:<gid>`` (its ``SO_PEERCRED``); anyone else has no principal
(``anonymous``).
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

import attrs

__all__ = ["Identity", "IdentityMatcher", "ANONYMOUS", "certificate_identity",
           "peer_identity"]

_GLOB = frozenset("*?[")


@attrs.frozen(cache_hash=True)
class Identity:
    """The principals of one connection, and how the audit log names it."""

    principals: frozenset[str]
    display: str


ANONYMOUS = Identity(frozenset(), "anonymous")


def certificate_identity(common_name: str | None, alt_names: Iterable[str]) -> Identity:
    """The identity of a verified client certificate."""
    names = tuple(alt_names)
    principals = {f"san:{name}" for name in names}
    if common_name:
        principals.add(f"cn:{common_name}")
    if not principals:
        return ANONYMOUS
    display = f"cn={common_name}" if common_name else f"san={names[0]}"
    return Identity(frozenset(principals), display)


def peer_identity(uid: int, gid: int) -> Identity:
    """The identity of a UNIX socket peer (its credentials when it connected)."""
    return Identity(frozenset({f"uid:{uid}", f"gid:{gid}"}), f"uid={uid},gid={gid}")


@attrs.frozen
class IdentityMatcher:
    """The ``identities`` of a rule: exact principals, glob patterns, ``anonymous``."""

    exact: frozenset[str]
    globs: tuple[str, ...]
    anonymous: bool

    @classmethod
    def of(cls, patterns: Iterable[str]) -> IdentityMatcher:
        patterns = tuple(patterns)
        globs = tuple(p for p in patterns if not _GLOB.isdisjoint(p))
        exact = frozenset(p for p in patterns if p not in globs and p != "anonymous")
        return cls(exact, globs, "anonymous" in patterns)

    def matches(self, identity: Identity) -> bool:
        principals = identity.principals
        if not principals:
            return self.anonymous
        if not self.exact.isdisjoint(principals):
            return True
        return any(fnmatchcase(principal, glob)
                   for glob in self.globs for principal in principals)

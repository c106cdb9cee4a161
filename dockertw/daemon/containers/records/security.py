"""``HostConfig.SecurityOpt`` as moby reads it: seccomp, AppArmor and SELinux label
options, ``no-new-privileges`` and ``writable-cgroups``.

This host has neither AppArmor nor SELinux, so their options are taken and recorded
(``AppArmorProfile`` shows the profile asked for) and change nothing, as on a Docker
host without them.  Seccomp is Docker's: its default profile unless the container is
privileged or asks for ``seccomp=unconfined``; ``seccomp=<profile JSON>`` (what the
CLI sends for a file) replaces it.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from dockertw.errdefs import InvalidParameter
from dockertw.runtime.seccomp import Profile, ProfileError, parse_profile, seccomp_supported
from dockertw.runtime.seccomp_default import DEFAULT_PROFILE

__all__ = ["SecurityOptions", "parse_security_options", "seccomp_profile",
           "apparmor_profile", "SECCOMP_UNCONFINED", "SECCOMP_BUILTIN"]

SECCOMP_UNCONFINED = "unconfined"
SECCOMP_BUILTIN = "builtin"  # the default profile, named (``seccomp=builtin``)
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@attrs.frozen
class SecurityOptions:
    """What ``SecurityOpt`` asks for."""

    no_new_privileges: bool = False
    seccomp: str = ""  # "" (the default), "builtin", "unconfined" or a profile's JSON
    apparmor: str = ""
    labels: tuple[str, ...] = ()
    writable_cgroups: bool | None = None  # None: as the container is privileged or not


def _go_bool(value: str, option: str) -> bool:
    """Go's ``strconv.ParseBool``; moby's message otherwise."""
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(option)}")


def _split(option: str) -> tuple[str, str]:
    """``key=value``, or the deprecated ``key:value``."""
    for separator in ("=", ":"):
        if separator in option:
            key, _, value = option.partition(separator)
            return key, value
    raise InvalidParameter(f"invalid --security-opt 1: {json.dumps(option)}")


def _apply(options: SecurityOptions, option: str) -> SecurityOptions:
    if option == "no-new-privileges":
        return attrs.evolve(options, no_new_privileges=True)
    if option == "writable-cgroups":
        return attrs.evolve(options, writable_cgroups=True)
    if option == "disable":
        return attrs.evolve(options, labels=(*options.labels, "disable"))
    key, value = _split(option)
    if key == "label":
        return attrs.evolve(options, labels=(*options.labels, value))
    if key == "apparmor":
        return attrs.evolve(options, apparmor=value)
    if key == "seccomp":
        return attrs.evolve(options, seccomp=value)
    if key == "no-new-privileges":
        return attrs.evolve(options, no_new_privileges=_go_bool(value, option))
    if key == "writable-cgroups":
        return attrs.evolve(options, writable_cgroups=_go_bool(value, option))
    raise InvalidParameter(f"invalid --security-opt 2: {json.dumps(option)}")


def parse_security_options(value: Any) -> SecurityOptions:
    """``SecurityOpt`` read as moby's ``parseSecurityOpt``; 400 with its messages."""
    if value is None:
        return SecurityOptions()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidParameter("invalid JSON: SecurityOpt must be an array of strings")
    options = SecurityOptions()
    for option in value:
        options = _apply(options, option)
    return options


def _custom(text: str) -> Profile:
    try:
        return parse_profile(text)
    except ProfileError as error:
        raise InvalidParameter(str(error)) from None


def seccomp_profile(options: SecurityOptions, privileged: bool,
                    supported: bool | None = None) -> Profile | None:
    """The profile a container runs with (``None``: no filter), as moby's
    ``WithSeccomp``: none when unconfined; privileged containers only the one they
    name; without kernel support a named profile is an error."""
    wanted = options.seccomp
    custom = wanted not in ("", SECCOMP_BUILTIN)
    if wanted == SECCOMP_UNCONFINED:
        return None
    if privileged:
        return _custom(wanted) if custom else None
    if not (seccomp_supported() if supported is None else supported):
        if custom:
            raise InvalidParameter("seccomp is not enabled in your kernel, cannot run a "
                                   "custom seccomp profile")
        return None
    return _custom(wanted) if custom else DEFAULT_PROFILE


def apparmor_profile(host_config: dict[str, Any]) -> str:
    """``AppArmorProfile`` of inspect: the profile asked for (no AppArmor here)."""
    try:
        return parse_security_options(host_config.get("SecurityOpt")).apparmor
    except InvalidParameter:
        return ""

"""Policies from their TOML text, and the presets ``full``, ``readonly`` and ``none``.

Every key is checked: an unknown key, a route pattern that names no route or a method
no route has is an error, so that a typo never leaves a rule silently doing nothing.
See docs/security.md for the format.
"""

from __future__ import annotations

import grp
import posixpath
import pwd
import tomllib
from collections.abc import Callable, Collection, Mapping
from fnmatch import fnmatchcase
from typing import Any

from dockertw.policy.bodies import CreateLimits, ExecLimits, capability_name
from dockertw.policy.identity import IdentityMatcher
from dockertw.policy.rules import Policy, Rule

__all__ = ["PolicyError", "PRESETS", "preset", "parse_policy", "system_principal"]

PRESETS = ("full", "readonly", "none")

# GET routes that read a container's or an image's files: not "read-only" enough.
_READONLY_EXCEPTIONS = ("containers.export", "containers.archive_get",
                        "containers.archive_head", "images.save", "images.save_all")
_READONLY_MESSAGE = "this listener is read-only"
_NONE_MESSAGE = "this listener serves no API requests"

_POLICY_KEYS = frozenset({"mode", "default", "message", "rules"})
_RULE_KEYS = frozenset({"action", "routes", "methods", "identities", "labels", "create",
                        "exec", "message"})
_CREATE_FLAGS = ("privileged", "host_namespaces", "other_containers", "volume_options",
                 "devices", "unconfined")
_CREATE_KEYS = frozenset({*_CREATE_FLAGS, "bind_prefixes", "capabilities", "images"})
_EXEC_KEYS = frozenset({"privileged", "users"})

Principal = Callable[[str, str], str]


class PolicyError(ValueError):
    """The policy cannot be used; the message says where and why."""


def system_principal(kind: str, name: str) -> str:
    """``user:NAME`` as ``uid:N`` and ``group:NAME`` as ``gid:N``, from the system."""
    try:
        if kind == "user":
            return f"uid:{pwd.getpwnam(name).pw_uid}"
        return f"gid:{grp.getgrnam(name).gr_gid}"
    except KeyError:
        raise PolicyError(f"no {kind} named {name!r}") from None


def preset(name: str) -> Policy:
    """One of :data:`PRESETS`."""
    if name == "full":
        return Policy("full", default_allow=True)
    if name == "none":
        return Policy("none", message=_NONE_MESSAGE)
    if name == "readonly":
        rules = (Rule(1, False, _READONLY_EXCEPTIONS),
                 Rule(2, True, ("*",), frozenset({"GET", "HEAD", "OPTIONS"})))
        return Policy("readonly", rules, message=_READONLY_MESSAGE)
    raise PolicyError(f"unknown policy preset {name!r}")


def parse_policy(text: str, name: str, routes: Collection[str], methods: Collection[str],
                 principal: Principal = system_principal) -> Policy:
    """The policy in the TOML ``text`` (called ``name``), checked against the routes
    and methods the daemon serves."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{name}: not valid TOML: {error}") from None
    try:
        return _policy(document, name, _Names(routes, methods, principal))
    except PolicyError as error:
        raise PolicyError(f"{name}: {error}") from None


class _Names:
    """What rules may name: routes, methods, and users and groups by name."""

    def __init__(self, routes: Collection[str], methods: Collection[str],
                 principal: Principal) -> None:
        self.routes = routes
        self.methods = methods
        self.principal = principal

    def check_route(self, pattern: str) -> None:
        if not any(fnmatchcase(route, pattern) for route in self.routes):
            raise PolicyError(f"the route pattern {pattern!r} names no route")

    def check_method(self, method: str) -> None:
        if method not in self.methods:
            raise PolicyError(f"no route has the method {method!r}")


def _unknown(table: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    extra = sorted(set(table) - known)
    if extra:
        raise PolicyError(f"{where}: unknown key {extra[0]!r}")


def _policy(document: Mapping[str, Any], name: str, names: _Names) -> Policy:
    _unknown(document, _POLICY_KEYS, "the policy")
    mode = _choice(document.get("mode", "enforce"), ("enforce", "log-only"), "mode")
    default = _choice(document.get("default", "deny"), ("allow", "deny"), "default")
    rules = document.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise PolicyError("rules must be an array of tables ([[rules]])")
    return Policy(name, tuple(_rule(table, index, names)
                              for index, table in enumerate(rules, 1)),
                  default_allow=default == "allow",
                  message=_text(document.get("message", ""), "message"),
                  log_only=mode == "log-only")


def _choice(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        raise PolicyError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"{key} must be a string")
    return value


def _strings(table: Mapping[str, Any], key: str, default: list[str]) -> list[str]:
    value = table.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{key} must be a list of strings")
    return value


def _flag(table: Mapping[str, Any], key: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{key} must be true or false")
    return value


def _rule(table: Mapping[str, Any], index: int, names: _Names) -> Rule:
    where = f"rule {index}"
    try:
        _unknown(table, _RULE_KEYS, where)
        return _checked_rule(table, index, names)
    except PolicyError as error:
        if str(error).startswith(where):
            raise
        raise PolicyError(f"{where}: {error}") from None


def _checked_rule(table: Mapping[str, Any], index: int, names: _Names) -> Rule:
    allow = _choice(table.get("action"), ("allow", "deny"), "action") == "allow"
    routes = _strings(table, "routes", ["*"])
    for pattern in routes:
        names.check_route(pattern)
    methods = _methods(table, names)
    identities = _identities(table, names)
    create = _limits(table, "create", routes, "containers.create", _create_limits)
    exec_ = _limits(table, "exec", routes, "exec.create", _exec_limits)
    return Rule(index, allow, tuple(routes), methods, identities, _labels(table),
                create, exec_, _text(table.get("message", ""), "message"))


def _methods(table: Mapping[str, Any], names: _Names) -> frozenset[str] | None:
    if "methods" not in table:
        return None
    methods = [method.upper() for method in _strings(table, "methods", [])]
    for method in methods:
        names.check_method(method)
    return frozenset(methods)


def _identities(table: Mapping[str, Any], names: _Names) -> IdentityMatcher | None:
    if "identities" not in table:
        return None
    return IdentityMatcher.of(_principal(pattern, names)
                              for pattern in _strings(table, "identities", []))


def _principal(pattern: str, names: _Names) -> str:
    kind, colon, value = pattern.partition(":")
    if pattern == "anonymous":
        return pattern
    if not colon or not value or kind not in ("cn", "san", "uid", "gid", "user", "group"):
        raise PolicyError(f"bad identity {pattern!r}: expected cn:, san:, uid:, gid:, "
                          "user:, group: or anonymous")
    if kind in ("uid", "gid") and not value.isdigit():
        raise PolicyError(f"bad identity {pattern!r}: {kind} must be a number")
    if kind in ("user", "group"):
        return names.principal(kind, value)
    return pattern


def _labels(table: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    labels = table.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise PolicyError("labels must be a table of strings, e.g. { team = \"a\" }")
    return tuple(sorted(labels.items()))


def _limits(table: Mapping[str, Any], key: str, routes: list[str], route: str,
            build: Callable[[Mapping[str, Any]], Any]) -> Any:
    if key not in table:
        return None
    if not isinstance(table[key], dict):
        raise PolicyError(f"{key} must be a table")
    if not any(fnmatchcase(route, pattern) for pattern in routes):
        raise PolicyError(f"a {key} table needs the rule to cover {route}")
    return build(table[key])


def _create_limits(table: Mapping[str, Any]) -> CreateLimits:
    _unknown(table, _CREATE_KEYS, "create")
    prefixes = _strings(table, "bind_prefixes", [])
    if not all(prefix.startswith("/") for prefix in prefixes):
        raise PolicyError("bind_prefixes must be absolute paths")
    capabilities = [capability_name(name) for name in _strings(table, "capabilities", [])]
    return CreateLimits(
        **{flag: _flag(table, flag) for flag in _CREATE_FLAGS},
        bind_prefixes=tuple(posixpath.normpath(prefix) for prefix in prefixes),
        capabilities=frozenset(capabilities),
        images=tuple(_strings(table, "images", ["*"])))


def _exec_limits(table: Mapping[str, Any]) -> ExecLimits:
    _unknown(table, _EXEC_KEYS, "exec")
    return ExecLimits(privileged=_flag(table, "privileged"),
                      users=tuple(_strings(table, "users", ["*"])))

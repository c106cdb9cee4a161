"""Seccomp profiles in Docker's format and their OCI form for one container.

A Docker profile lists syscall rules that apply only under conditions: the
container's capabilities (``includes``/``excludes`` ``caps``), the host's
architecture (``arches``) and kernel (``minKernel``).  :func:`oci_seccomp` keeps
the rules whose conditions hold and answers the OCI ``linux.seccomp`` object, as
moby's ``setupSeccomp`` does; :func:`parse_profile` reads a profile a client sent
(``--security-opt seccomp=<file>``: the CLI sends the file's JSON).  Docker's own
default profile is data in :mod:`dockertw.runtime.seccomp_default`.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

__all__ = ["Arg", "Filter", "Rule", "Profile", "ProfileError", "parse_profile",
           "oci_seccomp", "native_arch", "kernel_release", "seccomp_supported"]

# ``platform.machine()`` -> the architecture names profiles use in ``arches``.
_MACHINE_ARCHES = {
    "x86_64": "amd64", "amd64": "amd64", "i386": "x86", "i686": "x86", "aarch64": "arm64",
    "arm64": "arm64", "armv7l": "arm", "armv6l": "arm", "ppc64le": "ppc64le",
    "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64",
    "loongarch64": "loong64",
}
# Those names -> the libseccomp architecture an ``archMap`` entry is chosen by.
_SECCOMP_ARCHES = {
    "x86": "SCMP_ARCH_X86", "amd64": "SCMP_ARCH_X86_64", "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64", "loong64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64", "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE", "riscv64": "SCMP_ARCH_RISCV64",
    "s390x": "SCMP_ARCH_S390X",
}


class ProfileError(ValueError):
    """A profile that cannot be read or applied (the message is Docker's)."""


class _DecodeError(ProfileError):
    """The profile's JSON does not have the expected shape."""


@attrs.frozen
class Arg:
    """A condition on one syscall argument (OCI ``LinuxSeccompArg``)."""

    index: int
    value: int
    op: str
    value_two: int = 0

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"index": self.index, "value": self.value}
        if self.value_two:
            shown["valueTwo"] = self.value_two
        shown["op"] = self.op
        return shown


@attrs.frozen
class Filter:
    """When a rule applies: capabilities held, the host's architecture and kernel."""

    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None

    def _kernel_reached(self, kernel: tuple[int, int]) -> bool:
        return self.min_kernel is not None and kernel >= self.min_kernel

    def holds(self, arch: str, caps: frozenset[str], kernel: tuple[int, int]) -> bool:
        """``includes``: every condition given is met."""
        return ((not self.arches or arch in self.arches)
                and all(cap in caps for cap in self.caps)
                and (self.min_kernel is None or self._kernel_reached(kernel)))

    def excludes(self, arch: str, caps: frozenset[str], kernel: tuple[int, int]) -> bool:
        """``excludes``: any condition given is met."""
        return (arch in self.arches or any(cap in caps for cap in self.caps)
                or self._kernel_reached(kernel))


@attrs.frozen
class Rule:
    """Syscalls, the action taken on them, and when the rule is part of the filter."""

    names: tuple[str, ...]
    action: str = "SCMP_ACT_ALLOW"
    args: tuple[Arg, ...] = ()
    errno: int | None = None
    includes: Filter = Filter()
    excludes: Filter = Filter()

    def applies(self, arch: str, caps: frozenset[str], kernel: tuple[int, int]) -> bool:
        return (not self.excludes.excludes(arch, caps, kernel)
                and self.includes.holds(arch, caps, kernel))

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"names": list(self.names), "action": self.action}
        if self.errno is not None:
            shown["errnoRet"] = self.errno
        if self.args:
            shown["args"] = [arg.to_json() for arg in self.args]
        return shown


@attrs.frozen
class Profile:
    """A seccomp profile in Docker's terms."""

    default_action: str
    rules: tuple[Rule, ...] = ()
    default_errno: int | None = None
    arch_map: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (arch, its sub-arches)
    architectures: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    listener_path: str = ""
    listener_metadata: str = ""


def native_arch(machine: str | None = None) -> str:
    """The host's architecture as profiles name it (``amd64``, ``arm64``...)."""
    machine = machine or platform.machine()
    return _MACHINE_ARCHES.get(machine, machine)


def kernel_release(release: str | None = None) -> tuple[int, int]:
    """``(6, 1)`` for ``6.1.0-18-amd64``: the version and major revision only."""
    text = release or os.uname().release
    parts = text.split("-", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return (0, 0)


def seccomp_supported(status_path: str = "/proc/self/status") -> bool:
    """Whether the kernel has seccomp (its ``Seccomp:`` status line)."""
    try:
        with open(status_path) as status:
            return any(line.startswith("Seccomp:") for line in status)
    except OSError:
        return False


def _architectures(profile: Profile, arch: str) -> list[str]:
    if profile.arch_map and profile.architectures:
        raise ProfileError("both 'architectures' and 'archMap' are specified in the "
                           "seccomp profile, use either 'architectures' or 'archMap'")
    wanted = _SECCOMP_ARCHES.get(arch)
    for main, subs in profile.arch_map:
        if main == wanted:
            return [main, *subs]
    return list(profile.architectures)


def oci_seccomp(profile: Profile, capabilities: Sequence[str], *, arch: str | None = None,
                kernel: tuple[int, int] | None = None) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` of ``profile`` for a container whose bounding set is
    ``capabilities`` (``None``: the profile filters nothing, as moby reads it)."""
    if not profile.default_action and not profile.rules:
        return None
    arch = arch or native_arch()
    kernel = kernel or kernel_release()
    held = frozenset(capabilities)
    seccomp: dict[str, Any] = {"defaultAction": profile.default_action}
    if profile.default_errno is not None:
        seccomp["defaultErrnoRet"] = profile.default_errno
    architectures = _architectures(profile, arch)
    if architectures:
        seccomp["architectures"] = architectures
    for key, value in (("flags", list(profile.flags)), ("listenerPath", profile.listener_path),
                       ("listenerMetadata", profile.listener_metadata)):
        if value:
            seccomp[key] = value
    seccomp["syscalls"] = [rule.to_json() for rule in profile.rules
                           if rule.applies(arch, held, kernel)]
    return seccomp


# -- reading Docker's JSON format ------------------------------------------------------


def _fields(value: Any, what: str) -> dict[str, Any]:
    """A JSON object with its keys folded to lower case (Go matches them so)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _DecodeError(f"json: cannot unmarshal {type(value).__name__} into {what}")
    return {str(key).lower(): item for key, item in value.items()}


def _text(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _DecodeError(f"json: cannot unmarshal {json.dumps(value)} into {what} of "
                           "type string")
    return value


def _number(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _DecodeError(f"json: cannot unmarshal {json.dumps(value)} into {what} of "
                           "type uint")
    return value


def _texts(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _DecodeError(f"json: cannot unmarshal {json.dumps(value)} into {what} of "
                           "type []string")
    return tuple(_text(item, what) for item in value)


def _kernel(value: Any) -> tuple[int, int] | None:
    text = _text(value, "minKernel")
    if not text:
        return None
    parts = text.split(".")
    expected = f'invalid kernel version: "{text}", expected "<kernel>.<major>"'
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise _DecodeError(expected)
    version = int(parts[0]), int(parts[1])
    if version == (0, 0):
        raise _DecodeError(expected + ": version cannot be 0.0")
    return version


def _filter(value: Any) -> Filter:
    fields = _fields(value, "Filter")
    return Filter(caps=_texts(fields.get("caps"), "caps"),
                  arches=_texts(fields.get("arches"), "arches"),
                  min_kernel=_kernel(fields.get("minkernel")))


def _arg(value: Any) -> Arg:
    fields = _fields(value, "LinuxSeccompArg")
    return Arg(index=_number(fields.get("index", 0), "index"),
               value=_number(fields.get("value", 0), "value"),
               value_two=_number(fields.get("valuetwo", 0), "valueTwo"),
               op=_text(fields.get("op"), "op"))


def _rule(value: Any) -> Rule:
    fields = _fields(value, "Syscall")
    name = _text(fields.get("name"), "name")
    names = _texts(fields.get("names"), "names")
    if name and names:
        raise ProfileError("both 'name' and 'names' are specified in the seccomp profile, "
                           "use either 'name' or 'names'")
    args = fields.get("args")
    if args is not None and not isinstance(args, list):
        raise _DecodeError("json: cannot unmarshal args into []LinuxSeccompArg")
    errno = fields.get("errnoret")
    return Rule(names=names or ((name,) if name else ()),
                action=_text(fields.get("action"), "action"),
                args=tuple(_arg(arg) for arg in args or ()),
                errno=None if errno is None else _number(errno, "errnoRet"),
                includes=_filter(fields.get("includes")),
                excludes=_filter(fields.get("excludes")))


def _arch_map(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _DecodeError("json: cannot unmarshal archMap into []Architecture")
    entries = [_fields(entry, "Architecture") for entry in value]
    return tuple((_text(entry.get("architecture"), "architecture"),
                  _texts(entry.get("subarchitectures"), "subArchitectures"))
                 for entry in entries)


def _profile(document: Mapping[str, Any]) -> Profile:
    fields = _fields(document, "Seccomp")
    rules = fields.get("syscalls")
    if rules is not None and not isinstance(rules, list):
        raise _DecodeError("json: cannot unmarshal syscalls into []*Syscall")
    errno = fields.get("defaulterrnoret")
    return Profile(
        default_action=_text(fields.get("defaultaction"), "defaultAction"),
        default_errno=None if errno is None else _number(errno, "defaultErrnoRet"),
        arch_map=_arch_map(fields.get("archmap")),
        architectures=_texts(fields.get("architectures"), "architectures"),
        rules=tuple(_rule(rule) for rule in rules or ()),
        flags=_texts(fields.get("flags"), "flags"),
        listener_path=_text(fields.get("listenerpath"), "listenerPath"),
        listener_metadata=_text(fields.get("listenermetadata"), "listenerMetadata"))


def parse_profile(text: str) -> Profile:
    """A profile in Docker's JSON format; :class:`ProfileError` with Docker's message
    (``Decoding seccomp profile failed: ...`` when it is not such a document)."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict):
            raise _DecodeError("json: cannot unmarshal the profile into Seccomp: not an "
                               "object")
        profile = _profile(document)
    except (_DecodeError, json.JSONDecodeError) as error:
        raise ProfileError(f"Decoding seccomp profile failed: {error}") from None
    _architectures(profile, native_arch())  # refuses both kinds of architecture lists
    return profile

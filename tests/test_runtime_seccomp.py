"""Seccomp profiles: Docker's default as data, conditions, the OCI form, parsing, and
which profile a container gets from its ``SecurityOpt``."""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest

from dockertw.daemon.containers.records.security import (
    SecurityOptions,
    apparmor_profile,
    parse_security_options,
    seccomp_profile,
)
from dockertw.errdefs import InvalidParameter
from dockertw.runtime.seccomp import (
    ProfileError,
    kernel_release,
    native_arch,
    oci_seccomp,
    parse_profile,
)
from dockertw.runtime.seccomp_default import DEFAULT_PROFILE
from dockertw.runtime.spec import DEFAULT_CAPABILITIES

_CLONE_NAMESPACES = 0x7E020000


def _oci(caps: tuple[str, ...] = DEFAULT_CAPABILITIES, arch: str = "amd64",
         kernel: tuple[int, int] = (6, 1)) -> dict[str, Any]:
    seccomp = oci_seccomp(DEFAULT_PROFILE, caps, arch=arch, kernel=kernel)
    assert seccomp is not None
    return seccomp


def _allowed(seccomp: dict[str, Any]) -> set[str]:
    """Syscalls allowed without a condition on their arguments."""
    return {name for rule in seccomp["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
            and "args" not in rule for name in rule["names"]}


def _rules_for(seccomp: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in seccomp["syscalls"] if name in rule["names"]]


def test_default_profile_for_a_default_container():
    seccomp = _oci()
    assert (seccomp["defaultAction"], seccomp["defaultErrnoRet"]) == \
        ("SCMP_ACT_ERRNO", errno.EPERM)
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(seccomp)
    assert {"read", "write", "execve", "arch_prctl", "modify_ldt", "ptrace",
            "chroot"} <= allowed  # chroot: CAP_SYS_CHROOT is a default capability
    blocked = {"unshare", "setns", "mount", "keyctl", "add_key", "reboot", "bpf", "kexec_load",
               "open_by_handle_at", "clock_settime", "syslog", "userfaultfd"}
    assert not blocked & allowed
    assert len(allowed) > 350
    clone = _rules_for(seccomp, "clone")
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [
        {"index": 0, "value": _CLONE_NAMESPACES, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert _rules_for(seccomp, "clone3") == [
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}]
    assert [rule["args"][0] for rule in _rules_for(seccomp, "socket")] == [
        {"index": 0, "value": 38, "op": "SCMP_CMP_LT"},
        {"index": 0, "value": 39, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 40, "op": "SCMP_CMP_GT"}]
    assert [rule["args"][0]["value"] for rule in _rules_for(seccomp, "personality")] == \
        [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]


def test_capabilities_open_their_syscalls():
    seccomp = _oci((*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_TIME", "CAP_SYSLOG"))
    allowed = _allowed(seccomp)
    assert {"unshare", "setns", "mount", "clone", "clone3", "clock_settime", "syslog"} <= \
        allowed
    assert all(rule["action"] == "SCMP_ACT_ALLOW" for rule in _rules_for(seccomp, "clone3"))
    assert "reboot" not in allowed and "keyctl" not in allowed


def test_architecture_and_kernel_conditions():
    arm = _oci(arch="arm64")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in _allowed(arm) and "set_tls" in _allowed(arm)
    s390 = _oci(arch="s390x")
    assert [rule["args"][0]["index"] for rule in _rules_for(s390, "clone")] == [1]
    old = _oci(kernel=(4, 4))
    assert [rule["names"] for rule in old["syscalls"] if "ptrace" in rule["names"]] == []
    unknown = _oci(arch="sparc64")
    assert "architectures" not in unknown


def test_host_facts():
    assert native_arch("x86_64") == "amd64" and native_arch("aarch64") == "arm64"
    assert kernel_release("6.1.0-18-amd64") == (6, 1)
    assert kernel_release("5.15.0") == (5, 15) and kernel_release("junk") == (0, 0)


def test_parse_a_profile_in_dockers_format():
    text = json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": None}],
        "syscalls": [
            {"name": "read", "action": "SCMP_ACT_ALLOW"},
            {"Names": ["write"], "Action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 2, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"], "minKernel": "4.8"}},
            {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"arches": ["arm64"]}}],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"], "unknownField": True})
    seccomp = oci_seccomp(parse_profile(text), DEFAULT_CAPABILITIES, arch="amd64",
                          kernel=(5, 10))
    assert seccomp == {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64"], "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [
                {"index": 1, "value": 2, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}
    assert oci_seccomp(parse_profile("{}"), ()) is None


@pytest.mark.parametrize(("text", "message"), [
    ("not json", "Decoding seccomp profile failed: "),
    ('["a"]', "Decoding seccomp profile failed: "),
    ('{"syscalls": {}}', "Decoding seccomp profile failed: "),
    ('{"defaultAction": 1}', "Decoding seccomp profile failed: "),
    ('{"syscalls": [{"names": ["a"], "includes": {"minKernel": "4"}}]}',
     'invalid kernel version: "4", expected "<kernel>.<major>"'),
    ('{"syscalls": [{"names": ["a"], "includes": {"minKernel": "0.0"}}]}',
     "version cannot be 0.0"),
    ('{"syscalls": [{"name": "a", "names": ["b"]}]}',
     "both 'name' and 'names' are specified in the seccomp profile"),
    ('{"architectures": ["SCMP_ARCH_X86"], "archMap": '
     '[{"architecture": "SCMP_ARCH_X86_64"}]}',
     "both 'architectures' and 'archMap' are specified in the seccomp profile"),
])
def test_bad_profiles(text: str, message: str):
    with pytest.raises(ProfileError, match="^.*" + message.replace("(", r"\(")):
        parse_profile(text)


def test_security_options_as_moby_parses_them():
    parsed = parse_security_options([
        "no-new-privileges", "apparmor=unconfined", "label:disable", "disable",
        "seccomp=unconfined", "writable-cgroups=false"])
    assert parsed == SecurityOptions(no_new_privileges=True, seccomp="unconfined",
                                     apparmor="unconfined", labels=("disable", "disable"),
                                     writable_cgroups=False)
    assert parse_security_options(["no-new-privileges=true", "no-new-privileges=0"]) == \
        SecurityOptions()
    for option, message in (("bogus", 'invalid --security-opt 1: "bogus"'),
                            ("bogus=1", 'invalid --security-opt 2: "bogus=1"'),
                            ("no-new-privileges=yes",
                             'invalid --security-opt 2: "no-new-privileges=yes"')):
        with pytest.raises(InvalidParameter, match=message):
            parse_security_options([option])
    with pytest.raises(InvalidParameter):
        parse_security_options("seccomp=unconfined")
    assert apparmor_profile({"SecurityOpt": ["apparmor=p1"]}) == "p1"
    assert apparmor_profile({"SecurityOpt": None}) == ""


def test_which_profile_a_container_gets():
    custom = json.dumps({"defaultAction": "SCMP_ACT_LOG"})

    def chosen(seccomp: str, privileged: bool = False, supported: bool = True) -> Any:
        return seccomp_profile(SecurityOptions(seccomp=seccomp), privileged, supported)

    assert chosen("") is DEFAULT_PROFILE and chosen("builtin") is DEFAULT_PROFILE
    assert chosen("unconfined") is None
    assert chosen("", privileged=True) is None
    assert chosen(custom, privileged=True).default_action == "SCMP_ACT_LOG"
    assert chosen(custom).default_action == "SCMP_ACT_LOG"
    assert chosen("", supported=False) is None
    with pytest.raises(InvalidParameter, match="seccomp is not enabled in your kernel"):
        chosen(custom, supported=False)
    with pytest.raises(InvalidParameter, match="Decoding seccomp profile failed"):
        chosen("{")

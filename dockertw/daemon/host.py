"""Facts about the host the daemon runs on, read once at start-up."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

import attrs

from dockertw.runtime.rootcheck import chrooted
from dockertw.runtime.seccomp import seccomp_supported

__all__ = ["HostFacts", "read_host_facts", "go_arch"]

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def go_arch(machine: str) -> str:
    """The architecture name Docker reports (Go's ``GOARCH``) for ``uname -m``."""
    return _GO_ARCH.get(machine, machine)


@attrs.frozen
class HostFacts:
    hostname: str
    kernel_version: str
    machine: str
    operating_system: str
    os_version: str
    cpus: int
    mem_total: int
    cgroup_version: str
    ipv4_forwarding: bool
    seccomp: bool = False  # the kernel filters syscalls (containers get Docker's profile)
    chrooted: bool = False  # / is not the mount namespace's root (docker exec breaks)


def _os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    return fields


def _mem_total(path: Path = Path("/proc/meminfo")) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cgroup_version(root: Path = Path("/sys/fs/cgroup")) -> str:
    return "2" if (root / "cgroup.controllers").exists() else "1"


def _ipv4_forwarding(path: Path = Path("/proc/sys/net/ipv4/ip_forward")) -> bool:
    try:
        return path.read_text().strip() == "1"
    except OSError:
        return False


def read_host_facts() -> HostFacts:
    """Read the facts; cheap file reads and one short fork (:func:`chrooted`)."""
    release = _os_release()
    uname = platform.uname()
    return HostFacts(
        hostname=socket.gethostname(),
        kernel_version=uname.release,
        machine=uname.machine,
        operating_system=release.get("PRETTY_NAME", "Linux"),
        os_version=release.get("VERSION_ID", ""),
        cpus=os.cpu_count() or 1,
        mem_total=_mem_total(),
        cgroup_version=_cgroup_version(),
        ipv4_forwarding=_ipv4_forwarding(),
        seccomp=seccomp_supported(),
        chrooted=chrooted(),
    )

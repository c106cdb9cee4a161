"""Ask the OCI runtime binary what it is, once, before the reactor runs."""

from __future__ import annotations

import os
import shutil
import subprocess

import attrs

__all__ = ["RuntimeInfo", "parse_version_output", "probe_runtime"]


@attrs.frozen
class RuntimeInfo:
    name: str
    path: str
    version: str = ""
    commit: str = ""

    @property
    def found(self) -> bool:
        return bool(self.version)


def parse_version_output(name: str, path: str, output: str) -> RuntimeInfo:
    """Read ``runc --version`` or ``crun --version``: a version line, then ``key: value``."""
    version, commit = "", ""
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if line.startswith(f"{name} version "):
            version = line.split(" version ", 1)[1].strip()
        elif sep and key.strip() == "commit":
            commit = value.strip()
    return RuntimeInfo(name=name, path=path, version=version, commit=commit)


def probe_runtime(binary: str, timeout: float = 10.0) -> RuntimeInfo:
    """Run ``BINARY --version`` once at start-up; a missing or broken binary has no version."""
    name = os.path.basename(binary)
    path = shutil.which(binary)
    if path is None:
        return RuntimeInfo(name=name, path=binary)
    try:
        done = subprocess.run([path, "--version"], capture_output=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return RuntimeInfo(name=name, path=path)
    return parse_version_output(name, path, done.stdout.decode("utf-8", "replace"))

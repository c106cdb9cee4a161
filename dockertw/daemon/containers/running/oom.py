"""How many processes of a cgroup the kernel killed for lack of memory (blocking reads:
call from a worker thread)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["oom_kills"]

_ROOT = Path("/sys/fs/cgroup")


def oom_kills(cgroup: str, root: Path = _ROOT) -> int:
    """``oom_kill`` of the cgroup's ``memory.events`` (v2) or ``memory.oom_control``
    (v1); 0 when neither can be read."""
    relative = cgroup.strip("/")
    for path in (root / relative / "memory.events",
                 root / "memory" / relative / "memory.oom_control"):
        try:
            text = path.read_text()
        except OSError:
            continue
        return _count(text)
    return 0


def _count(text: str) -> int:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0

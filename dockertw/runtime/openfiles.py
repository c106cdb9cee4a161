"""The daemon's limit of open files, raised as Go's runtime raises dockerd's.

Every connection holds a descriptor: thousands of clients need more than the usual
soft limit of 1024.  Since Go 1.19 a Go program (dockerd, containerd) starts by
raising its soft ``RLIMIT_NOFILE`` to the hard limit; so does the daemon.  Processes
it starts inherit the raised limit (containers without ``--ulimit nofile`` too, as
under Docker 20.10).
"""

from __future__ import annotations

import resource

__all__ = ["raise_open_files_limit"]


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit if it can; returns the
    soft limit before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (OSError, ValueError):
        return soft, soft
    return soft, hard

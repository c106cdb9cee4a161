"""``docker top``: the host's ``ps`` output, kept to the container's processes.

The parsing is moby's: the header's ``PID`` column finds each row's pid, the last
column (the command) keeps its spaces.  Pure functions: the caller runs ``ps`` and
asks the runtime for the container's pids.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dockertw.errdefs import System

__all__ = ["ps_arguments", "filter_ps_output"]


def ps_arguments(ps_args: str) -> list[str]:
    """``ps_args`` as ``ps`` arguments (default ``-ef``, as Docker)."""
    return (ps_args or "-ef").split()


def filter_ps_output(output: str, pids: Collection[int]) -> dict[str, Any]:
    """``{"Titles": [...], "Processes": [[...], ...]}`` for the rows of ``pids``."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise System("Error running ps: no output")
    titles = lines[0].split()
    if "PID" not in titles:
        raise System("Couldn't find PID field in ps output")
    column = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        try:
            pid = int(fields[column])
        except (IndexError, ValueError) as error:
            raise System(f"Unexpected pid '{fields[column] if len(fields) > column else ''}'"
                         f": {error}") from None
        if pid in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}

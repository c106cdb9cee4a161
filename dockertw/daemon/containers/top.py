"""``docker top``: the host's ``ps`` output, restricted to a container's processes.

:func:`parse_ps_output` is sans-IO (ps output and PIDs in, Docker's answer out);
:func:`run_ps` runs ``ps`` through the reactor.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue

from dockertw.errdefs import InvalidParameter, System

__all__ = ["ps_argv", "parse_ps_output", "run_ps"]

_FIELD_ALIAS = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def ps_argv(ps_args: str) -> list[str]:
    """The arguments of ``ps`` (default ``-ef``); renaming a column to ``PID`` is
    refused unless it is the ``pid`` column, as dockerd does."""
    ps_args = ps_args or "-ef"
    for key, value in _FIELD_ALIAS.findall(" " + ps_args):
        if key != "pid":
            raise InvalidParameter(f'specifying "{key}={value}" is not allowed')
    return [part for part in ps_args.split(" ") if part]


def _row(fields: list[str], columns: int) -> list[str]:
    """Fields beyond the header's count are the last column's (a command line)."""
    return [*fields[:columns - 1], " ".join(fields[columns - 1:])]


def parse_ps_output(output: bytes, pids: Collection[int]) -> dict[str, Any]:
    """``{"Titles": [...], "Processes": [[...]]}``: the rows whose PID is in ``pids``
    (and thread rows, PID ``-``, that follow one of them)."""
    lines = output.decode("utf-8", "replace").split("\n")
    titles = lines[0].split()
    if "PID" not in titles:
        raise System("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes: list[list[str]] = []
    kept = False
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        if fields[pid_index] == "-":
            if kept:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise System(f"Unexpected pid '{fields[pid_index]}'") from None
        kept = pid in pids
        if kept:
            processes.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": processes}


async def run_ps(argv: list[str], reactor: Any = None) -> bytes:
    """The output of ``ps argv`` (500 ``Error running ps: ...`` when it fails)."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        out, err, code = await getProcessOutputAndValue("ps", argv, env=env,
                                                        reactor=reactor)
    except Exception as error:  # noqa: BLE001 - a spawn error or a signal (a tuple)
        raise System(f"Error running ps: {error}") from None
    if code != 0:
        first = err.decode("utf-8", "replace").strip().split("\n")[0]
        raise System(f"Error running ps: {first or f'exit status {code}'}")
    return bytes(out)

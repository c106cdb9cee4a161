"""``docker top``: the host's ``ps`` output, restricted to a container's processes.

:func:`parse_ps_output` is sans-IO (ps output and PIDs in, Docker's answer out);
:func:`run_ps` runs ``ps`` through the reactor.  As moby's ``daemon/top_unix.go``
(20.10): the arguments are split on single spaces, ``-q<pids>`` is tried first and
dropped when ``ps`` refuses it, errors are plain 500s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue

from dockertw.errdefs import System

__all__ = ["ps_argv", "parse_ps_output", "run_ps"]

_FIELD_ALIAS = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


def ps_argv(ps_args: str) -> list[str]:
    """The arguments of ``ps`` (default ``-ef``, split as Go's ``strings.Split``: two
    spaces make an empty argument); renaming a column to ``PID`` is refused unless it
    is the ``pid`` column, with dockerd's plain (500) error."""
    ps_args = ps_args or "-ef"
    for key, value in _FIELD_ALIAS.findall(ps_args):
        if key != "pid":
            raise System(f'specifying "{key}={value}" is not allowed')
    return ps_args.split(" ")


def _row(fields: list[str], columns: int) -> list[str]:
    """Fields beyond the header's count are the last column's (a command line)."""
    return [*fields[:columns - 1], " ".join(fields[columns - 1:])]


def parse_ps_output(output: bytes, pids: Collection[int]) -> dict[str, Any]:
    """``{"Processes": [[...]], "Titles": [...]}`` (moby's order; ``Processes`` is
    ``null`` without rows): the rows whose PID is in ``pids`` (and thread rows, PID
    ``-``, that follow one of them)."""
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
            raise System(f"Unexpected pid '{fields[pid_index]}': strconv.Atoi: parsing "
                         f'"{fields[pid_index]}": invalid syntax') from None
        kept = pid in pids
        if kept:
            processes.append(_row(fields, len(titles)))
    return {"Processes": processes or None, "Titles": titles}


async def _ps(argv: list[str], reactor: Any) -> tuple[bytes, bytes, int]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    try:
        out, err, code = await getProcessOutputAndValue("ps", argv, env=env,
                                                        reactor=reactor)
    except Exception as error:  # noqa: BLE001 - a spawn error or a signal (a tuple)
        return b"", str(error).encode(), 1
    return bytes(out), bytes(err), code


async def run_ps(argv: list[str], pids: Collection[int], reactor: Any = None) -> bytes:
    """The output of ``ps argv -q<pids>``, or of ``ps argv`` when ``ps`` refuses ``-q``
    (forest listings); 500 ``ps: <its first error line>`` when that fails too."""
    out, err, code = await _ps([*argv, "-q" + ",".join(map(str, sorted(pids)))], reactor)
    if code != 0:
        out, err, code = await _ps(argv, reactor)
    if code != 0:
        first = err.decode("utf-8", "replace").split("\n")[0]
        raise System(f"ps: {first or f'exit status {code}'}")
    return out

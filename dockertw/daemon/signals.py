"""Signal names and numbers as Docker reads them (moby ``pkg/signal.ParseSignal``)."""

from __future__ import annotations

import re
import signal

from dockertw.errdefs import InvalidParameter

__all__ = ["SIGNALS", "parse_signal"]

_NUMBER = re.compile(r"[+-]?[0-9]+")


def _signal_table() -> dict[str, int]:
    table = {member.name.removeprefix("SIG"): int(member) for member in signal.Signals
             if not member.name.startswith("SIG_")}
    low, high = int(signal.SIGRTMIN), int(signal.SIGRTMAX)
    for offset in range(1, (high - low) // 2 + 1):
        table[f"RTMIN+{offset}"] = low + offset
    for offset in range(1, (high - low) - (high - low) // 2):
        table[f"RTMAX-{offset}"] = high - offset
    table.update(CLD=int(signal.SIGCHLD), IOT=int(signal.SIGABRT), POLL=int(signal.SIGIO))
    return table


#: Docker's Linux signal names (without ``SIG``) and their numbers.
SIGNALS: dict[str, int] = _signal_table()


def parse_signal(raw: str) -> int:
    """A signal number from ``9``, ``KILL`` or ``SIGKILL`` (any case); else 400
    ``Invalid signal: RAW``."""
    if _NUMBER.fullmatch(raw):
        if not 0 < int(raw) <= int(signal.SIGRTMAX):  # the kernel has no other
            raise InvalidParameter(f"Invalid signal: {raw}")
        return int(raw)
    found = SIGNALS.get(raw.upper().removeprefix("SIG"))
    if found is None:
        raise InvalidParameter(f"Invalid signal: {raw}")
    return found

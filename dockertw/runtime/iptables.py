"""``iptables-restore`` and ``iptables-save``: rules changed in one transaction each.

The daemon writes only its own chains and the jumps into them (see
:mod:`dockertw.daemon.networks.firewall`); every change is one ``iptables-restore
--noflush`` (chains declared in its input are flushed, others are left alone).
"""

from __future__ import annotations

import shutil

from twisted.internet.defer import Deferred

from dockertw import errdefs
from dockertw.runtime import processes

__all__ = ["Iptables", "IptablesError", "available"]


class IptablesError(errdefs.System):
    """iptables-restore refused the rules; the message is its own."""


def available(binary: str = "iptables-restore") -> bool:
    return shutil.which(binary) is not None


class Iptables:
    """Runs ``iptables-restore``/``iptables-save`` with ``runner`` (through the
    reactor, or blocking at daemon start-up and shut-down)."""

    def __init__(self, runner: processes.Runner, family: int = 4) -> None:
        self._runner = runner
        self._restore = "iptables-restore" if family == 4 else "ip6tables-restore"
        self._save = "iptables-save" if family == 4 else "ip6tables-save"

    def _run(self, argv: list[str], stdin: bytes = b"") -> Deferred[processes.Finished]:
        return self._runner(argv, stdin, None)

    def restore(self, rules: str) -> Deferred[None]:
        """Apply ``rules`` (``iptables-restore`` input) as one transaction."""
        def check(finished: processes.Finished) -> None:
            if finished.code != 0:
                raise IptablesError(f"iptables-restore: {finished.error_text()}")

        return self._run([self._restore, "--noflush", "-w"], rules.encode()).addCallback(check)

    def save(self, table: str) -> Deferred[str]:
        """The rules of ``table`` as ``iptables-save`` prints them."""
        def text(finished: processes.Finished) -> str:
            if finished.code != 0:
                raise IptablesError(f"iptables-save: {finished.error_text()}")
            return finished.stdout.decode("utf-8", "replace")

        return self._run([self._save, "-t", table]).addCallback(text)

"""Restart policies: whether a container that exited runs again, and after how long.

Docker's rules (moby ``restartmanager``): ``always`` restarts every exit,
``unless-stopped`` every exit unless the user stopped the container, ``on-failure[:N]``
a non-zero exit while fewer than N restarts happened (N = 0: no limit).  A stop or a
kill by the user never restarts the run it ends.  The delay starts at 100 ms and
doubles on each restart up to one minute; a run of ten seconds or more resets it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.interfaces import IDelayedCall

__all__ = ["RestartPolicy", "Backoff", "RestartSchedule", "should_restart"]

_FIRST_DELAY = 0.1
_MAX_DELAY = 60.0
_RESET_AFTER = 10.0


@attrs.frozen
class RestartPolicy:
    """``HostConfig.RestartPolicy``."""

    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def of(cls, host_config: Mapping[str, Any]) -> RestartPolicy:
        policy = host_config.get("RestartPolicy") or {}
        return cls(str(policy.get("Name") or "no"),
                   int(policy.get("MaximumRetryCount") or 0))


def should_restart(policy: RestartPolicy, exit_code: int, manually_stopped: bool,
                   restart_count: int) -> bool:
    """Whether an exit with ``exit_code`` restarts the container under ``policy``."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


@attrs.define
class Backoff:
    """The growing delay between restarts of one container."""

    delay: float = 0.0

    def next_delay(self, ran_for: float) -> float:
        """The delay before the next restart, after a run of ``ran_for`` seconds."""
        if ran_for >= _RESET_AFTER or self.delay == 0.0:
            self.delay = _FIRST_DELAY
        else:
            self.delay = min(self.delay * 2, _MAX_DELAY)
        return self.delay


class RestartSchedule:
    """Restarts waiting for their delay, one per container, with each one's backoff."""

    def __init__(self, call_later: Callable[..., IDelayedCall]) -> None:
        self._call_later = call_later
        self._pending: dict[str, IDelayedCall] = {}
        self._backoffs: dict[str, Backoff] = {}

    def schedule(self, container_id: str, ran_for: float,
                 restart: Callable[[str], None]) -> float:
        """Call ``restart(container_id)`` after the container's next delay."""
        self.cancel(container_id)
        delay = self._backoffs.setdefault(container_id, Backoff()).next_delay(ran_for)

        def fire() -> None:
            del self._pending[container_id]
            restart(container_id)

        self._pending[container_id] = self._call_later(delay, fire)
        return delay

    def is_pending(self, container_id: str) -> bool:
        return container_id in self._pending

    def cancel(self, container_id: str) -> bool:
        """Drop the container's waiting restart; answers whether there was one."""
        call = self._pending.pop(container_id, None)
        if call is None:
            return False
        call.cancel()
        return True

    def reset(self, container_id: str) -> None:
        """Forget the container's restarts (started or removed by the user)."""
        self.cancel(container_id)
        self._backoffs.pop(container_id, None)

    def cancel_all(self) -> None:
        for container_id in list(self._pending):
            self.cancel(container_id)

"""The daemon settings that a reload (SIGHUP) may change while it runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from dockertw import loglevel
from dockertw.runtime.runtimes import OciRuntime, RuntimeTable

__all__ = ["LiveSettings"]


@attrs.define
class LiveSettings:
    """Debug mode, engine labels and the OCI runtimes, as ``/info`` shows them."""

    runtimes: RuntimeTable = attrs.field(factory=RuntimeTable)
    debug: bool = False
    labels: list[str] = attrs.field(factory=list)
    log_level: str = "info"  # the level when debug is off (--log-level)
    logging_driver: str = "json-file"

    def apply(self, values: Mapping[str, Any]) -> None:
        """New values by daemon.json key (``debug``, ``labels``, ``runtimes``,
        ``default-runtime``); keys not given keep their value.  Checked before any
        change, so a bad reload changes nothing."""
        if "runtimes" in values or "default-runtime" in values:
            added = values.get("runtimes", self._added())
            self.runtimes.replace(
                [OciRuntime(name, spec["path"], tuple(spec.get("runtimeArgs") or ()))
                 for name, spec in added.items()],
                values.get("default-runtime", self.runtimes.default))
        if "debug" in values:
            self.set_debug(bool(values["debug"]))
        if "labels" in values:
            self.labels = list(values["labels"])

    def set_debug(self, debug: bool) -> None:
        """``-D``: debug lines shown; off again, back to ``--log-level``."""
        self.debug = debug
        loglevel.set_level("debug" if debug else self.log_level)

    def _added(self) -> dict[str, dict[str, Any]]:
        described = self.runtimes.described()
        described.pop(self.runtimes.stock.name)
        return described

    def info(self) -> dict[str, Any]:
        """The ``/info`` fields these settings fill."""
        return {"Debug": self.debug, "Labels": list(self.labels),
                "Runtimes": self.runtimes.described(),
                "DefaultRuntime": self.runtimes.default,
                "LoggingDriver": self.logging_driver}

    def event_attributes(self) -> dict[str, str]:
        """The attributes of the ``daemon reload`` event, as dockerd words them."""
        return {"debug": json.dumps(self.debug), "labels": json.dumps(self.labels),
                "default-runtime": self.runtimes.default,
                "runtimes": " ".join(sorted(self.runtimes.described()))}

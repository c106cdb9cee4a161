"""The OCI runtimes a daemon knows by name (``--add-runtime``, ``runtimes`` in
daemon.json) and the one containers get when they name none (``--default-runtime``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from dockertw.errdefs import InvalidParameter, NotFound

__all__ = ["STOCK_RUNTIME", "OciRuntime", "RuntimeTable", "check_runtimes"]

STOCK_RUNTIME = "runc"
_RESERVED = (STOCK_RUNTIME, "io.containerd.runc.v2", "io.containerd.runtime.v1.linux")


@attrs.frozen
class OciRuntime:
    """A runtime binary, looked up in ``PATH`` unless absolute, and its extra arguments."""

    name: str
    path: str
    args: tuple[str, ...] = ()

    def described(self) -> dict[str, object]:
        """The runtime as ``/info`` lists it (Docker's ``Runtimes`` values)."""
        return {"path": self.path, **({"runtimeArgs": list(self.args)} if self.args else {})}


def check_runtimes(added: Mapping[str, object], default: str) -> None:
    """Refuse what dockerd refuses: a reserved name, a default that does not exist."""
    for name in added:
        if name in _RESERVED:
            raise InvalidParameter(f"runtime name '{name}' is reserved")
    if default != STOCK_RUNTIME and default not in added:
        raise InvalidParameter(f"specified default runtime '{default}' does not exist")


class RuntimeTable:
    """The runtimes by name, the stock ``runc`` first; replaced whole on reload."""

    def __init__(self, stock_path: str = STOCK_RUNTIME,
                 added: Sequence[OciRuntime] = (), default: str = STOCK_RUNTIME) -> None:
        self._stock = OciRuntime(STOCK_RUNTIME, stock_path)
        self._runtimes: dict[str, OciRuntime] = {}
        self.default = STOCK_RUNTIME
        self.replace(added, default)

    def replace(self, added: Sequence[OciRuntime], default: str) -> None:
        """New added runtimes and default (checked first; nothing changes on error)."""
        by_name = {runtime.name: runtime for runtime in added}
        check_runtimes(by_name, default)
        self._runtimes = {STOCK_RUNTIME: self._stock, **by_name}
        self.default = default

    def resolve(self, name: str | None) -> OciRuntime:
        """The runtime called ``name``, the default one for none."""
        runtime = self._runtimes.get(name or self.default)
        if runtime is None:
            raise InvalidParameter(f"Unknown runtime specified {name}")
        return runtime

    def find(self, name: str | None) -> OciRuntime:
        """As :meth:`resolve`, for a container made earlier: its runtime may be gone."""
        try:
            return self.resolve(name)
        except InvalidParameter:
            raise NotFound(f"unknown or invalid runtime name: {name}") from None

    def described(self) -> dict[str, dict[str, object]]:
        return {name: runtime.described() for name, runtime in self._runtimes.items()}

    @property
    def stock(self) -> OciRuntime:
        return self._stock

"""Build arguments: ``--build-arg`` values, ``ARG`` declarations and the proxy args.

As moby's ``BuildArgs``: an argument is usable in a stage once an ``ARG`` declares it
there (its value from ``buildargs``, else the ``ARG`` default, else the meta ``ARG``
before the first ``FROM``); the proxy variables are usable without a declaration and
stay out of the image's history unless declared.  Arguments given but never declared
are reported at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["BuildArgs", "BUILTIN_ARGS"]

BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                          "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy"})


class BuildArgs:
    """The arguments of one build; :meth:`for_stage` starts a stage's own view."""

    def __init__(self, given: Mapping[str, str | None]) -> None:
        self._given = dict(given)
        self._allowed: dict[str, str | None] = {}
        self._meta: dict[str, str | None] = {}
        self._referenced: set[str] = set()

    def for_stage(self) -> BuildArgs:
        """A copy with the meta arguments and references, nothing declared yet."""
        copy = BuildArgs(self._given)
        copy._meta = dict(self._meta)
        copy._referenced = set(self._referenced)
        return copy

    def merge_referenced(self, other: BuildArgs) -> None:
        self._referenced |= other._referenced

    def add_arg(self, key: str, value: str | None) -> None:
        """``ARG key[=value]`` in a stage."""
        self._allowed[key] = value
        self._referenced.add(key)

    def add_meta_arg(self, key: str, value: str | None) -> None:
        """``ARG key[=value]`` before the first ``FROM``."""
        self._meta[key] = value

    def unused(self) -> list[str]:
        """Arguments given but declared by no ``ARG`` (the proxy ones excepted)."""
        return [key for key in self._given
                if key not in self._referenced and key not in BUILTIN_ARGS]

    def is_referenced_or_not_builtin(self, key: str) -> bool:
        return key in self._allowed or key not in BUILTIN_ARGS

    def allowed(self) -> dict[str, str]:
        """The values of the declared arguments and of the set proxy ones."""
        return self._values(self._allowed)

    def meta(self) -> dict[str, str]:
        """The values of the meta arguments (for ``FROM``)."""
        return self._values(self._meta)

    def _values(self, source: Mapping[str, str | None]) -> dict[str, str]:
        values: dict[str, str] = {}
        for key in [*source, *sorted(BUILTIN_ARGS)]:
            found = self._value(key, source)
            if found is not None:
                values[key] = found
        return values

    def _value(self, key: str, source: Mapping[str, str | None]) -> str | None:
        given = self._given.get(key)
        if given is not None:
            return given
        default = source.get(key)
        return self._meta.get(key) if default is None else default

    def filter_allowed(self, config_env: Iterable[str]) -> list[str]:
        """``KEY=VALUE`` of the usable arguments the config's environment does not set."""
        present = {entry.partition("=")[0] for entry in config_env}
        return [f"{key}={value}" for key, value in self.allowed().items()
                if key not in present]

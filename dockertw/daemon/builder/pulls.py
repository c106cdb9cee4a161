"""A build's pulls of its base images through the registry client, their progress in
the build's output (as moby's builder pulls with ``PullOptionPreferLocal``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred

from dockertw.daemon.builder.options import BuildOutput
from dockertw.daemon.distribution.auth import AuthConfig
from dockertw.daemon.distribution.config import registry_host_of
from dockertw.daemon.distribution.service import DistributionService
from dockertw.daemon.images.reference import parse_normalized

__all__ = ["RegistryPuller"]


class _PullProgress:
    """The distribution's progress sink, written into a build's output."""

    def __init__(self, output: BuildOutput) -> None:
        self._output = output

    def status(self, text: str, id: str = "") -> None:  # noqa: A002 - Docker's name
        self._output.status(text, id)

    def layer(self, id: str, status: str) -> None:  # noqa: A002
        self._output.status(status, id)

    def progress(self, id: str, action: str, current: int, total: int) -> None:  # noqa: A002
        self._output.progress(action, current, total, id)

    def aux(self, value: dict[str, Any]) -> None:
        return None  # a pull's digest aux is not a build's business


def _auth(configs: Mapping[str, Any], domain: str) -> AuthConfig:
    """The ``X-Registry-Config`` entry of the image's registry (Docker Hub's under its
    index address)."""
    for server, document in configs.items():
        if registry_host_of(server) == domain:
            return AuthConfig.from_json(document)
    return AuthConfig()


class RegistryPuller:
    """Pulls ``FROM`` images (``name:latest`` when untagged) for the builder."""

    def __init__(self, distribution: DistributionService) -> None:
        self._distribution = distribution

    def __call__(self, name: str, platform: str, auth: Mapping[str, Any],
                 output: BuildOutput) -> Deferred[None]:
        reference = parse_normalized(name).with_default_tag()
        tag = reference.digest or reference.tag
        return self._distribution.pull(str(reference.trimmed()), tag,
                                       _auth(auth, reference.domain), _PullProgress(output),
                                       platform)

"""The public surface: what ``dockertw.client`` exports, and what docs may import."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import dockertw.client as client
from dockertw.client import _calls, docker, errors, hijack, hosts, proxyenv, tls
from dockertw.streams import stdcopy

_ROOT = Path(__file__).resolve().parent.parent

_EXPORTS = {
    "DockerClient": docker.DockerClient,
    "DockerHost": hosts.DockerHost,
    "HostError": hosts.HostError,
    "ProxyEnvironment": proxyenv.ProxyEnvironment,
    "TLSSettings": tls.TLSSettings,
    "HijackedStream": hijack.HijackedStream,
    "UpgradeFailed": hijack.UpgradeFailed,
    "Stream": stdcopy.Stream,
    "ProgressError": _calls.ProgressError,
    "APIError": errors.APIError,
    "NotFoundError": errors.NotFoundError,
    "InvalidParameterError": errors.InvalidParameterError,
    "ConflictError": errors.ConflictError,
    "UnauthorizedError": errors.UnauthorizedError,
    "UnavailableError": errors.UnavailableError,
    "ForbiddenError": errors.ForbiddenError,
    "NotModifiedError": errors.NotModifiedError,
    "NotImplementedError_": errors.NotImplementedError_,
    "SystemError_": errors.SystemError_,
    "ConnectionFailed": errors.ConnectionFailed,
    "DEFAULT_DOCKER_HOST": hosts.DEFAULT_DOCKER_HOST,
    "DEFAULT_TIMEOUT": docker.DEFAULT_TIMEOUT,
    "MAX_API_VERSION": docker.MAX_API_VERSION,
}


def test_the_client_exports_exactly_its_public_names() -> None:
    assert sorted(client.__all__) == sorted(_EXPORTS)


@pytest.mark.parametrize("name", sorted(_EXPORTS))
def test_each_export_is_the_defining_modules_object(name: str) -> None:
    assert getattr(client, name) is _EXPORTS[name]


def _documented_imports() -> list[tuple[str, str]]:
    found = []
    for path in [_ROOT / "README.md", *sorted((_ROOT / "docs").rglob("*.md")),
                 *sorted((_ROOT / "docs").rglob("*.py"))]:
        for module, names in re.findall(r"^\s*from (dockertw[\w.]*) import ([\w, ]+)",
                                        path.read_text(), re.M):
            found.extend((module, name.strip()) for name in names.split(","))
    return found


def test_docs_import_only_from_the_public_packages() -> None:
    imports = _documented_imports()
    assert imports, "the docs show no imports: the pattern no longer matches them"
    assert {module for module, _ in imports} == {"dockertw.client"}
    assert {name for _, name in imports} <= set(client.__all__)

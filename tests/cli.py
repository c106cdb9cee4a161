"""The real docker CLI against a test daemon: run, require success, import, inspect."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from tests.support import Daemon, docker

IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")


def cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """The docker CLI against ``daemon``, at its pinned API version if it has one."""
    pinned = {"DOCKER_API_VERSION": daemon.api_version} if daemon.api_version else None
    return docker("-H", f"unix://{daemon.socket}", *args, env_extra=pinned)


def ok(daemon: Daemon, *args: str) -> str:
    done = cli(daemon, *args)
    assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
    return done.stdout


def import_image(daemon: Daemon, tar: Path, *args: str) -> str:
    """``docker import [OPTIONS] TAR [REF]``; returns the image ID it prints."""
    image_id = ok(daemon, "import", *args[:-1], str(tar), *args[-1:]).strip()
    assert IMAGE_ID.fullmatch(image_id), image_id
    return image_id


def inspect(daemon: Daemon, name: str) -> dict[str, Any]:
    shown = json.loads(ok(daemon, "inspect", name))
    assert len(shown) == 1
    return dict(shown[0])


def says_path_missing(stderr: str, container: str, path: str) -> bool:
    """``docker cp`` from a missing path, in each CLI's words: 28.x passes on the
    daemon's message, 20.10 (Debian 12's) words its own."""
    return (f"Could not find the file {path} in container {container}" in stderr
            or f"No such container:path: {container}:{path}" in stderr)

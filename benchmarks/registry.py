#!/usr/bin/env python3
"""``docker push`` and ``docker pull`` through a registry on loopback, against dockertw.

Builds an image of ``--layers`` layers (default 5), each one file of random bytes,
``--size`` MB in all (default 200), and loads it (not timed).  Each of ``--count``
rounds (default 3) starts a fresh ``docker-registry`` on loopback, times ``docker
push``, removes the image (``docker rmi``: its layers go too), and times ``docker
pull``.  With ``--docker`` a private dockerd does the same in the same run.  Prints
the median times and dockertw's ratio to Docker, no verdict::

    .venv/bin/python benchmarks/registry.py [--size 200] [--layers 5] [--count 3] [--docker]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    DockerEngine,
    add_size_count_options,
    on_dockerd,
    on_dockertw,
    peak_rss_mib,
    run_benchmark,
    time_runs,
)
from tests.cli import ok  # noqa: E402
from tests.registries import Registry  # noqa: E402

_CHUNK = 1 << 20


def _add_member(archive: tarfile.TarFile, name: str, path: Path) -> None:
    info = archive.gettarinfo(str(path), arcname=name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    with open(path, "rb") as stream:
        archive.addfile(info, stream)


def _random_layer(directory: Path, index: int, megabytes: int) -> tuple[Path, str]:
    """A layer tar holding one file of random bytes; its path and diff ID."""
    payload = directory / f"payload{index}"
    with open(payload, "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(_CHUNK))
    layer = directory / f"layer{index}.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_member(tar, f"data{index}.bin", payload)
    payload.unlink()
    digest = hashlib.sha256()
    with open(layer, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return layer, "sha256:" + digest.hexdigest()


def image_archive(directory: Path, megabytes: int, layers: int, tag: str) -> Path:
    """A ``docker save`` archive of a ``layers``-layer image of random data."""
    made = [_random_layer(directory, i, megabytes // layers) for i in range(layers)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers",
                                              "diff_ids": [d for _, d in made]},
        "history": [{"created": "2024-01-02T03:04:05Z"} for _ in made]}).encode()
    (directory / "config.json").write_bytes(config)
    manifest = [{"Config": "config.json", "RepoTags": [tag],
                 "Layers": [f"{d[7:]}/layer.tar" for _, d in made]}]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    archive = directory / "image.tar"
    with tarfile.open(archive, "w") as tar:
        _add_member(tar, "config.json", directory / "config.json")
        for path, digest in made:
            _add_member(tar, f"{digest[7:]}/layer.tar", path)
            path.unlink()
        _add_member(tar, "manifest.json", directory / "manifest.json")
    return archive


def bench_target(name: str, target: Any, workdir: Path, archive: Path,
                 count: int) -> tuple[list[float], list[float]]:
    """``count`` rounds of push, rmi, pull through a fresh registry each."""
    pushes: list[float] = []
    pulls: list[float] = []
    for round_number in range(count):
        registry = Registry(workdir / f"{name}-registry{round_number}").start()
        try:
            image = f"{registry.address}/bench:1"
            ok(target, "load", "-i", str(archive))
            ok(target, "tag", "bench:1", image)
            ok(target, "rmi", "bench:1")
            pushes += time_runs(lambda name=image: ok(target, "push", name), 1)
            ok(target, "rmi", image)
            pulls += time_runs(lambda name=image: ok(target, "pull", name), 1)
            ok(target, "rmi", image)
        finally:
            registry.stop()
    print(f"{name:<9} push median {statistics.median(pushes):6.2f} s   "
          f"pull median {statistics.median(pulls):6.2f} s   "
          f"(n={count}; push {_shown(pushes)}; pull {_shown(pulls)})")
    print(f"{name:<9} daemon peak RSS {peak_rss_mib(target):.0f} MiB")
    return pushes, pulls


def _shown(seconds: list[float]) -> str:
    return ", ".join(f"{s:.2f}" for s in seconds)


def bench(workdir: Path, options: argparse.Namespace) -> None:
    (workdir / "image").mkdir()
    archive = image_archive(workdir / "image", options.size, options.layers, "bench:1")
    print(f"image: {options.size} MB of random data in {options.layers} layers")
    ours = on_dockertw(workdir, lambda daemon: bench_target(
        "dockertw", daemon, workdir, archive, options.count))
    if not options.docker:
        return
    theirs = on_dockerd(DockerEngine(workdir / "docker"), lambda engine: bench_target(
        "docker", engine, workdir, archive, options.count))
    if theirs is not None:
        for what, mine, docker in (("push", ours[0], theirs[0]), ("pull", ours[1], theirs[1])):
            ratio = statistics.median(mine) / statistics.median(docker)
            print(f"{what}: dockertw / docker = {ratio:.2f}")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_size_count_options(parser, "MB in the image", "rounds")
    parser.add_argument("--layers", type=int, default=5, help="layers in the image")


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(__doc__.splitlines()[0], "dtwb-reg-", _add_arguments, bench, argv)


if __name__ == "__main__":
    sys.exit(main())

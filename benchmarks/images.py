#!/usr/bin/env python3
"""Throughput of ``docker import`` and ``docker load`` against dockertw.

Starts its own daemon on a temporary root (always stopped and removed), then, with the
real CLI, ``--count`` times (default 3): ``docker import`` of a one-layer tar holding
a ``--size`` MB file of random bytes (default 200), ``docker save`` of that image (not
timed), ``docker rmi``, and ``docker load`` of the saved archive.  Prints MB/s
(median) and the daemon's peak resident memory, no verdict::

    .venv/bin/python benchmarks/images.py [--size 200] [--count 3] [--docker]
"""

from __future__ import annotations

import argparse
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
    random_file,
    report_throughput,
    run_benchmark,
    time_runs,
)
from tests.cli import ok  # noqa: E402


def _layer_tar(workdir: Path, megabytes: int) -> Path:
    """A layer tar with one file of random bytes (removed once packed)."""
    payload = random_file(workdir / "big.bin", megabytes)
    layer = workdir / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(payload, arcname="big.bin")
    payload.unlink()
    return layer


def bench_target(name: str, target: Any, layer: Path, megabytes: int, count: int) -> None:
    """Import, save (untimed), remove and load ``count`` times on one engine."""
    saved = layer.with_name("saved.tar")
    imports: list[float] = []
    loads: list[float] = []
    for _ in range(count):
        imports += time_runs(lambda: ok(target, "import", str(layer), "bench:1"), 1)
        ok(target, "save", "-o", str(saved), "bench:1")
        ok(target, "rmi", "bench:1")
        loads += time_runs(lambda: ok(target, "load", "-i", str(saved)), 1)
        ok(target, "rmi", "bench:1")
    saved.unlink()
    report_throughput(f"{name}: docker import", megabytes, imports)
    report_throughput(f"{name}: docker load", megabytes, loads)
    print(f"{name}: daemon peak RSS {peak_rss_mib(target):.0f} MiB")


def bench(workdir: Path, options: argparse.Namespace) -> None:
    layer = _layer_tar(workdir, options.size)
    on_dockertw(workdir, lambda daemon: bench_target(
        "dockertw", daemon, layer, options.size, options.count))
    if options.docker:
        on_dockerd(DockerEngine(workdir / "docker"), lambda engine: bench_target(
            "docker", engine, layer, options.size, options.count))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_size_count_options(parser, "MB in the layer", "rounds")


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(__doc__.splitlines()[0], "dtwb-img-", _add_arguments, bench, argv)


if __name__ == "__main__":
    sys.exit(main())

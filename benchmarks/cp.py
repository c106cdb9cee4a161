#!/usr/bin/env python3
"""Throughput of ``docker cp`` against dockertw, both ways.

Starts its own daemon on a temporary root (always stopped and removed), imports a
busybox image, runs one ``sleep`` container, then times with the real CLI ``docker cp
FILE C:/tmp/`` and ``docker cp C:/tmp/FILE OUT`` of a ``--size`` MB file (default 200,
random bytes), ``--count`` times each (default 3).  Prints MB/s (median) and the
daemon's peak resident memory, no verdict::

    .venv/bin/python benchmarks/cp.py [--size 200] [--count 3] [--docker]
"""

from __future__ import annotations

import argparse
import sys
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
from tests.cli import cli, import_image, ok  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402

CONTAINER = "cp-bench"


def bench_target(name: str, target: Any, tar: Path, payload: Path, megabytes: int,
                 count: int) -> None:
    """Both directions for one engine (anything with a ``socket`` the CLI can reach)."""
    import_image(target, tar, "bb:1")
    ok(target, "run", "-d", "--network", "none", "--name", CONTAINER, "bb:1",
       "sleep", "600")
    out = payload.with_name("out.bin")
    try:
        def copy_in() -> None:
            ok(target, "cp", str(payload), f"{CONTAINER}:/tmp/")

        def copy_out() -> None:
            out.unlink(missing_ok=True)
            ok(target, "cp", f"{CONTAINER}:/tmp/{payload.name}", str(out))

        for label, action in (("docker cp FILE C:/tmp/", copy_in),
                              ("docker cp C:/tmp/FILE OUT", copy_out)):
            report_throughput(f"{name}: {label}", megabytes, time_runs(action, count))
        assert out.stat().st_size == payload.stat().st_size
        print(f"{name}: daemon peak RSS {peak_rss_mib(target):.0f} MiB")
    finally:
        cli(target, "rm", "-f", CONTAINER)
        out.unlink(missing_ok=True)


def bench(workdir: Path, options: argparse.Namespace) -> None:
    tar = make_busybox_tar(workdir)
    payload = workdir / "payload.bin"
    random_file(payload, options.size)
    on_dockertw(workdir, lambda daemon: bench_target(
        "dockertw", daemon, tar, payload, options.size, options.count))
    if options.docker:
        on_dockerd(DockerEngine(workdir / "docker"), lambda engine: bench_target(
            "docker", engine, tar, payload, options.size, options.count))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_size_count_options(parser, "MB per copy", "copies each way")


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(__doc__.splitlines()[0], "dtwb-cp-", _add_arguments, bench, argv)


if __name__ == "__main__":
    sys.exit(main())

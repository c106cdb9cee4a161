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
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.api import DockerEngine  # noqa: E402
from benchmarks.common import (  # noqa: E402
    add_docker_option,
    on_dockerd,
    run_benchmark,
    time_runs,
)
from tests.cli import cli, import_image, ok  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402
from tests.support import Daemon  # noqa: E402

CONTAINER = "cp-bench"


def _payload(path: Path, megabytes: int) -> None:
    with open(path, "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))


def _report(name: str, megabytes: int, seconds: Sequence[float]) -> None:
    median = statistics.median(seconds)
    print(f"{name:<28} {megabytes} MB  n={len(seconds)}  median {median:6.2f} s"
          f"  {megabytes / median:8.1f} MB/s")


def _peak_rss_mib(target: Any) -> float:
    """The daemon process's peak resident memory (``VmHWM``)."""
    process = getattr(target, "process", None)
    if process is None:
        return float("nan")
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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

        _report(f"{name}: docker cp FILE C:/tmp/", megabytes, time_runs(copy_in, count))
        _report(f"{name}: docker cp C:/tmp/FILE OUT", megabytes, time_runs(copy_out, count))
        assert out.stat().st_size == payload.stat().st_size
        print(f"{name}: daemon peak RSS {_peak_rss_mib(target):.0f} MiB")
    finally:
        cli(target, "rm", "-f", CONTAINER)
        out.unlink(missing_ok=True)


def bench(workdir: Path, options: argparse.Namespace) -> None:
    tar = make_busybox_tar(workdir)
    payload = workdir / "payload.bin"
    _payload(payload, options.size)
    (workdir / "daemon").mkdir()
    daemon = Daemon(workdir / "daemon")
    try:
        daemon.start()
        bench_target("dockertw", daemon, tar, payload, options.size, options.count)
    finally:
        daemon.stop()
    if options.docker:
        on_dockerd(DockerEngine(workdir / "docker"), lambda engine: bench_target(
            "docker", engine, tar, payload, options.size, options.count))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=200, help="MB per copy")
    parser.add_argument("--count", type=int, default=3, help="copies each way")
    add_docker_option(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(__doc__.splitlines()[0], "dtwb-cp-", _add_arguments, bench, argv)


if __name__ == "__main__":
    sys.exit(main())

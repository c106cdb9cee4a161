#!/usr/bin/env python3
"""``docker build`` (the classic builder, ``DOCKER_BUILDKIT=0``) against dockertw.

Starts its own daemon on a temporary root (always stopped and removed), imports a
busybox image, then builds a 10-step Dockerfile (ENV, WORKDIR, COPY of a ``--size``
MB context (default 50) in 20 files plus 50 small ones, four RUNs, LABEL, CMD) with
the real CLI: ``--count`` cold builds (``--no-cache``, default 3) and as many fully
cached rebuilds.  Prints the median seconds of each, and with ``--docker`` the same
on a private dockerd with the ratio, no verdict::

    .venv/bin/python benchmarks/build.py [--size 50] [--count 3] [--docker]
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

from benchmarks.common import (  # noqa: E402
    DockerEngine,
    add_docker_option,
    on_dockerd,
    peak_rss_mib,
    run_benchmark,
    time_runs,
)
from tests.cli import import_image  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402
from tests.support import Daemon, docker  # noqa: E402

_DOCKERFILE = """\
FROM bench-base:1
ENV APP=/app
WORKDIR /app
COPY . /app/
RUN ls data | wc -l > /count
RUN echo one > /one
RUN cat /app/data/s1.txt > /two
LABEL bench=1
RUN sha1sum /app/data/f1.bin > /sum
CMD ["sh"]
"""
_FILES = 20


def _context(workdir: Path, megabytes: int) -> Path:
    """The build context: the Dockerfile, ``megabytes`` MB of random data in
    :data:`_FILES` files and 50 small text files."""
    context = workdir / "context"
    (context / "data").mkdir(parents=True)
    (context / "Dockerfile").write_text(_DOCKERFILE)
    size = megabytes * 1_000_000 // _FILES
    for index in range(1, _FILES + 1):
        (context / "data" / f"f{index}.bin").write_bytes(os.urandom(size))
    for index in range(1, 51):
        (context / "data" / f"s{index}.txt").write_text(f"small {index}\n")
    return context


def _build(target: Any, context: Path, *args: str) -> None:
    done = docker("-H", f"unix://{target.socket}", "build", "-q", *args, "-t", "bench:1",
                  str(context), env_extra={"DOCKER_BUILDKIT": "0"}, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"docker build failed: {done.stderr}")


def bench_target(name: str, target: Any, base: Path, context: Path,
                 count: int) -> tuple[float, float]:
    """Median seconds of a cold build and of a cached rebuild on one engine."""
    import_image(target, base, "bench-base:1")
    cold = time_runs(lambda: _build(target, context, "--no-cache"), count)
    cached = time_runs(lambda: _build(target, context), count)
    figures = statistics.median(cold), statistics.median(cached)
    print(f"{name:<9} cold build (--no-cache) n={count}  median {figures[0]:6.2f} s")
    print(f"{name:<9} cached rebuild          n={count}  median {figures[1]:6.2f} s")
    print(f"{name:<9} daemon peak RSS {peak_rss_mib(target):.0f} MiB")
    return figures


def bench(workdir: Path, options: argparse.Namespace) -> None:
    base = make_busybox_tar(workdir)
    context = _context(workdir, options.size)
    (workdir / "daemon").mkdir()
    daemon = Daemon(workdir / "daemon")
    try:
        daemon.start()
        ours = bench_target("dockertw", daemon, base, context, options.count)
    finally:
        daemon.stop()
    if not options.docker:
        return
    theirs = on_dockerd(DockerEngine(workdir / "docker"), lambda engine: bench_target(
        "docker", engine, base, context, options.count))
    if theirs is not None:
        print(f"ratio dockertw/docker: cold {ours[0] / theirs[0]:.2f}  "
              f"cached {ours[1] / theirs[1]:.2f}")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=50, help="MB in the context")
    parser.add_argument("--count", type=int, default=3, help="builds of each kind")
    add_docker_option(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(__doc__.splitlines()[0], "dtwb-build-", _add_arguments, bench, argv)


if __name__ == "__main__":
    sys.exit(main())

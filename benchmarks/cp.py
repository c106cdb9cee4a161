#!/usr/bin/env python3
"""Throughput of ``docker cp`` against dockertw, both ways.

Starts its own daemon on a temporary root (always stopped and removed), imports a
busybox image, runs one ``sleep`` container, then times with the real CLI ``docker cp
FILE C:/tmp/`` and ``docker cp C:/tmp/FILE OUT`` of a ``--size`` MB file (default 200,
random bytes), ``--count`` times each (default 3).  Prints MB/s (median) and the
daemon's peak resident memory, no verdict::

    .venv/bin/python benchmarks/cp.py [--size 200] [--count 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.api import DockerEngine, unmount_under  # noqa: E402
from benchmarks.exec import _busybox_tar  # noqa: E402
from tests.cli import cli, import_image, ok  # noqa: E402
from tests.support import Daemon  # noqa: E402

CONTAINER = "cp-bench"


def _payload(path: Path, megabytes: int) -> None:
    with open(path, "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))


def _timed(action: Callable[[], None], count: int) -> list[float]:
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


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

        _report(f"{name}: docker cp FILE C:/tmp/", megabytes, _timed(copy_in, count))
        _report(f"{name}: docker cp C:/tmp/FILE OUT", megabytes, _timed(copy_out, count))
        assert out.stat().st_size == payload.stat().st_size
        print(f"{name}: daemon peak RSS {_peak_rss_mib(target):.0f} MiB")
    finally:
        cli(target, "rm", "-f", CONTAINER)
        out.unlink(missing_ok=True)


def bench(workdir: Path, megabytes: int, count: int, docker: bool) -> None:
    tar = _busybox_tar(workdir)
    payload = workdir / "payload.bin"
    _payload(payload, megabytes)
    (workdir / "daemon").mkdir()
    daemon = Daemon(workdir / "daemon")
    try:
        daemon.start()
        bench_target("dockertw", daemon, tar, payload, megabytes, count)
    finally:
        daemon.stop()
    if docker:
        engine = DockerEngine(workdir / "docker")
        try:
            engine.start()
            bench_target("docker", engine, tar, payload, megabytes, count)
        except RuntimeError as error:
            print(f"dockerd unavailable, Docker figures skipped: {error}", file=sys.stderr)
        finally:
            engine.stop()


def _interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200, help="MB per copy")
    parser.add_argument("--count", type=int, default=3, help="copies each way")
    parser.add_argument("--docker", action="store_true",
                        help="also measure a private dockerd (Debian package docker.io)")
    options = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="dtwb-cp-", dir="/tmp"))
    try:
        bench(workdir, options.size, options.count, options.docker)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

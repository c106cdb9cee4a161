"""What the benchmark scripts share: their scaffold and clean-up.

:func:`temporary_workdir` is a directory that is always unmounted and removed, even
on Ctrl-C or SIGTERM; :func:`run_benchmark` adds the command line; :func:`on_dockerd`
measures a private ``dockerd`` if it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:
    from benchmarks.api import DockerEngine

_T = TypeVar("_T")


def _interrupt(signum: int, frame: Any) -> NoReturn:
    """SIGTERM ends the script as Ctrl-C does, through every ``finally``."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def temporary_workdir(prefix: str) -> Iterator[Path]:
    """A new directory under /tmp, always unmounted and removed after.

    Ctrl-C or SIGTERM inside ends the script with status 130 once it is clean; the
    signals stay ignored from the clean-up on."""
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield workdir
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def run_benchmark(description: str, prefix: str,
                  add_arguments: Callable[[argparse.ArgumentParser], None],
                  bench: Callable[[Path, argparse.Namespace], None],
                  argv: Sequence[str] | None = None) -> int:
    """Parse the command line, then ``bench(workdir, options)`` in a
    :func:`temporary_workdir`; 0 once done."""
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    options = parser.parse_args(argv)
    with temporary_workdir(prefix) as workdir:
        bench(workdir, options)
    return 0


def add_docker_option(parser: argparse.ArgumentParser) -> None:
    """``--docker``: measure a private dockerd as well."""
    parser.add_argument("--docker", action="store_true",
                        help="also measure a private dockerd (Debian package docker.io)")


def on_dockerd(engine: DockerEngine, bench: Callable[[DockerEngine], _T]) -> _T | None:
    """Start ``engine``, run ``bench`` on it and always stop it; None (said on stderr)
    if it would not start."""
    try:
        try:
            engine.start()
        except RuntimeError as error:
            print(f"dockerd unavailable, Docker figures skipped: {error}", file=sys.stderr)
            return None
        return bench(engine)
    finally:
        engine.stop()


def time_runs(action: Callable[[], object], count: int, warmup: int = 0) -> list[float]:
    """Seconds each of ``count`` calls of ``action`` took, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        action()
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def random_file(path: Path, megabytes: int) -> Path:
    """``path`` filled with ``megabytes`` MiB of random bytes (nothing compresses)."""
    with open(path, "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(1 << 20))
    return path


def report_throughput(name: str, megabytes: int, seconds: Sequence[float]) -> None:
    """One line: the median time of moving ``megabytes`` and the rate it makes."""
    median = statistics.median(seconds)
    print(f"{name:<30} {megabytes} MB  n={len(seconds)}  median {median:6.2f} s"
          f"  {megabytes / median:8.1f} MB/s")


def peak_rss_mib(target: Any) -> float:
    """The peak resident memory (``VmHWM``) of a daemon's ``process``."""
    process = getattr(target, "process", None)
    if process is None:
        return float("nan")
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _mount_points() -> Iterator[str]:
    """Every mount point of this process's mount namespace, unescaped."""
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            yield re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])


def unmount_under(directory: Path) -> None:
    """Lazily unmount every mount point at or under ``directory``, deepest first."""
    prefix = str(directory.resolve())
    inside = [m for m in _mount_points() if m == prefix or m.startswith(prefix + "/")]
    for mount_point in sorted(set(inside), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], check=False, capture_output=True,
                       timeout=30)

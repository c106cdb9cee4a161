#!/usr/bin/env python3
"""Latency of dockertw under connection load, optionally beside Docker's.

Measures ``GET /_ping`` and ``GET /v1.41/containers/json`` one request at a time,
on one keep-alive connection and on a new connection per request, first unloaded,
then with ``--idle`` connections open that send nothing and ``--slow`` connections
trickling a request's headers one byte a second (the load is held by a forked
process).  Unloaded and loaded runs alternate ``--rounds`` times, so that other work
on the machine weighs on both alike.  Prints p50/p90/p99/max per case, the ratio of
the loaded p99 to the unloaded p99 (the issue's target: 2 at most) and the daemon's
resident memory unloaded and loaded.  It starts its own daemon on a temporary root
(``--docker``: a private dockerd too) and always stops it::

    .venv/bin/python benchmarks/load.py [--idle 5000] [--slow 500] [--requests 300]
        [--rounds 5] [--transport tcp|unix] [--docker]

The run must stay shorter than the daemons' header timeout (5 minutes for both): the
idle connections are cut then.  Needs root for a limit of open files above the idle
and slow connections (raised here).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import resource
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.api import start_dockertw  # noqa: E402
from benchmarks.common import (  # noqa: E402
    Address,
    DockerEngine,
    Target,
    add_docker_option,
    on_dockerd,
    run_benchmark,
)

PATHS = ("/_ping", "/v1.41/containers/json")
MODES = ("keep-alive", "new conn")
TARGET_RATIO = 2.0  # the issue: loaded p99 at most twice the unloaded p99


@dataclass(frozen=True)
class Case:
    """What one row measures."""

    path: str
    mode: str
    loaded: bool


@dataclass
class Samples:
    """Seconds per request of every case, and the daemon's RSS (MiB) in each state."""

    latencies: dict[Case, list[float]]
    rss: dict[bool, list[float]]


# --------------------------------------------------------------------------- requests


def _read_response(sock: socket.socket, buffer: bytes = b"") -> int:
    """Read one response with a Content-Length; its status."""
    while b"\r\n\r\n" not in buffer:
        buffer += _receive(sock)
    head, _, body = buffer.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += _receive(sock)
    return int(head[9:12])


def _receive(sock: socket.socket) -> bytes:
    data = sock.recv(262144)
    if not data:
        raise ConnectionError("the daemon closed the connection")
    return data


def _blocking(address: Address) -> socket.socket:
    sock = address.connect()
    sock.setblocking(True)
    sock.settimeout(30)
    return sock


def time_requests(address: Address, path: str, mode: str, count: int) -> list[float]:
    """Seconds each of ``count`` sequential ``GET path`` took (a connection each in
    ``new conn`` mode, connecting included)."""
    request = address.request(path)
    seconds = []
    sock = _blocking(address) if mode == "keep-alive" else None
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn = sock or _blocking(address)
            try:
                conn.sendall(request)
                if _read_response(conn) != 200:
                    raise RuntimeError(f"GET {path} did not answer 200")
            finally:
                if sock is None:
                    conn.close()
            seconds.append(time.perf_counter() - started)
    finally:
        if sock is not None:
            sock.close()
    return seconds


# --------------------------------------------------------------------------- load


def _hold_load(pipe: Connection, address: Address, idle: int, slow: int) -> None:
    """Body of the forked load process: open the connections, say how many, trickle
    until told to stop (or the parent goes away), close them all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    held: list[socket.socket] = []
    try:
        held += [address.connect() for _ in range(idle)]
        trickling = [address.connect() for _ in range(slow)]
        held += trickling
        for sock in trickling:
            sock.send(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        pipe.send(len(held))
        while not pipe.poll(1.0):
            for sock in trickling:
                sock.send(b"a")  # a header byte a second each
    except Exception as error:  # reported by the parent
        pipe.send(f"{type(error).__name__}: {error}")
    finally:
        for sock in held:
            sock.close()
        pipe.close()


class Load:
    """``idle`` + ``slow`` connections to ``address``, held by a forked process."""

    def __init__(self, address: Address, idle: int, slow: int) -> None:
        context = multiprocessing.get_context("fork")
        self._pipe, theirs = context.Pipe()
        self._process = context.Process(target=_hold_load, args=(theirs, address, idle, slow),
                                        daemon=True)
        self._process.start()
        theirs.close()

    def wait_open(self, timeout: float = 120.0) -> None:
        """Until every connection is open; RuntimeError if they could not be."""
        if not self._pipe.poll(timeout):
            raise RuntimeError("the load process did not open its connections in time")
        opened = self._pipe.recv()
        if isinstance(opened, str):
            raise RuntimeError(opened)

    def stop(self) -> None:
        """Close every connection and end the process."""
        with contextlib.suppress(OSError):
            self._pipe.send("stop")
        self._process.join(30.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5.0)
        self._pipe.close()


# --------------------------------------------------------------------------- rounds


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def _measure_state(address: Address, options: argparse.Namespace, loaded: bool,
                   samples: Samples, pid: int) -> None:
    """Every path in every mode, once, in the current state."""
    for path in PATHS:
        for mode in MODES:
            count = options.requests if mode == "keep-alive" else options.requests // 2
            samples.latencies.setdefault(Case(path, mode, loaded), []).extend(
                time_requests(address, path, mode, count))
    samples.rss.setdefault(loaded, []).append(rss_mib(pid))


def measure_target(target: Target, pid: int, options: argparse.Namespace) -> Samples:
    """Alternate unloaded and loaded runs ``options.rounds`` times."""
    address = target.tcp if options.transport == "tcp" else target.unix
    samples = Samples({}, {})
    time_requests(address, "/_ping", "keep-alive", 100)  # warm up
    for number in range(1, options.rounds + 1):
        print(f"  {target.name}: round {number}/{options.rounds} unloaded ...",
              file=sys.stderr, flush=True)
        _measure_state(address, options, False, samples, pid)
        load = Load(address, options.idle, options.slow)
        try:
            load.wait_open()
            print(f"  {target.name}: round {number}/{options.rounds} with {options.idle} "
                  f"idle and {options.slow} slow connections ...", file=sys.stderr, flush=True)
            _measure_state(address, options, True, samples, pid)
        finally:
            load.stop()
    return samples


# --------------------------------------------------------------------------- report


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] * 1000.0


def print_samples(name: str, samples: Samples, options: argparse.Namespace) -> None:
    """One row per case, the p99 ratio of loaded to unloaded beside the loaded rows."""
    print(f"{name} ({options.transport}; load: {options.idle} idle + {options.slow} slow "
          f"connections; {options.rounds} rounds)")
    print(f"  {'path':24} {'mode':10} {'state':9} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8} {'p99 ratio':>9}")
    for path in PATHS:
        for mode in MODES:
            unloaded = sorted(samples.latencies[Case(path, mode, False)])
            for loaded in (False, True):
                ordered = sorted(samples.latencies[Case(path, mode, loaded)])
                ratio = percentile(ordered, 0.99) / percentile(unloaded, 0.99)
                shown = f"{ratio:9.2f}" if loaded else ""
                print(f"  {path:24} {mode:10} {'loaded' if loaded else 'unloaded':9} "
                      f"{len(ordered):5d} {percentile(ordered, 0.50):8.2f} "
                      f"{percentile(ordered, 0.90):8.2f} {percentile(ordered, 0.99):8.2f} "
                      f"{ordered[-1] * 1000:8.2f} {shown}")
    print(f"  RSS: {samples.rss[False][0]:.1f} MiB before the first load, "
          f"{max(samples.rss[True]):.1f} MiB at most under load")
    worst = max(percentile(sorted(samples.latencies[Case(p, m, True)]), 0.99)
                / percentile(sorted(samples.latencies[Case(p, m, False)]), 0.99)
                for p in PATHS for m in MODES)
    print(f"  target: loaded p99 <= {TARGET_RATIO:g} x unloaded p99; worst ratio here "
          f"{worst:.2f}")


# --------------------------------------------------------------------------- main


def raise_open_files(needed: int) -> None:
    """Let this process (and the load process) hold ``needed`` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (OSError, ValueError) as error:
        raise SystemExit(f"cannot open {needed} files (limit {soft}/{hard}): {error}; "
                         "run as root or lower --idle/--slow") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idle", type=int, default=5000, help="idle connections (5000)")
    parser.add_argument("--slow", type=int, default=500,
                        help="connections trickling their headers (500)")
    parser.add_argument("--requests", type=int, default=300,
                        help="requests per path and state per round on the keep-alive "
                             "connection, half as many on new connections (300)")
    parser.add_argument("--rounds", type=int, default=5, help="unloaded/loaded rounds (5)")
    parser.add_argument("--transport", choices=("tcp", "unix"), default="tcp",
                        help="where the measured requests and the load go (tcp)")
    add_docker_option(parser)


def _pid(engine: DockerEngine) -> int:
    assert engine.process is not None
    return engine.process.pid


def bench(workdir: Path, options: argparse.Namespace) -> None:
    raise_open_files(options.idle + options.slow + 256)
    results: list[tuple[str, Samples]] = []
    daemon, target = start_dockertw(workdir / "dockertw")
    try:
        assert daemon.process is not None
        results.append((target.name, measure_target(target, daemon.process.pid, options)))
    finally:
        daemon.stop()
    if options.docker:
        print("starting dockerd ...", file=sys.stderr, flush=True)
        measured = on_dockerd(DockerEngine(workdir / "docker"), lambda engine: (
            measure_target(engine.target, _pid(engine), options)))
        if measured is not None:
            results.append(("docker", measured))
    for name, samples in results:
        print()
        print_samples(name, samples, options)


if __name__ == "__main__":
    sys.exit(run_benchmark(__doc__.split("\n", 1)[0], "dtwl-", add_arguments, bench))

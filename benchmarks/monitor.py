#!/usr/bin/env python3
"""Daemon CPU under a monitoring load, dockertw beside Docker Engine in the same run.

What monitoring tools (Portainer, Traefik's provider, Prometheus service discovery,
cAdvisor, Dozzle) do all day, against ``--containers`` (default 100) running busybox
containers:

* ``--pollers`` (10) clients, each every ``--interval`` (1 s) listing every container
  (``GET /containers/json?all=1``) and inspecting ``--inspects`` (10) of them in turn;
* ``--followers`` (5) clients following ``GET /events``;
* one ``docker stats`` (the real CLI) following every running container.

After ``--warmup`` seconds it measures, for ``--duration`` seconds, the CPU time of the
daemon side: dockertw's process (with the runc children it reaped), or dockerd,
containerd and every containerd shim of the private Docker Engine (``--docker``).
Printed as CPU seconds per minute of load, with the latencies the pollers saw.
Figures only, no verdict::

    .venv/bin/python benchmarks/monitor.py [--containers 100] [--duration 30] [--docker]

Needs root, runc, busybox-static and the docker CLI; ``--docker`` needs dockerd
(Debian package docker.io).  Everything runs on temporary roots, always cleaned up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import DockerEngine, on_dockerd, run_benchmark  # noqa: E402
from benchmarks.lifecycle import IMAGE, Cli, force_delete_containers, launch  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402
from tests.support import Daemon, _UnixConnection  # noqa: E402

_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The processes that make up Docker Engine's side of the load.
DOCKER_PROCESSES = ("dockerd", "containerd", "containerd-shim-runc-v2", "containerd-shim")


# --------------------------------------------------------------------------- CPU time


def cpu_seconds(pid: int) -> float:
    """User and system CPU of ``pid``, with that of the children it reaped (0 if gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / _CLK_TCK


def _command(pid: int) -> tuple[str, str]:
    """The name and command line of ``pid`` (empty if gone)."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "", ""
    return name, line.decode(errors="replace")


def docker_side(workdir: Path) -> dict[int, str]:
    """pid -> name of dockerd, containerd and the shims that belong to ``workdir``."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            name, line = _command(int(entry))
            if name in DOCKER_PROCESSES and str(workdir) in line:
                found[int(entry)] = name
    return found


@dataclass
class CpuMeter:
    """CPU seconds of a set of processes over a window, by process name."""

    discover: Callable[[], dict[int, str]]
    _start: dict[int, float] = field(default_factory=dict)

    def begin(self) -> None:
        self._start = {pid: cpu_seconds(pid) for pid in self.discover()}

    def end(self) -> dict[str, float]:
        """Seconds used since :meth:`begin`, summed by process name."""
        used: dict[str, float] = {}
        for pid, name in self.discover().items():
            used[name] = used.get(name, 0.0) + cpu_seconds(pid) - self._start.get(pid, 0.0)
        return used


# --------------------------------------------------------------------------- the load


@dataclass
class LoadFigures:
    """What the clients saw after the warm-up."""

    list_ms: list[float] = field(default_factory=list)
    inspect_ms: list[float] = field(default_factory=list)
    events: int = 0
    errors: int = 0
    late_polls: int = 0  # polls that did not fit in their interval


@dataclass(frozen=True)
class LoadPlan:
    socket: str
    pollers: int
    inspects: int
    interval: float
    followers: int
    warmup: float
    duration: float


def _get(connection: _UnixConnection, url: str) -> tuple[int, bytes]:
    connection.request("GET", url, headers={"Host": "api.moby.localhost"})
    response = connection.getresponse()
    return response.status, response.read()


def _poller(plan: LoadPlan, offset: int, record_from: float, stop_at: float,
            figures: LoadFigures, lock: threading.Lock) -> None:
    """List and inspect every ``plan.interval`` until ``stop_at``."""
    connection = _UnixConnection(plan.socket, timeout=30.0)
    turn = offset
    next_poll = time.monotonic() + plan.interval * offset / max(plan.pollers, 1)
    try:
        while (pause := next_poll - time.monotonic()) < stop_at - time.monotonic():
            time.sleep(max(0.0, pause))
            started = time.monotonic()
            status, body = _get(connection, "/containers/json?all=1")
            listed = time.monotonic()
            ids = [item["Id"] for item in json.loads(body)] if status == 200 else []
            timings = []
            for index in range(min(plan.inspects, len(ids))):
                began = time.monotonic()
                chosen = ids[(turn + index) % len(ids)]
                inspected, _ = _get(connection, f"/containers/{chosen}/json")
                timings.append(((time.monotonic() - began) * 1e3, inspected == 200))
            turn += plan.inspects
            next_poll += plan.interval
            if started < record_from:
                continue
            with lock:
                figures.list_ms.append((listed - started) * 1e3)
                figures.inspect_ms += [ms for ms, good in timings if good]
                figures.errors += (status != 200) + sum(not good for _, good in timings)
                figures.late_polls += time.monotonic() > next_poll
    finally:
        connection.close()


def _follower(plan: LoadPlan, record_from: float, stop_at: float, figures: LoadFigures,
              lock: threading.Lock) -> None:
    """Follow ``GET /events`` until ``stop_at``, counting the lines after warm-up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(plan.socket)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: api.moby.localhost\r\n\r\n")
        while (left := stop_at - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except TimeoutError:
                break
            if not data:
                with lock:
                    figures.errors += 1
                break
            if time.monotonic() >= record_from:
                with lock:
                    figures.events += data.count(b"\n") - data.count(b"\r\n")


def run_load(plan: LoadPlan) -> LoadFigures:
    """The pollers and followers, in threads, for ``warmup + duration`` seconds."""
    figures, lock = LoadFigures(), threading.Lock()
    record_from = time.monotonic() + plan.warmup
    stop_at = record_from + plan.duration
    threads = [threading.Thread(target=_poller, daemon=True,
                                args=(plan, n, record_from, stop_at, figures, lock))
               for n in range(plan.pollers)]
    threads += [threading.Thread(target=_follower, daemon=True,
                                 args=(plan, record_from, stop_at, figures, lock))
                for _ in range(plan.followers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(stop_at - time.monotonic() + 30.0)
    return figures


def _load_process(pipe: Connection, plan: LoadPlan) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop,
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # and ends it quietly once it has sent
    try:
        pipe.send(run_load(plan))
    except Exception as error:  # reported by the parent
        pipe.send(f"{type(error).__name__}: {error}")
    finally:
        pipe.close()


@contextlib.contextmanager
def load_running(plan: LoadPlan) -> Iterator[Callable[[], LoadFigures]]:
    """The clients in a forked process (no GIL shared with the measuring); yields a
    function that waits for their figures."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_load_process, args=(sender, plan), daemon=True)
    process.start()
    sender.close()

    def collect() -> LoadFigures:
        if not receiver.poll(plan.warmup + plan.duration + 60.0):
            raise RuntimeError("the load clients did not finish in time")
        outcome = receiver.recv()
        if isinstance(outcome, str):
            raise RuntimeError(outcome)
        return outcome

    try:
        yield collect
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
        process.join(5.0)


@contextlib.contextmanager
def docker_stats(cli: Cli) -> Iterator[subprocess.Popen[bytes]]:
    """``docker stats`` of every running container, its output thrown away."""
    process = subprocess.Popen([cli.binary, "stats"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               env=cli.env)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- targets


@dataclass
class Outcome:
    """One target's figures."""

    name: str
    containers: int
    cpu: dict[str, float]
    duration: float
    load: LoadFigures
    stats_ok: bool

    @property
    def cpu_per_minute(self) -> float:
        return sum(self.cpu.values()) * 60.0 / self.duration


def populate(cli: Cli, tar: Path, count: int) -> int:
    """Import the image and start ``count`` containers, 10 at a time; how many run."""
    cli.ok("import", str(tar), IMAGE)
    for first in range(0, count, 10):
        launch(cli, min(10, count - first), f"m{first}-", run_args=("--network", "none"))
    return len(cli.running_ids())


def measure(name: str, cli: Cli, meter: CpuMeter, tar: Path,
            options: argparse.Namespace) -> Outcome:
    """Start the containers, run the load, measure the daemon side's CPU."""
    _progress(f"{name}: starting {options.containers} containers")
    running = populate(cli, tar, options.containers)
    time.sleep(2.0)  # let the starts settle
    plan = LoadPlan(cli.env["DOCKER_HOST"].removeprefix("unix://"), options.pollers,
                    options.inspects, options.interval, options.followers,
                    options.warmup, options.duration)
    _progress(f"{name}: load for {options.warmup:g}+{options.duration:g} s")
    with docker_stats(cli) as stats, load_running(plan) as collect:
        time.sleep(options.warmup)
        meter.begin()
        started = time.monotonic()
        time.sleep(options.duration)
        cpu = meter.end()
        measured = time.monotonic() - started
        stats_ok = stats.poll() is None
        load = collect()
    outcome = Outcome(name, running, cpu, measured, load, stats_ok)
    _progress(f"{name}: {outcome.cpu_per_minute:.2f} CPU s/min")
    return outcome


def on_dockertw(workdir: Path, tar: Path, options: argparse.Namespace) -> Outcome:
    (workdir / "dockertw").mkdir()
    daemon = Daemon(workdir / "dockertw")
    try:
        daemon.start()
        assert daemon.process is not None and daemon.socket is not None
        pid = daemon.process.pid
        cli = Cli(daemon.socket, workdir / "cli-dockertw")
        return measure("dockertw", cli, CpuMeter(lambda: {pid: "dockertw"}), tar, options)
    finally:
        _remove_all(daemon.socket, workdir / "cli-clean")
        daemon.stop(timeout=60.0)
        force_delete_containers(daemon.root)


def on_docker(workdir: Path, tar: Path, options: argparse.Namespace) -> Outcome | None:
    def bench(engine: DockerEngine) -> Outcome:
        try:
            cli = Cli(str(engine.socket), workdir / "cli-docker")
            meter = CpuMeter(lambda: docker_side(engine.workdir))
            return measure("docker", cli, meter, tar, options)
        finally:
            _remove_all(str(engine.socket), workdir / "cli-clean-docker")

    return on_dockerd(DockerEngine(workdir / "docker"), bench)


def _remove_all(socket_path: str | None, config: Path) -> None:
    """``docker rm -f`` every container, if the daemon still answers."""
    if not socket_path or not os.path.exists(socket_path):
        return
    with contextlib.suppress(Exception):
        cli = Cli(socket_path, config)
        ids = cli.ok("ps", "-aq", timeout=30).split()
        if ids:
            cli.run("rm", "-f", *ids, timeout=600)


# --------------------------------------------------------------------------- report


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


def print_report(outcomes: Sequence[Outcome], options: argparse.Namespace) -> None:
    print(f"CPUs: {os.cpu_count()}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {options.pollers} pollers "
          f"(list + {options.inspects} inspects every {options.interval:g} s), "
          f"{options.followers} event followers, one docker stats")
    print(f"{'target':9} {'running':>7} {'CPU s/min':>9} {'list p50':>8} {'list p99':>8} "
          f"{'insp p50':>8} {'insp p99':>8} {'polls':>6} {'late':>5} {'errors':>6} "
          f"{'stats':>5}  by process (CPU s/min)")
    for o in outcomes:
        load = o.load
        parts = ", ".join(f"{name} {seconds * 60.0 / o.duration:.2f}"
                          for name, seconds in sorted(o.cpu.items()))
        print(f"{o.name:9} {o.containers:7d} {o.cpu_per_minute:9.2f} "
              f"{_percentile(load.list_ms, 0.5):8.2f} {_percentile(load.list_ms, 0.99):8.2f} "
              f"{_percentile(load.inspect_ms, 0.5):8.2f} "
              f"{_percentile(load.inspect_ms, 0.99):8.2f} {len(load.list_ms):6d} "
              f"{load.late_polls:5d} {load.errors:6d} {'ok' if o.stats_ok else 'DIED':>5}  "
              f"{parts}")
    by_name = {o.name: o for o in outcomes}
    if "dockertw" in by_name and "docker" in by_name and by_name["docker"].cpu_per_minute:
        ratio = by_name["dockertw"].cpu_per_minute / by_name["docker"].cpu_per_minute
        print(f"dockertw / docker daemon-side CPU: {ratio:.2f} (target: at most 0.5)")


# --------------------------------------------------------------------------- main


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--containers", type=int, default=100,
                        help="running containers (default 100)")
    parser.add_argument("--pollers", type=int, default=10, help="polling clients (10)")
    parser.add_argument("--inspects", type=int, default=10,
                        help="containers each poll inspects (10)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between a poller's polls (1)")
    parser.add_argument("--followers", type=int, default=5, help="event followers (5)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("--duration", type=float, default=30.0,
                        help="seconds measured (30)")
    parser.add_argument("--docker", action="store_true",
                        help="also measure a private dockerd (Debian package docker.io)")
    parser.add_argument("--skip-dockertw", action="store_true", help=argparse.SUPPRESS)


def bench(workdir: Path, options: argparse.Namespace) -> None:
    if os.geteuid() != 0 or shutil.which("docker") is None:
        raise SystemExit("needs root and the docker CLI")
    if not 1 <= options.containers <= 500 or not 1 <= options.duration <= 600:
        raise SystemExit("--containers must be in [1, 500] and --duration in [1, 600]")
    (workdir / "image").mkdir()
    tar = make_busybox_tar(workdir / "image")
    outcomes = []
    if not options.skip_dockertw:
        outcomes.append(on_dockertw(workdir, tar, options))
    if options.docker:
        found = on_docker(workdir, tar, options)
        outcomes += [found] if found is not None else []
    print()
    print_report(outcomes, options)


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(__doc__.splitlines()[0], "dtwb-mon-", _add_arguments, bench, argv)


if __name__ == "__main__":
    sys.exit(main())

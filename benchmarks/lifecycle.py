#!/usr/bin/env python3
"""Container lifecycle figures of dockertw, driven by the real ``docker`` CLI.

Measures, against a daemon it starts on a temporary root (and always stops):

* ``docker run --rm IMAGE true``: median and p90 of ``--runs`` runs after 2 warm-ups,
  beside its floor: ``runc`` alone (create, start, delete) on the daemon's own spec;
* ``--concurrent`` ``docker run -d IMAGE sleep 1000`` launched at once: wall time until
  every CLI has exited and every container runs;
* ``docker ps`` and ``docker ps -a`` with ``--containers`` running containers (median);
* daemon-side RSS idle and with those containers running: the daemon and every process
  it keeps that is not inside a container (container inits are re-parented to the daemon,
  a subreaper; processes in another PID namespace are the containers' own);
* logs: a container writes ``--log-mb`` MB of 1 KiB lines to stdout (time until it
  exits: the daemon's log write path), then ``docker logs C > /dev/null`` (MB/s of
  payload: the read path), with the daemon's peak RSS.

The image is busybox-static imported with ``docker import``, as the tests make it.
Figures only, no verdict; the issue's targets are printed beside them::

    .venv/bin/python benchmarks/lifecycle.py [--runs 20] [--concurrent 20]
        [--containers 100] [--log-mb 200] [--skip-logs] [--skip-floor] [--live-restore]

Needs root, runc, busybox-static and the docker CLI (first on PATH).
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import json
import math
import os
import select
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import temporary_workdir  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402
from tests.support import Daemon  # noqa: E402

IMAGE = "bench:1"
LINE = 1024  # bytes per log line, newline included
MB = 1_000_000
MIB = 1 << 20

# The issue's targets, and Docker Engine 20.10's figures on the same 2-core machine.
TARGETS = {
    "run_rm": (0.1, 0.196),  # seconds, median of docker run --rm IMG true
    "concurrent": (0.9, 1.82),  # seconds, 20 concurrent docker run -d
    "ps": (0.036, 0.036),  # seconds, docker ps with 100 running
    "logs": (100.0, 9.4),  # MB/s, docker logs of 200 MB
    "rss": (300.0, 1440.0),  # MiB, daemon side with 100 running
}


@dataclass
class Figures:
    """Everything measured; None where a phase did not run."""

    cli_floor: float | None = None  # docker version (client + one API round trip)
    run_rm: list[float] = field(default_factory=list)
    floor: dict[str, list[float]] = field(default_factory=dict)  # runc alone, seconds
    concurrent: float | None = None
    concurrent_count: int = 0
    start_batch: float | None = None  # the rest up to --containers, in batches
    running: int = 0
    ps: list[float] = field(default_factory=list)
    ps_all: list[float] = field(default_factory=list)
    rss_fresh: float | None = None  # MiB
    rss_idle: float | None = None
    rss_loaded: float | None = None
    helpers_loaded: int = 0  # daemon-side processes besides the daemon itself
    container_rss: float | None = None  # MiB, for information: the containers' own
    remove_all: float | None = None
    log_bytes: int = 0
    log_file_bytes: int = 0
    log_write: float | None = None  # container start -> exit, daemon timestamps
    log_read: float | None = None
    log_read_ok: bool = False
    log_peak_rss: float | None = None  # MiB, daemon VmHWM after writing + reading
    log_peak_before: float | None = None


# --------------------------------------------------------------------------- the CLI


class Cli:
    """The real ``docker`` CLI, pointed at one daemon, with a private config directory."""

    def __init__(self, socket: str, config: Path) -> None:
        binary = shutil.which("docker")
        if binary is None:
            raise RuntimeError("the docker CLI is not on PATH")
        self.binary = binary
        config.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env.update(DOCKER_HOST=f"unix://{socket}", DOCKER_CONFIG=str(config))

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.binary, *args], capture_output=True, text=True,
                              env=self.env, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)

    def ok(self, *args: str, timeout: float = 60.0) -> str:
        done = self.run(*args, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.strip()[:500]}")
        return done.stdout

    def timed(self, *args: str, timeout: float = 60.0) -> float:
        """Seconds one successful ``docker ARGS`` took (output discarded)."""
        start = time.perf_counter()
        done = subprocess.run([self.binary, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=self.env, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed ({done.returncode}): "
                               f"{done.stderr.decode(errors='replace').strip()[:500]}")
        return elapsed

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([self.binary, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=self.env)

    def running_ids(self) -> set[str]:
        return set(self.ok("ps", "-q", "--no-trunc").split())


# --------------------------------------------------------------------------- /proc


def _status_kib(pid: int, key: str) -> int:
    """A ``VmRSS``-like line of /proc/PID/status in KiB (0 if gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _parents() -> dict[int, int]:
    """pid -> ppid of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        found[int(entry)] = int(text[text.rfind(")") + 2:].split()[1])
    return found


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _pid_namespace(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Rss:
    """Daemon-side RSS (the daemon and its helpers) and the containers' own."""

    daemon_side_kib: int
    helpers: int
    container_kib: int
    containers: int

    @property
    def daemon_side_mib(self) -> float:
        return self.daemon_side_kib / 1024


def daemon_rss(pid: int) -> Rss:
    """Sum VmRSS of ``pid`` and its descendants in its own PID namespace; descendants in
    another PID namespace (container processes) are summed apart."""
    own = _pid_namespace(pid)
    side, helpers, inside, containers = _status_kib(pid, "VmRSS"), 0, 0, 0
    for child in descendants(pid):
        kib = _status_kib(child, "VmRSS")
        namespace = _pid_namespace(child)
        if namespace and namespace != own:
            inside += kib
            containers += 1
        elif namespace:
            side += kib
            helpers += 1
    return Rss(side, helpers, inside, containers)


# --------------------------------------------------------------------------- set-up


def force_delete_containers(root: Path) -> None:
    """``runc delete --force`` whatever is left in ``root/runc`` or ``root/state`` (the
    daemon's runc state after a crash or a SIGKILL; the floor's): kills the containers'
    processes and removes their cgroups."""
    state = root / "runc" if (root / "runc").is_dir() else root / "state"
    if not state.is_dir():
        return
    for entry in state.iterdir():
        subprocess.run(["runc", "--root", str(state), "delete", "--force", entry.name],
                       check=False, capture_output=True, timeout=30)


# --------------------------------------------------------------------------- phases


def phase_run_rm(cli: Cli, runs: int, figures: Figures) -> None:
    for _ in range(2):
        cli.timed("run", "--rm", IMAGE, "true")
    for _ in range(runs):
        figures.run_rm.append(cli.timed("run", "--rm", IMAGE, "true"))
    _progress(f"run --rm true: median {statistics.median(figures.run_rm):.3f}s")


FLOOR_CGROUP = "dockertw-bench-floor"


def phase_floor(cli: Cli, daemon: Daemon, tar: Path, workdir: Path, runs: int,
                figures: Figures) -> None:
    """runc alone, on a bundle made like the daemon's: the floor under ``run --rm``.

    The spec is the daemon's own ``config.json`` of a running container, pointed at a
    plain copy of the image (no overlay) and running ``true``; each run is ``runc create``,
    ``runc start``, the exit (seen through a pidfd) and ``runc delete``, as the daemon
    does, then the same through one ``runc run``."""
    runc = shutil.which("runc")
    if runc is None:
        return
    container_id = cli.ok("run", "-d", "--name", "floor-source", IMAGE, "sleep", "1000").strip()
    try:  # the spec binds the source's own files (hosts, resolv.conf, ...): keep it
        spec = json.loads((daemon.root / "containers" / container_id / "config.json")
                          .read_text())
        figures.floor = _floor_steps(runc, spec, tar, workdir, runs)
    finally:
        cli.ok("rm", "-f", "floor-source")
    _progress(f"runc floor: {statistics.median(figures.floor['create+start+delete']):.3f}s")


def _floor_steps(runc: str, spec: dict[str, Any], tar: Path, workdir: Path,
                 runs: int) -> dict[str, list[float]]:
    """Seconds of each runc step, ``runs`` times (after two untimed), on ``spec``."""
    bundle = workdir / "floor"
    (bundle / "rootfs").mkdir(parents=True)
    with tarfile.open(tar) as archive:
        archive.extractall(bundle / "rootfs", filter="tar")
    spec["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    spec["process"]["args"] = ["true"]
    state, log = bundle / "state", bundle / "runc.log"
    base = [runc, "--root", str(state), "--log", str(log), "--log-format", "json"]
    steps: dict[str, list[float]] = {"create": [], "start": [], "exit": [], "delete": [],
                                     "create+start+delete": [], "run (one process)": []}
    try:
        for i in range(runs + 2):
            name = f"floor{i}"
            spec["linux"]["cgroupsPath"] = f"/{FLOOR_CGROUP}/{name}"
            (bundle / "config.json").write_text(json.dumps(spec))
            times = [time.perf_counter()]
            _runc(base + ["create", "--bundle", str(bundle), "--pid-file",
                          str(bundle / "init.pid"), name])
            times.append(time.perf_counter())
            pidfd = os.pidfd_open(int((bundle / "init.pid").read_text()))
            try:
                _runc(base + ["start", name])
                times.append(time.perf_counter())
                select.select([pidfd], [], [], 10.0)
            finally:
                os.close(pidfd)
            times.append(time.perf_counter())
            _runc(base + ["delete", "--force", name])
            times.append(time.perf_counter())
            if i >= 2:
                for key, begin, end in zip(("create", "start", "exit", "delete"),
                                           times[:4], times[1:], strict=True):
                    steps[key].append(end - begin)
                steps["create+start+delete"].append(times[4] - times[0])
        for i in range(runs + 2):
            name = f"floor-run{i}"
            spec["linux"]["cgroupsPath"] = f"/{FLOOR_CGROUP}/{name}"
            (bundle / "config.json").write_text(json.dumps(spec))
            start = time.perf_counter()
            _runc(base + ["run", "--bundle", str(bundle), name])
            if i >= 2:
                steps["run (one process)"].append(time.perf_counter() - start)
    finally:
        force_delete_containers(bundle)
        remove_floor_cgroups()
    return steps


def _runc(argv: list[str]) -> None:
    """One runc command; its stdio is the container's, so errors are read from its log."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"runc {argv[7]} did not finish in 30s") from None
    if done.returncode != 0:
        log = Path(argv[4]).read_text(errors="replace").strip().splitlines()
        raise RuntimeError(f"runc {argv[7]} failed: {log[-1][:300] if log else '?'}")


def remove_floor_cgroups() -> None:
    """The (empty) parent cgroups ``runc delete`` leaves behind after the floor runs."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{FLOOR_CGROUP}"):
        with contextlib.suppress(OSError):
            parent.rmdir()
    with contextlib.suppress(OSError):
        Path("/sys/fs/cgroup", FLOOR_CGROUP).rmdir()


def launch(cli: Cli, count: int, prefix: str, timeout: float = 120.0,
           run_args: Sequence[str] = ()) -> float:
    """``count`` ``docker run -d [run_args] IMAGE sleep 1000`` at once; seconds until
    every CLI has exited and every one of them runs."""
    start = time.perf_counter()
    processes = [cli.popen("run", "-d", *run_args, "--name", f"{prefix}{i}", IMAGE,
                           "sleep", "1000")
                 for i in range(count)]
    ids, failures = set(), []
    try:
        for process in processes:
            out, err = process.communicate(timeout=timeout)
            if process.returncode != 0:
                failures.append(err.decode(errors="replace").strip())
            else:
                ids.add(out.decode().strip())
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} docker run -d failed: {failures[0]}")
    while not ids <= cli.running_ids():
        if time.perf_counter() - start > timeout:
            raise RuntimeError("containers did not all run in time")
        time.sleep(0.01)
    return time.perf_counter() - start


def phase_many(cli: Cli, daemon_pid: int, options: argparse.Namespace,
               figures: Figures) -> None:
    figures.concurrent = launch(cli, options.concurrent, "c")
    figures.concurrent_count = options.concurrent
    _progress(f"{options.concurrent} concurrent run -d: {figures.concurrent:.3f}s")
    rest, started, batch = options.containers - options.concurrent, 0, 10
    start = time.perf_counter()
    while started < rest:
        count = min(batch, rest - started)
        launch(cli, count, f"b{started}-")
        started += count
    if rest > 0:
        figures.start_batch = time.perf_counter() - start
    figures.running = len(cli.running_ids())
    _progress(f"{figures.running} running")
    time.sleep(1.0)  # let the last starts settle before sampling memory
    rss = daemon_rss(daemon_pid)
    figures.rss_loaded = rss.daemon_side_mib
    figures.helpers_loaded = rss.helpers
    figures.container_rss = rss.container_kib / 1024
    for args, into in ((("ps",), figures.ps), (("ps", "-a"), figures.ps_all)):
        for _ in range(2):
            cli.timed(*args)
        for _ in range(options.runs):
            into.append(cli.timed(*args))
    _progress(f"ps: median {statistics.median(figures.ps):.3f}s")
    start = time.perf_counter()
    ids = cli.ok("ps", "-aq").split()
    if ids:
        cli.ok("rm", "-f", *ids, timeout=300)
    figures.remove_all = time.perf_counter() - start


def _inspect_time(cli: Cli, name: str, key: str) -> float:
    """A State timestamp of ``name`` as seconds since the epoch (nanosecond precision)."""
    text = cli.ok("inspect", "-f", "{{.State." + key + "}}", name).strip()
    stamp, _, fraction = text.rstrip("Z").partition(".")
    whole = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
    return whole + float("0." + (fraction or "0"))


def phase_logs(cli: Cli, daemon: Daemon, daemon_pid: int, megabytes: int,
               figures: Figures) -> None:
    size = megabytes * MB
    line = "x" * (LINE - 1)
    figures.log_peak_before = _status_kib(daemon_pid, "VmHWM") / 1024
    cli.ok("run", "-d", "--name", "logger", IMAGE, "sh", "-c",
           f"yes {line} | head -c {size}")
    code = cli.ok("wait", "logger", timeout=600).strip()
    if code != "0":
        raise RuntimeError(f"the log writer exited with {code}")
    figures.log_write = (_inspect_time(cli, "logger", "FinishedAt")
                         - _inspect_time(cli, "logger", "StartedAt"))
    log_path = Path(cli.ok("inspect", "-f", "{{.LogPath}}", "logger").strip())
    figures.log_file_bytes = log_path.stat().st_size
    figures.log_bytes = size
    _progress(f"log write: {size / MB / figures.log_write:.1f} MB/s")
    with open(os.devnull, "wb") as null:
        start = time.perf_counter()
        done = subprocess.run([cli.binary, "logs", "logger"], stdout=null,
                              stderr=subprocess.PIPE, env=cli.env, timeout=1200,
                              check=False, stdin=subprocess.DEVNULL)
        figures.log_read = time.perf_counter() - start
    figures.log_read_ok = done.returncode == 0 and not done.stderr
    figures.log_peak_rss = _status_kib(daemon_pid, "VmHWM") / 1024
    _progress(f"log read: {size / MB / figures.log_read:.1f} MB/s")
    cli.ok("rm", "-f", "logger")


def run(workdir: Path, options: argparse.Namespace, figures: Figures) -> None:
    """Every phase against one daemon, which is always stopped; fills ``figures``."""
    (workdir / "image").mkdir()
    tar = make_busybox_tar(workdir / "image")
    home = workdir / "d"
    home.mkdir()
    daemon = Daemon(home, ["--live-restore"] if options.live_restore else [])
    try:
        daemon.start()
        assert daemon.process is not None and daemon.socket is not None
        pid = daemon.process.pid
        cli = Cli(daemon.socket, workdir / "cli")
        cli.ok("import", str(tar), IMAGE)
        figures.cli_floor = statistics.median(cli.timed("version") for _ in range(5))
        figures.rss_fresh = daemon_rss(pid).daemon_side_mib
        phase_run_rm(cli, options.runs, figures)
        if not options.skip_floor:
            phase_floor(cli, daemon, tar, workdir, options.runs, figures)
        time.sleep(0.5)
        figures.rss_idle = daemon_rss(pid).daemon_side_mib
        if options.containers > 0:
            phase_many(cli, pid, options, figures)
        if not options.skip_logs:
            phase_logs(cli, daemon, pid, options.log_mb, figures)
        if "Traceback" in daemon.output():
            _progress("the daemon logged a traceback; see its log above")
            print(daemon.output()[-3000:], file=sys.stderr)
    finally:
        _cleanup(daemon)


def _cleanup(daemon: Daemon) -> None:
    """Remove every container, stop the daemon, kill what it left behind."""
    if daemon.process is not None and daemon.process.poll() is None and daemon.socket:
        with contextlib.suppress(Exception):
            cli = Cli(daemon.socket, daemon.workdir / "cli-cleanup")
            ids = cli.ok("ps", "-aq", timeout=30).split()
            if ids:
                cli.run("rm", "-f", *ids, timeout=300)
    daemon.stop(timeout=60.0)
    daemon.kill_leftovers()  # a --live-restore daemon leaves its holder
    force_delete_containers(daemon.exec_root)


# --------------------------------------------------------------------------- report


def _progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def _pick(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _fmt(value: float | None, unit: str, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f} {unit}"


def print_report(figures: Figures, options: argparse.Namespace) -> None:
    print(f"CPUs: {os.cpu_count()}; Python {sys.version.split()[0]}; "
          f"docker CLI {shutil.which('docker')}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows: list[tuple[str, str, str, str]] = []

    def row(name: str, value: str, target: str = "", docker: str = "") -> None:
        rows.append((name, value, target, docker))

    row("docker version (CLI floor), median of 5", _fmt(figures.cli_floor, "s"))
    if figures.run_rm:
        target, docker = TARGETS["run_rm"]
        row(f"run --rm true, median of {len(figures.run_rm)}",
            _fmt(statistics.median(figures.run_rm), "s"), f"<= {target} s", f"{docker} s")
        row("run --rm true, p90", _fmt(_pick(figures.run_rm, 0.9), "s"))
        row("run --rm true, min / max",
            f"{min(figures.run_rm):.3f} / {max(figures.run_rm):.3f} s")
    for step, values in figures.floor.items():
        if values:
            row(f"  floor: runc {step} alone, median", _fmt(statistics.median(values), "s"))
    if figures.concurrent is not None:
        target, docker = TARGETS["concurrent"]
        row(f"{figures.concurrent_count} concurrent run -d, wall",
            _fmt(figures.concurrent, "s"), f"<= {target} s", f"{docker} s")
    if figures.start_batch is not None:
        row(f"next {figures.running - figures.concurrent_count} run -d, 10 at a time",
            _fmt(figures.start_batch, "s"))
    if figures.ps:
        target, docker = TARGETS["ps"]
        row(f"ps, {figures.running} running, median", _fmt(statistics.median(figures.ps),
                                                            "s"), f"<= {target} s",
            f"{docker} s")
        row(f"ps -a, {figures.running} running, median",
            _fmt(statistics.median(figures.ps_all), "s"))
    if figures.remove_all is not None:
        row(f"rm -f of {figures.running} running (one CLI)", _fmt(figures.remove_all, "s"))
    if figures.log_read is not None and figures.log_write is not None:
        target, docker = TARGETS["logs"]
        mb = figures.log_bytes / MB
        row(f"logs read, {mb:.0f} MB payload", _fmt(mb / figures.log_read, "MB/s", 1),
            f">= {target:.0f} MB/s", f"{docker} MB/s")
        row("logs read, wall", _fmt(figures.log_read, "s", 2)
            + ("" if figures.log_read_ok else " (FAILED)"))
        row("log write (container start->exit)", _fmt(mb / figures.log_write, "MB/s", 1)
            + f" ({figures.log_write:.2f} s)")
        row("json log file size", f"{figures.log_file_bytes / MB:.0f} MB")
        row("daemon peak RSS (VmHWM) before/after logs",
            f"{_fmt(figures.log_peak_before, 'MiB', 0)} / "
            f"{_fmt(figures.log_peak_rss, 'MiB', 0)}")
    row("daemon RSS, fresh (after import)", _fmt(figures.rss_fresh, "MiB", 1))
    row("daemon RSS, idle (after run --rm)", _fmt(figures.rss_idle, "MiB", 1))
    if figures.rss_loaded is not None:
        target, docker = TARGETS["rss"]
        row(f"daemon-side RSS, {figures.running} running "
            f"(+{figures.helpers_loaded} helpers)", _fmt(figures.rss_loaded, "MiB", 1),
            f"<= {target:.0f} MiB", f"{docker:,.0f} MiB")
        row("  containers' own processes (not counted)",
            _fmt(figures.container_rss, "MiB", 1))
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':{width}}  {'dockertw':>18}  {'target':>14}  {'docker 20.10':>12}")
    for name, value, goal, theirs in rows:
        print(f"{name:{width}}  {value:>18}  {goal:>14}  {theirs:>12}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=20,
                        help="timed runs of run --rm and ps (default 20)")
    parser.add_argument("--concurrent", type=int, default=20,
                        help="docker run -d launched at once (default 20)")
    parser.add_argument("--containers", type=int, default=100,
                        help="containers running for ps and RSS (default 100; 0 skips)")
    parser.add_argument("--log-mb", type=int, default=200,
                        help="MB the log writer prints (default 200)")
    parser.add_argument("--skip-logs", action="store_true", help="skip the log phase")
    parser.add_argument("--skip-floor", action="store_true",
                        help="skip runc alone on a prepared bundle")
    parser.add_argument("--live-restore", action="store_true",
                        help="run the daemon with --live-restore (its holder counts as a "
                             "helper)")
    options = parser.parse_args(argv)
    if not 1 <= options.runs <= 1000 or not 1 <= options.log_mb <= 10_000:
        parser.error("--runs must be in [1, 1000] and --log-mb in [1, 10000]")
    if options.containers and not 1 <= options.concurrent <= options.containers <= 1000:
        parser.error("need 1 <= --concurrent <= --containers <= 1000")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (runc, overlay mounts)", file=sys.stderr)
        return 2
    figures, failed = Figures(), False
    with temporary_workdir("dtwl-") as workdir:
        try:
            run(workdir, options, figures)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            print(f"failed: {error}", file=sys.stderr)
            failed = True
    print()
    print_report(figures, options)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

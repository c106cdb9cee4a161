#!/usr/bin/env python3
"""Networking figures of dockertw beside a Docker Engine on the same machine.

For each engine (dockertw on a temporary root; with ``--docker`` a private ``dockerd``
too, with iptables and a bridge this script makes for it), driven by the real CLI:

* ``docker run --rm IMG true`` on the default bridge: median of ``--runs``;
* ``--concurrent`` ``docker run -d --network bench IMG sleep 1000`` at once on one
  user network: wall time until every CLI has exited and every container runs;
* TCP throughput host -> container through a published port, on 127.0.0.1 and on an
  address of the host's own (a veth the script makes, 198.18.0.0/15): ``--megabytes``
  MiB sent by this script into ``nc -l`` in the container;
* daemon-side RSS with ``--containers`` running on a user network, each with a port
  published on 127.0.0.1 (dockerd: with containerd, its shims and a ``docker-proxy``
  per port).

Ratios dockertw/Docker are printed beside the issue's targets; no verdict::

    .venv/bin/python benchmarks/network.py [--runs 10] [--concurrent 50]
        [--megabytes 1000] [--containers 100] [--docker]

Needs root, runc, the CNI plugins, iptables and the docker CLI; ``--docker`` needs
``dockerd`` (Debian's docker.io).  Everything made is removed, dockerd's chains too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    DockerEngine,
    add_docker_option,
    on_dockerd,
    run_benchmark,
    time_runs,
)
from benchmarks.lifecycle import daemon_rss  # noqa: E402
from tests.cli import cli, import_image, ok  # noqa: E402
from tests.netsupport import free_block, host_address, network_args  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402
from tests.support import Daemon, free_port  # noqa: E402

IMAGE = "bb:1"
TARGETS = {"run_rm": 0.6, "concurrent": 0.6, "throughput": 1.0, "rss": 300.0}


@dataclass
class Figures:
    run_rm: list[float] = field(default_factory=list)
    concurrent: float | None = None
    loopback_mbs: float | None = None
    address_mbs: float | None = None
    rss_mib: float | None = None
    helpers: int = 0


# --------------------------------------------------------------------------- phases


def _launch(target: Any, count: int, *args: str, timeout: float = 300.0) -> float:
    """``count`` ``docker run -d ARGS IMAGE sleep 1000`` at once; seconds until all CLIs
    have exited (each started its container)."""
    start = time.perf_counter()
    processes = [subprocess.Popen(
        ["docker", "-H", f"unix://{target.socket}", "run", "-d", *args, IMAGE, "sleep",
         "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(count)]
    failures = []
    for process in processes:
        _, err = process.communicate(timeout=timeout)
        if process.returncode != 0:
            failures.append(err.strip())
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} runs failed: {failures[0]}")
    return time.perf_counter() - start


def _remove_all(target: Any) -> None:
    ids = ok(target, "ps", "-aq").split()
    if ids:
        ok(target, "rm", "-f", *ids)


def _send(host: str, port: int, megabytes: int, tries: int = 50) -> float:
    """Seconds to push ``megabytes`` MB to ``host:port`` until the receiver closes."""
    chunk = os.urandom(1 << 20)
    for attempt in range(tries):
        try:
            start = time.perf_counter()
            with socket.create_connection((host, port), timeout=60) as sock:
                for _ in range(megabytes):
                    sock.sendall(chunk)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            return time.perf_counter() - start
        except OSError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _throughput(target: Any, host: str, bind: str, megabytes: int) -> float:
    """MiB/s through a port published on ``bind`` (``""``: every address), sent to
    ``host``."""
    port = free_port()
    published = f"{bind}:{port}:9000" if bind else f"{port}:9000"
    name = f"sink{port}"
    ok(target, "run", "-d", "--name", name, "-p", published, IMAGE, "sh", "-c",
       "nc -l -p 9000 > /dev/null")
    time.sleep(0.5)
    try:
        return megabytes / _send(host, port, megabytes)
    finally:
        cli(target, "rm", "-f", name)


def bench_target(name: str, target: Any, tar: Path, options: argparse.Namespace,
                 pid: Callable[[], Any]) -> Figures:
    figures = Figures()
    import_image(target, tar, IMAGE)
    figures.run_rm = time_runs(lambda: ok(target, "run", "--rm", IMAGE, "true"),
                               options.runs, warmup=2)
    print(f"{name}: run --rm median {statistics.median(figures.run_rm):.3f} s",
          file=sys.stderr)
    ok(target, "network", "create", "bench")
    try:
        figures.concurrent = _launch(target, options.concurrent, "--network", "bench")
        _remove_all(target)
        figures.loopback_mbs = _throughput(target, "127.0.0.1", "127.0.0.1",
                                           options.megabytes)
        with host_address() as address:
            figures.address_mbs = _throughput(target, address, "", options.megabytes)
        if options.containers:
            for _ in range(options.containers // 10):
                _launch(target, 10, "--network", "bench", "-p", "127.0.0.1::80")
            time.sleep(1.0)
            figures.rss_mib, figures.helpers = pid()
            _remove_all(target)
    finally:
        _remove_all(target)
        cli(target, "network", "rm", "bench")
    return figures


# --------------------------------------------------------------------------- dockerd


def _chains() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for table in ("filter", "nat"):
        dump = subprocess.run(["iptables-save", "-t", table], capture_output=True,
                              text=True, check=False).stdout
        found[table] = {line.split()[0][1:] for line in dump.splitlines()
                        if line.startswith(":")}
    return found


def _remove_docker_chains(before: dict[str, set[str]], bridge: str) -> None:
    """Delete the DOCKER* chains dockerd made, the jumps into them and its rules naming
    its bridge; chains that existed before it started are left alone."""
    for table, chains in _chains().items():
        made = {c for c in chains - before.get(table, set()) if c.startswith("DOCKER")}
        dump = subprocess.run(["iptables-save", "-t", table], capture_output=True,
                              text=True, check=False).stdout
        lines = ["-D" + line[2:] for line in dump.splitlines()
                 if line.startswith("-A ") and line.split()[1] not in made
                 and (any(f"-j {chain}" in line for chain in made)
                      or f" {bridge} " in f"{line} ")]
        if not lines and not made:
            continue
        lines += [f":{chain} - [0:0]" for chain in made] + [f"-X {chain}" for chain in made]
        text = f"*{table}\n" + "".join(f"{line}\n" for line in lines) + "COMMIT\n"
        subprocess.run(["iptables-restore", "--noflush", "-w"], input=text, text=True,
                       check=False)


class NetworkedDocker(DockerEngine):
    """A private dockerd with iptables, on a bridge made for it and a pool of its own."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.bridge = f"dtwdk{secrets.token_hex(4)}"
        self.subnet = free_block(24)
        self.pool = free_block(16)
        self.chains_before = _chains()

    def command(self, binary: str) -> list[str]:
        base = [arg for arg in super().command(binary)
                if arg not in ("--iptables=false", "--ip6tables=false", "--bridge=none")]
        return [*base, "--bridge", self.bridge, "--ip-forward=false",
                "--default-address-pool", f"base={self.pool},size=24"]

    def start(self, timeout: float = 60.0) -> None:
        gateway = f"{self.subnet.network_address + 1}/{self.subnet.prefixlen}"
        for command in (["ip", "link", "add", "name", self.bridge, "type", "bridge"],
                        ["ip", "addr", "add", gateway, "dev", self.bridge],
                        ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run(command, check=True)
        super().start(timeout)

    def stop(self) -> None:
        super().stop()
        subprocess.run(["ip", "link", "del", self.bridge], check=False, capture_output=True)
        _remove_docker_chains(self.chains_before, self.bridge)

    def rss(self) -> tuple[float, int]:
        """dockerd, containerd, the shims and the docker-proxies (MiB, helper count)."""
        assert self.process is not None
        pids = {self.process.pid, *_matching(str(self.workdir))}
        for pid in list(pids):
            pids.update(_descendants_in_namespace(pid))
        kib = sum(_rss_kib(pid) for pid in pids)
        return kib / 1024, len(pids) - 1


def _matching(text: str) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.add(int(entry))
    return found


def _descendants_in_namespace(pid: int) -> set[int]:
    found = set()
    own = os.readlink(f"/proc/{pid}/ns/pid")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            parent = int(stat[stat.rfind(")") + 2:].split()[1])
            if parent == pid and os.readlink(f"/proc/{entry}/ns/pid") == own:
                found.add(int(entry))
    return found


def _rss_kib(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- report


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or not theirs:
        return "-"
    return f"{ours / theirs:.2f}x"


def report(ours: Figures, docker: Figures | None, options: argparse.Namespace) -> None:
    theirs = docker or Figures()
    run_ours = statistics.median(ours.run_rm) if ours.run_rm else None
    run_theirs = statistics.median(theirs.run_rm) if theirs.run_rm else None
    rows = [
        ("run --rm true (default bridge), median", run_ours, run_theirs, "s",
         f"<= {TARGETS['run_rm']}x"),
        (f"{options.concurrent} concurrent run -d on a user network", ours.concurrent,
         theirs.concurrent, "s", f"<= {TARGETS['concurrent']}x"),
        (f"TCP {options.megabytes} MB via 127.0.0.1:PORT", ours.loopback_mbs,
         theirs.loopback_mbs, "MiB/s", f">= {TARGETS['throughput']}x"),
        (f"TCP {options.megabytes} MB via HOSTADDR:PORT", ours.address_mbs,
         theirs.address_mbs, "MiB/s", f">= {TARGETS['throughput']}x"),
        (f"daemon-side RSS, {options.containers} running (1 port each)", ours.rss_mib,
         theirs.rss_mib, "MiB", f"<= {TARGETS['rss']:.0f} MiB"),
    ]
    print(f"CPUs: {os.cpu_count()}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'figure':48} {'dockertw':>12} {'docker':>12} {'ratio':>7}  target")
    for name, mine, other, unit, target in rows:
        shown = "-" if mine is None else f"{mine:.3f} {unit}" if unit == "s" \
            else f"{mine:.1f} {unit}"
        shown_other = "-" if other is None else f"{other:.3f} {unit}" if unit == "s" \
            else f"{other:.1f} {unit}"
        print(f"{name:48} {shown:>12} {shown_other:>12} {_ratio(mine, other):>7}  {target}")
    print(f"helper processes with {options.containers} running: dockertw {ours.helpers}, "
          f"docker {theirs.helpers if docker else '-'}")


def bench(workdir: Path, options: argparse.Namespace) -> None:
    tar = make_busybox_tar(workdir)
    (workdir / "daemon").mkdir()
    daemon = Daemon(workdir / "daemon", network_args())

    def ours_rss() -> tuple[float, int]:
        assert daemon.process is not None
        rss = daemon_rss(daemon.process.pid)
        return rss.daemon_side_mib, rss.helpers

    try:
        daemon.start()
        ours = bench_target("dockertw", daemon, tar, options, ours_rss)
    finally:
        daemon.stop(timeout=60.0)
    docker = None
    if options.docker:
        engine = NetworkedDocker(workdir / "docker")
        docker = on_dockerd(engine, lambda e: bench_target("docker", e, tar, options,
                                                           engine.rss))
    report(ours, docker, options)
    print(json.dumps({"dockertw": ours.__dict__, "docker": docker.__dict__ if docker
                      else None}), file=sys.stderr)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--containers", type=int, default=100)
    add_docker_option(parser)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(__doc__ or "", "dtw-netbench-", _arguments, bench, argv)


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Requests per second and latency of dockertw's API, beside Docker Engine's.

Measures ``GET /_ping``, ``GET /v1.41/version`` and ``GET /v1.41/info``, and with
``--containers`` (default 100) running containers on each daemon the list of all of
them (``GET /v1.41/containers/json?all=1``) and the inspect of one, with 1 and 32
keep-alive connections, over the UNIX socket and over TCP on 127.0.0.1, and prints a
table of req/s and p50/p90/p99 latencies (and dockertw's CPU time per request).  It
starts its own daemon on a temporary root and always stops it; ``--docker`` starts a
private ``dockerd`` too and measures it case by case right after dockertw (so that both
see the machine alike), then prints the ratios the issue's targets are stated in;
``--policy`` starts a second dockertw whose listeners have a 20-rule access policy
(the rule that allows these routes comes last) and measures both, case by case in turn
(best of ``--rounds``), then prints the slowdown.  Figures only, no verdict::

    .venv/bin/python benchmarks/api.py [--duration 5] [--warmup 1] [--docker] [--no-wrk]
        [--containers 100] [--connections 1,32]
    .venv/bin/python benchmarks/api.py --policy [--rounds 2] [--no-wrk] --containers 0

The load generator is a small epoll client in a forked process (so that it shares no
GIL with this script): each connection has one request in flight and sends the next one
as soon as the previous response is complete.  When ``wrk`` is on PATH its figures for
the TCP cases are reported as well (wrk runs right after the Python client on the same
case, so the target is already warm).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.common import (  # noqa: E402
    Address,
    DockerEngine,
    Target,
    temporary_workdir,
)
from benchmarks.lifecycle import Cli  # noqa: E402
from benchmarks.monitor import _remove_all, populate  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402
from tests.support import Daemon, free_port  # noqa: E402

PATHS = ("/_ping", "/v1.41/version", "/v1.41/info")
#: Measured when the targets hold containers (``--containers``): a list of all of
#: them, and the inspect of one (named alike on both daemons).
CONTAINER_PATHS = ("/v1.41/containers/json?all=1", "/v1.41/containers/m0-0/json")
DOCKER_WRK_PING_32 = 32_000.0  # Docker 20.10, /_ping, 32 connections, TCP, wrk (the issue)
VERSION_INFO_TARGET = 2_500.0
PERCENTILES = (0.50, 0.90, 0.99)

_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.IGNORECASE)
_CHUNKED_END = b"\r\n0\r\n\r\n"


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Summary:
    """What one load run measured."""

    rps: float
    p50: float  # milliseconds
    p90: float
    p99: float
    errors: int
    requests: int = 0  # answered during the whole run, warm-up included
    cpu_us: float = math.nan  # the daemon's CPU time per request, when measured


@dataclass(frozen=True)
class Result:
    """One row of the table."""

    target: str
    transport: str
    path: str
    connections: int
    client: str
    summary: Summary


# --------------------------------------------------------------------------- client


class _Conn:
    """One keep-alive connection with at most one request in flight."""

    __slots__ = ("sock", "buffer", "end", "sent_at")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.end = -1  # offset where the response ends; 0 for chunked; -1 head not read
        self.sent_at = 0.0

    def send(self, request: bytes) -> None:
        """Send the next request; a failure shows up as EOF or an error on the next read."""
        self.buffer, self.end = b"", -1
        self.sent_at = time.perf_counter()
        with contextlib.suppress(OSError):
            self.sock.send(request)

    def feed(self, data: bytes) -> bool:
        """Add received bytes; True once the whole response is in."""
        self.buffer = self.buffer + data if self.buffer else data
        if self.end < 0 and not self._read_head():
            return False
        if self.end == 0:  # chunked: JSON bodies hold no CR, so this ends the last chunk
            return self.buffer.endswith(_CHUNKED_END)
        return len(self.buffer) >= self.end

    def _read_head(self) -> bool:
        """Find the end of the head and where the body ends; False if the head is incomplete."""
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = self.buffer[:head_end]
        length = _LENGTH.search(head)
        if length is not None:
            self.end = head_end + 4 + int(length.group(1))
        elif _CHUNKED.search(head):
            self.end = 0
        else:
            raise ValueError(f"response without a length: {head[:200]!r}")
        return True

    def status(self) -> int:
        """The status code of the response in the buffer."""
        return int(self.buffer[9:12])


class LoadLoop:
    """Keeps ``connections`` connections busy with ``GET path`` and records latencies."""

    def __init__(self, address: Address, path: str, connections: int) -> None:
        self._address = address
        self._request = address.request(path)
        self._poller = select.epoll()
        self._conns: dict[int, _Conn] = {}
        for _ in range(connections):
            self._open()
        self.latencies: list[float] = []
        self.errors = 0
        self.answered = 0
        self._record_from = math.inf

    def _open(self) -> _Conn:
        """Connect once more and watch the new socket."""
        conn = _Conn(self._address.connect())
        self._conns[conn.sock.fileno()] = conn
        self._poller.register(conn.sock.fileno(), select.EPOLLIN)
        return conn

    def _reopen(self, conn: _Conn) -> None:
        """The server closed ``conn`` (or it failed): count an error, start afresh."""
        self.errors += 1
        self._poller.unregister(conn.sock.fileno())
        del self._conns[conn.sock.fileno()]
        conn.sock.close()
        self._open().send(self._request)

    def run(self, warmup: float, duration: float) -> Summary:
        """Warm up, then measure for ``duration`` seconds; responses in flight are dropped."""
        start = time.perf_counter()
        self._record_from = start + warmup
        stop_at = self._record_from + duration
        for conn in list(self._conns.values()):
            conn.send(self._request)
        while (left := stop_at - time.perf_counter()) > 0:
            for fd, _ in self._poller.poll(left):
                self._readable(self._conns[fd])
        return replace(summarize(self.latencies, self.errors, duration),
                       requests=self.answered)

    def _readable(self, conn: _Conn) -> None:
        """Read what ``conn`` has; on a complete response, record it and send the next."""
        try:
            data = conn.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._reopen(conn)
        elif conn.feed(data):
            self._complete(conn, time.perf_counter())

    def _complete(self, conn: _Conn, now: float) -> None:
        """Record a response completed at ``now`` (after warm-up) and send the next request."""
        self.answered += 1
        if now >= self._record_from:
            if conn.status() == 200:
                self.latencies.append(now - conn.sent_at)
            else:
                self.errors += 1
        conn.send(self._request)

    def close(self) -> None:
        """Close every connection and the poller."""
        for conn in self._conns.values():
            conn.sock.close()
        self._poller.close()


def summarize(latencies: list[float], errors: int, duration: float) -> Summary:
    """Throughput and nearest-rank percentiles (in ms) of successful responses."""
    ordered = sorted(latencies)
    if not ordered:
        return Summary(0.0, math.nan, math.nan, math.nan, errors)
    picks = [ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000.0 for q in PERCENTILES]
    return Summary(len(ordered) / duration, picks[0], picks[1], picks[2], errors)


def _client_process(pipe: Connection, address: Address, path: str, connections: int,
                    warmup: float, duration: float) -> None:
    """Body of the forked client: run the load, send back a Summary or an error text."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        loop = LoadLoop(address, path, connections)
        try:
            pipe.send(loop.run(warmup, duration))
        finally:
            loop.close()
    except Exception as error:  # reported by the parent
        pipe.send(f"{type(error).__name__}: {error}")
    finally:
        pipe.close()


def measure(address: Address, path: str, connections: int, warmup: float,
            duration: float) -> Summary:
    """Run the client in a separate process; raise RuntimeError if it could not."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_client_process, daemon=True,
                              args=(sender, address, path, connections, warmup, duration))
    process.start()
    sender.close()
    try:
        if not receiver.poll(warmup + duration + 30.0):
            raise RuntimeError("the client did not finish in time")
        outcome = receiver.recv()
    except EOFError:
        raise RuntimeError("the client process died") from None
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
        process.join(5.0)
    if isinstance(outcome, str):
        raise RuntimeError(outcome)
    return outcome


# --------------------------------------------------------------------------- wrk

_WRK_PERCENTILE = re.compile(r"^\s*(50|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_WRK_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def run_wrk(port: int, path: str, connections: int, duration: float) -> Summary:
    """``wrk -t1 -c{connections} -d{duration}s --latency`` against 127.0.0.1:port."""
    seconds = max(1, round(duration))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
               "--timeout", "10s", f"http://127.0.0.1:{port}{path}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError("wrk did not finish in time") from None
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {(done.stderr or done.stdout).strip()[:300]}")
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> Summary:
    """req/s, p50/p90/p99 and error counts from wrk's ``--latency`` report."""
    rps = _WRK_RPS.search(text)
    found = {int(m[1]): float(m[2]) * _WRK_UNIT_MS[m[3]] for m in _WRK_PERCENTILE.finditer(text)}
    if rps is None or set(found) != {50, 90, 99}:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    non_2xx = _WRK_NON_2XX.search(text)
    sockets = _WRK_SOCKET.search(text)
    errors = (int(non_2xx[1]) if non_2xx else 0) + (
        sum(int(n) for n in sockets.groups()) if sockets else 0)
    return Summary(float(rps[1]), found[50], found[90], found[99], errors)


# --------------------------------------------------------------------------- targets


def twenty_rule_policy() -> str:
    """A policy file of 20 rules; none of the first 19 matches what is measured (other
    identities, routes, methods), the last allows it."""
    rules = []
    for team in range(8):
        rules.append(f'action = "deny"\nroutes = ["containers.create", "exec.*"]\n'
                     f'identities = ["cn:team-{team}", "cn:ci-{team}-*"]')
    for team in range(6):
        rules.append(f'action = "allow"\nroutes = ["containers.*", "system.events"]\n'
                     f'identities = ["cn:team-{team}"]\nlabels = {{ team = "{team}" }}')
    for uid in range(4):
        rules.append(f'action = "deny"\nroutes = ["images.*", "volumes.*"]\n'
                     f'methods = ["POST", "DELETE"]\nidentities = ["uid:{1000 + uid}"]')
    rules.append('action = "deny"\nroutes = ["exec.*"]\nidentities = ["gid:1000"]')
    rules.append('action = "allow"\nroutes = ["system.*", "containers.list"]')
    return 'message = "benchmark policy"\n' + "".join(
        f"\n[[rules]]\n{rule}\n" for rule in rules)


def start_dockertw(workdir: Path, name: str = "dockertw",
                   policy: str | None = None) -> tuple[Daemon, Target]:
    """Start ``twistd dockertw`` on ``workdir`` (with ``policy``, a policy file's text,
    on both listeners); the caller stops the daemon."""
    workdir.mkdir(parents=True)
    port = free_port()
    tcp = f"tcp:{port}:interface=127.0.0.1"
    args = ["--listen", tcp]
    if policy is not None:
        (workdir / "policy.toml").write_text(policy)
        unix = f"unix:{workdir / 'd.sock'}:mode=660"
        args += [f"--policy={listener}={workdir / 'policy.toml'}" for listener in (tcp, unix)]
    daemon = Daemon(workdir, args)
    try:
        daemon.start()
    except BaseException:
        daemon.stop()
        raise
    assert daemon.socket is not None
    assert daemon.process is not None
    return daemon, Target(name, Address("unix", path=daemon.socket),
                          Address("tcp", port=port), daemon.process.pid)


# --------------------------------------------------------------------------- runs


def cases(connections: Sequence[int], paths: Sequence[str] = PATHS
          ) -> Iterator[tuple[str, str, int]]:
    """Every (transport, path, connections) measured, in order."""
    for transport in ("unix", "tcp"):
        for path in paths:
            for count in connections:
                yield transport, path, count


def bench_side_by_side(targets: Sequence[Target], options: argparse.Namespace,
                       use_wrk: bool) -> list[Result]:
    """Every case against each target in turn (dockertw, then Docker), so that both
    see the machine as it is at that moment."""
    paths = PATHS + (CONTAINER_PATHS if options.containers else ())
    results: list[Result] = []
    for transport, path, count in cases(options.connections, paths):
        clients = ["python", "wrk"] if use_wrk and transport == "tcp" else ["python"]
        for client in clients:
            for target in targets:
                results += _case(target, transport, path, count, client, options)
    return results


def bench_target(target: Target, options: argparse.Namespace, use_wrk: bool) -> list[Result]:
    """Every case against ``target``: the Python client, then wrk for the TCP cases."""
    results: list[Result] = []
    for transport, path, count in cases(options.connections):
        address = target.unix if transport == "unix" else target.tcp
        results += _run_one(target.name, address, path, count, "python", partial(
            measure, address, path, count, options.warmup, options.duration))
        if use_wrk and transport == "tcp":
            results += _run_one(target.name, address, path, count, "wrk", partial(
                run_wrk, target.tcp.port, path, count, options.duration))
    return results


def bench_pair(plain: Target, policed: Target, options: argparse.Namespace,
               use_wrk: bool) -> list[Result]:
    """Every case against both targets in turn (each goes first every other round),
    ``options.rounds`` times; per target and case the best rate and the least CPU
    per request of its rounds (the machine's noise only ever makes them worse)."""
    results: list[Result] = []
    for transport, path, count in cases(options.connections):
        clients = ["python", "wrk"] if use_wrk and transport == "tcp" else ["python"]
        for client in clients:
            rounds: dict[str, list[Result]] = {plain.name: [], policed.name: []}
            for turn in range(options.rounds):
                for target in (plain, policed) if turn % 2 == 0 else (policed, plain):
                    rounds[target.name] += _case(target, transport, path, count, client,
                                                 options)
            results += [_best(found) for found in rounds.values() if found]
    return results


def _best(found: list[Result]) -> Result:
    fastest = max(found, key=lambda r: r.summary.rps)
    cpu = min((r.summary.cpu_us for r in found), default=math.nan)
    return replace(fastest, summary=replace(fastest.summary, cpu_us=cpu))


def _case(target: Target, transport: str, path: str, count: int, client: str,
          options: argparse.Namespace) -> list[Result]:
    address = target.unix if transport == "unix" else target.tcp
    if client == "wrk":
        return _run_one(target.name, address, path, count, "wrk", partial(
            run_wrk, target.tcp.port, path, count, options.duration))
    load = partial(measure, address, path, count, options.warmup, options.duration)
    return _run_one(target.name, address, path, count, "python",
                    partial(with_cpu, target.pid, load) if target.pid else load)


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user and system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(pid: int, run: Callable[[], Summary]) -> Summary:
    """``run``'s summary with the daemon's CPU time per request answered (a figure
    that other load on the machine disturbs far less than the rate)."""
    before = process_cpu(pid)
    summary = run()
    used = process_cpu(pid) - before
    return replace(summary, cpu_us=used / summary.requests * 1e6 if summary.requests
                   else math.nan)


_NO_TARGETS: Any = None  # the benchmark's policy looks nothing up


def _in_process_site(policy: str | None) -> tuple[Any, Any]:
    """The system routes served in this process by a real ``ApiSite`` (with a gate
    and ``policy`` when given) on a memory transport: a channel and its transport."""
    from types import SimpleNamespace

    from twisted.internet.testing import StringTransport

    from dockertw.api import ApiConfig, build_resource
    from dockertw.api.gate import Gate, route_facts
    from dockertw.api.routers.system import SystemRouter
    from dockertw.api.site import ApiSite
    from dockertw.policy import parse_policy

    system = SimpleNamespace(version=lambda: {"Version": "bench", "ApiVersion": "1.41"},
                             info=lambda: {"ID": "bench", "Containers": 0, "Images": 0})
    router = SystemRouter(system, SimpleNamespace(), None)  # type: ignore[arg-type]
    gate = None
    if policy is not None:
        facts = [route_facts(route) for route in router.routes()]
        names = {fact.name for fact in facts} | {"containers.list", "containers.create",
                                                 "exec.create", "images.list",
                                                 "volumes.create"}
        parsed = parse_policy(policy, "bench", names, {"GET", "HEAD", "OPTIONS", "POST",
                                                      "DELETE"})
        gate = Gate("bench", "bench", SimpleNamespace(policy=lambda key: parsed),
                    _NO_TARGETS)
    site = ApiSite(build_resource([router], ApiConfig()), "bench", gate=gate)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def gate_cost(rounds: int = 10, count: int = 50000) -> float:
    """Microseconds the gate with the 20-rule policy adds to a request (in this
    process, the handler called directly and through the gate, best of ``rounds``)."""
    from types import SimpleNamespace

    from dockertw.api.gate import Gate
    from dockertw.api.router import ApiCall, Route
    from dockertw.policy import parse_policy, peer_identity

    def ping(call: ApiCall) -> bytes:
        return b"OK"

    route = Route("GET", "/_ping", ping, name="system.ping")
    policy = parse_policy(twenty_rule_policy(), "bench", {
        "system.ping", "system.events", "containers.list", "containers.create",
        "exec.create", "images.list", "volumes.create"}, {"GET", "POST", "DELETE"})
    gate = Gate("bench", "bench", SimpleNamespace(policy=lambda key: policy), _NO_TARGETS)
    request: Any = SimpleNamespace(channel=SimpleNamespace(identity=peer_identity(0, 0)))
    call = ApiCall(request=request, params={}, version="1.41")
    best = [math.inf, math.inf]
    for _ in range(rounds):
        for index, through in enumerate((ping, lambda call: gate(route, call))):
            started = time.process_time()
            for _ in range(count):
                through(call)
            best[index] = min(best[index], (time.process_time() - started) / count * 1e6)
    return best[1] - best[0]


def request_path_costs(rounds: int = 30, count: int = 1000) -> list[tuple[str, float, float]]:
    """Microseconds per request of the whole HTTP path in this process (parsing,
    dispatch, the gate, the handler, the answer), without and with the 20-rule
    policy, per path: the best of ``rounds`` runs of ``count`` requests, the two
    taking turns to go first (no network and no client, so the policy's share shows
    undiluted)."""
    costs = []
    for path in PATHS:
        line = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
        best = [math.inf, math.inf]
        sites = [_in_process_site(None), _in_process_site(twenty_rule_policy())]
        for turn in range(rounds):
            for index in (0, 1) if turn % 2 else (1, 0):
                channel, transport = sites[index]
                started = time.process_time()
                for _ in range(count):
                    channel.dataReceived(line)
                    transport.clear()
                best[index] = min(best[index], (time.process_time() - started) / count * 1e6)
        costs.append((path, best[0], best[1]))
    return costs


def _run_one(name: str, address: Address, path: str, count: int, client: str,
             run: Callable[[], Summary]) -> list[Result]:
    """One measurement, announced on stderr; a failure is reported and skipped."""
    print(f"  {name:8} {address.transport:4} {path:15} c={count:<3} {client:6} ...",
          end="", file=sys.stderr, flush=True)
    try:
        summary = run()
    except RuntimeError as error:
        print(f" failed: {error}", file=sys.stderr, flush=True)
        return []
    print(f" {summary.rps:10,.0f} req/s", file=sys.stderr, flush=True)
    return [Result(name, address.transport, path, count, client, summary)]


# --------------------------------------------------------------------------- report


def print_table(results: Sequence[Result]) -> None:
    """target, transport, path, connections, client, req/s, p50/p90/p99 ms, errors."""
    print(f"{'target':9} {'transport':9} {'path':15} {'conns':>5} {'client':6} "
          f"{'req/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in results:
        s = r.summary
        print(f"{r.target:9} {r.transport:9} {r.path:15} {r.connections:5d} {r.client:6} "
              f"{s.rps:10,.0f} {s.p50:8.2f} {s.p90:8.2f} {s.p99:8.2f} {s.errors:6d}")


def print_comparison(results: Sequence[Result]) -> None:
    """dockertw beside Docker, case by case, with the ratio of their rates."""
    docker = {(r.transport, r.path, r.connections, r.client): r
              for r in results if r.target == "docker"}
    print(f"{'transport':9} {'path':15} {'conns':>5} {'client':6} {'dockertw req/s':>15} "
          f"{'docker req/s':>13} {'ratio':>6} {'dtw p99':>8} {'dkr p99':>8}")
    for ours in results:
        theirs = docker.get((ours.transport, ours.path, ours.connections, ours.client))
        if ours.target != "dockertw" or theirs is None:
            continue
        mine, other = ours.summary, theirs.summary
        ratio = mine.rps / other.rps if other.rps else math.nan
        print(f"{ours.transport:9} {ours.path:15} {ours.connections:5d} {ours.client:6} "
              f"{mine.rps:15,.0f} {other.rps:13,.0f} {ratio:6.2f} {mine.p99:8.2f} "
              f"{other.p99:8.2f}")


def print_policy_comparison(results: Sequence[Result]) -> None:
    """Each case without and with the 20-rule policy, and how much slower it is."""
    policed = {(r.transport, r.path, r.connections, r.client): r
               for r in results if r.target == "policy"}
    print(f"{'transport':9} {'path':15} {'conns':>5} {'client':6} {'req/s no':>9} "
          f"{'req/s 20':>9} {'slower':>7} {'CPU us no':>9} {'CPU us 20':>9} {'more CPU':>8}")
    slowdowns, cpu_growths = [], []
    for plain in results:
        other = policed.get((plain.transport, plain.path, plain.connections, plain.client))
        if plain.target != "dockertw" or other is None or not plain.summary.rps:
            continue
        mine, theirs = plain.summary, other.summary
        slower = (1.0 - theirs.rps / mine.rps) * 100.0
        more_cpu = (theirs.cpu_us / mine.cpu_us - 1.0) * 100.0
        slowdowns.append(slower)
        if not math.isnan(more_cpu):
            cpu_growths.append(more_cpu)
        print(f"{plain.transport:9} {plain.path:15} {plain.connections:5d} {plain.client:6} "
              f"{mine.rps:9,.0f} {theirs.rps:9,.0f} {slower:6.1f}% {mine.cpu_us:9.0f} "
              f"{theirs.cpu_us:9.0f} {more_cpu:7.1f}%")
    if slowdowns:
        print(f"rate: mean {sum(slowdowns) / len(slowdowns):.1f}% slower with the policy, "
              f"worst case {max(slowdowns):.1f}%")
    if cpu_growths:
        print(f"daemon CPU per request: mean {sum(cpu_growths) / len(cpu_growths):+.1f}% with "
              f"the policy, worst case {max(cpu_growths):+.1f}% (target: at most 5% slower)")
    added = gate_cost()
    print(f"in process: the gate with 20 rules adds {added:.2f} us of CPU a request")
    print("in process (the daemon's HTTP path on a memory transport, CPU us a request, "
          "best of 30; the two differ by the machine's noise too):")
    for path, plain_us, policed_us in request_path_costs():
        print(f"  {path:15} no policy {plain_us:6.1f}  20 rules {policed_us:6.1f}  "
              f"{(policed_us / plain_us - 1.0) * 100.0:+5.1f}%  (the gate's own cost: "
              f"{added / plain_us * 100.0:.1f}%)")


def _rate(results: Sequence[Result], target: str, transport: str, path: str, conns: int,
          client: str) -> float | None:
    """req/s of the one matching row, if it was measured."""
    for r in results:
        if (r.target, r.transport, r.path, r.connections, r.client) == (
                target, transport, path, conns, client):
            return r.summary.rps
    return None


def _summary_of(results: Sequence[Result], target: str, path: str, conns: int
                ) -> tuple[Summary | None, str]:
    """The TCP figures of ``target`` for a case: wrk's if it ran, else the Python
    client's (and which)."""
    for client in ("wrk", "python"):
        for r in results:
            if (r.target, r.transport, r.path, r.connections, r.client) == (
                    target, "tcp", path, conns, client):
                return r.summary, client
    return None, ""


def print_targets(results: Sequence[Result]) -> None:
    """The issue's targets (16), as ratios to Docker measured in this run."""
    print("Targets (issue 16; ratios to Docker Engine in this run, TCP):")
    goals = [("/_ping", 32, "rate", 0.5), ("/_ping", 1, "latency", 1.5),
             (CONTAINER_PATHS[0], 32, "rate", 0.5), (CONTAINER_PATHS[1], 32, "rate", 0.5)]
    for path, conns, kind, goal in goals:
        ours, client = _summary_of(results, "dockertw", path, conns)
        theirs, _ = _summary_of(results, "docker", path, conns)
        if ours is None or theirs is None:
            continue
        if kind == "rate":
            ratio = ours.rps / theirs.rps if theirs.rps else math.nan
            print(f"  {path:30} c={conns:<3} rate  {ours.rps:9,.0f} vs {theirs.rps:9,.0f} "
                  f"req/s: {ratio:5.2f} (target >= {goal}) [{client}]")
        else:
            ratio = ours.p50 / theirs.p50 if theirs.p50 else math.nan
            print(f"  {path:30} c={conns:<3} p50   {ours.p50:9.3f} vs {theirs.p50:9.3f} "
                  f"ms: {ratio:5.2f} (target <= {goal}) [{client}]")
    print(f"  /v1.41/version and /v1.41/info: at least {VERSION_INFO_TARGET:,.0f} req/s")
    for r in results:
        if r.target == "dockertw" and r.path in PATHS[1:] and r.connections == 32:
            print(f"    measured: {r.path:15} {r.transport:4} {r.client:6} "
                  f"{r.summary.rps:8,.0f} req/s")


def print_setting(options: argparse.Namespace, use_wrk: bool) -> None:
    """What ran where, so that figures can be compared across machines."""
    print(f"CPUs: {os.cpu_count()}; Python {sys.version.split()[0]}; "
          f"duration {options.duration:g}s after {options.warmup:g}s warm-up per case; "
          f"wrk: {'yes' if use_wrk else 'no'}")


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked so that the whole run stays bounded."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds measured per case (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of unrecorded load before each case (default 1)")
    parser.add_argument("--connections", type=_connection_list, default=(1, 32),
                        help="comma-separated connection counts (default 1,32)")
    parser.add_argument("--docker", action="store_true",
                        help="also start a private dockerd and measure it")
    parser.add_argument("--no-wrk", action="store_true", help="do not run wrk even if found")
    parser.add_argument("--policy", action="store_true",
                        help="compare dockertw without and with a 20-rule policy")
    parser.add_argument("--rounds", type=int, default=2,
                        help="with --policy: rounds per case, the best kept (default 2)")
    parser.add_argument("--containers", type=int, default=100,
                        help="running containers on each daemon, for the list and inspect "
                             "cases (default 100; 0: none, and no such cases)")
    options = parser.parse_args(argv)
    if not 0 < options.duration <= 120 or not 0 <= options.warmup <= 30:
        parser.error("--duration must be in (0, 120] and --warmup in [0, 30]")
    if not 1 <= options.rounds <= 5:
        parser.error("--rounds must be between 1 and 5")
    if not 0 <= options.containers <= 500:
        parser.error("--containers must be between 0 and 500")
    return options


def _connection_list(text: str) -> tuple[int, ...]:
    """``1,32`` as a tuple of connection counts."""
    counts = tuple(int(part) for part in text.split(","))
    if not counts or not all(1 <= count <= 1000 for count in counts):
        raise argparse.ArgumentTypeError("connection counts must be between 1 and 1000")
    return counts


def run_policy(workdir: Path, options: argparse.Namespace) -> list[Result]:
    """dockertw without and with the 20-rule policy, case by case in turn."""
    use_wrk = not options.no_wrk and shutil.which("wrk") is not None
    print_setting(options, use_wrk)
    runs = len(options.connections) * len(PATHS) * (2 + (1 if use_wrk else 0))
    estimate = runs * (options.duration + options.warmup) * 2 * options.rounds
    print(f"measuring, about {estimate:.0f}s ...", file=sys.stderr, flush=True)
    with contextlib.ExitStack() as daemons:
        plain_daemon, plain = start_dockertw(workdir / "plain")
        daemons.callback(plain_daemon.stop)
        policed_daemon, policed = start_dockertw(workdir / "policy", "policy",
                                                 twenty_rule_policy())
        daemons.callback(policed_daemon.stop)
        return bench_pair(plain, policed, options, use_wrk)


def run(workdir: Path, options: argparse.Namespace) -> list[Result]:
    """dockertw's figures, and Docker's beside them (case by case) if asked for."""
    use_wrk = not options.no_wrk and shutil.which("wrk") is not None
    print_setting(options, use_wrk)
    paths = len(PATHS) + (len(CONTAINER_PATHS) if options.containers else 0)
    runs = len(options.connections) * paths * (2 + (1 if use_wrk else 0))
    estimate = runs * (options.duration + options.warmup) * (2 if options.docker else 1)
    print(f"measuring, about {estimate:.0f}s (and the containers' starts) ...",
          file=sys.stderr, flush=True)
    tar = make_busybox_tar(_directory(workdir / "image")) if options.containers else None
    with contextlib.ExitStack() as stack:
        daemon, target = start_dockertw(workdir / "dockertw")
        stack.callback(daemon.stop)
        targets = [target]
        if tar is not None:
            stack.callback(_remove_all, target.unix.path, workdir / "cli-clean")
            _populate(target, tar, options.containers, workdir / "cli-dockertw")
        if options.docker:
            targets += _start_docker(stack, workdir, tar, options.containers)
        return bench_side_by_side(targets, options, use_wrk)


def _directory(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _populate(target: Target, tar: Path, count: int, config: Path) -> None:
    """``count`` running containers on ``target`` (the image imported first)."""
    print(f"  {target.name}: starting {count} containers ...", file=sys.stderr, flush=True)
    populate(Cli(target.unix.path, config), tar, count)


def _start_docker(stack: contextlib.ExitStack, workdir: Path, tar: Path | None,
                  containers: int) -> list[Target]:
    """A private dockerd (with ``containers``), stopped when ``stack`` closes; none
    if it would not start."""
    print("starting dockerd ...", file=sys.stderr, flush=True)
    engine = DockerEngine(workdir / "docker")
    stack.callback(engine.stop)
    try:
        engine.start()
    except RuntimeError as error:
        print(f"dockerd unavailable, Docker figures skipped: {error}", file=sys.stderr)
        return []
    target = engine.target
    if tar is not None:
        stack.callback(_remove_all, target.unix.path, workdir / "cli-clean-docker")
        _populate(target, tar, containers, workdir / "cli-docker")
    return [target]


def main(argv: Sequence[str] | None = None) -> int:
    """Measure in a temporary directory that is always removed, then print the tables."""
    options = parse_args(argv)
    with temporary_workdir("dtwb-") as workdir:
        results = run_policy(workdir, options) if options.policy else run(workdir, options)
    print()
    print_table(results)
    if options.policy:
        print()
        print_policy_comparison(results)
        return 0
    if any(r.target == "docker" for r in results):
        print()
        print_comparison(results)
    print()
    print_targets(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Round-trip latency of ``docker exec`` against dockertw.

Starts its own daemon on a temporary root (always stopped and removed), imports a
busybox image, runs one ``sleep`` container, then times ``--count`` (default 50)
``docker exec C true`` with the real CLI (wall time of the whole command: CLI start,
ping, inspect, exec create, hijacked start, exec inspect), and the same exchange
done directly on the UNIX socket (create, start with upgrade, ``GET /exec/{id}/json``)
to show what the daemon itself takes.  Prints median and p90, no verdict::

    .venv/bin/python benchmarks/exec.py [--count 50] [--docker]
"""

from __future__ import annotations

import argparse
import json
import socket
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
    run_benchmark,
    time_runs,
)
from tests.cli import cli, import_image, ok  # noqa: E402
from tests.rootfs import make_busybox_tar  # noqa: E402
from tests.support import Daemon  # noqa: E402

CONTAINER = "exec-bench"


def _exchange(path: str, request: bytes, until_close: bool = False) -> bytes:
    """Send one request on a fresh connection; the answer (or everything until EOF)."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(10)
        connection.connect(path)
        connection.sendall(request)
        received = b""
        while True:
            chunk = connection.recv(65536)
            received += chunk
            if not chunk:
                return received
            if not until_close and b"\r\n\r\n" in received:
                head, _, body = received.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    return received
            if until_close and b"\r\n\r\n" in received and b" 101 " in received[:20]:
                connection.shutdown(socket.SHUT_WR)  # as the CLI, after the 101


def _post(url: str, body: dict[str, Any], upgrade: bool = False) -> bytes:
    data = json.dumps(body).encode()
    extra = b"Upgrade: tcp\r\nConnection: Upgrade\r\n" if upgrade else b""
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
            b"Content-Length: %d\r\n\r\n%s" % (url.encode(), extra, len(data), data))


def api_exec(path: str) -> None:
    """``docker exec C true`` as raw requests: create, hijacked start, inspect."""
    created = _exchange(path, _post(f"/v1.41/containers/{CONTAINER}/exec",
                                    {"AttachStdout": True, "AttachStderr": True,
                                     "Cmd": ["true"]}))
    exec_id = json.loads(created.partition(b"\r\n\r\n")[2])["Id"]
    _exchange(path, _post(f"/v1.41/exec/{exec_id}/start", {"Detach": False, "Tty": False},
                          upgrade=True), until_close=True)
    shown = _exchange(path, f"GET /v1.41/exec/{exec_id}/json HTTP/1.1\r\nHost: x\r\n\r\n"
                      .encode())
    assert json.loads(shown.partition(b"\r\n\r\n")[2])["ExitCode"] == 0


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def report(name: str, latencies: Sequence[float]) -> None:
    print(f"{name:<34} n={len(latencies):<4} median {statistics.median(latencies) * 1e3:7.1f} ms"
          f"   p90 {_p90(latencies) * 1e3:7.1f} ms")


def bench_target(name: str, target: Any, tar: Path, count: int) -> None:
    """Both figures for one engine (anything with a ``socket`` the CLI can reach)."""
    import_image(target, tar, "bb:1")
    ok(target, "run", "-d", "--network", "none", "--name", CONTAINER, "bb:1", "sleep", "600")
    try:
        def cli_exec() -> None:
            assert cli(target, "exec", CONTAINER, "true").returncode == 0

        report(f"{name}: docker exec C true (CLI)", time_runs(cli_exec, count, warmup=3))
        report(f"{name}: create+start+inspect (API)",
               time_runs(lambda: api_exec(str(target.socket)), count, warmup=3))
    finally:
        cli(target, "rm", "-f", CONTAINER)


def bench(workdir: Path, options: argparse.Namespace) -> None:
    tar = make_busybox_tar(workdir)
    (workdir / "daemon").mkdir()
    daemon = Daemon(workdir / "daemon")
    try:
        daemon.start()
        bench_target("dockertw", daemon, tar, options.count)
    finally:
        daemon.stop()
    if options.docker:
        on_dockerd(DockerEngine(workdir / "docker"),
                   lambda engine: bench_target("docker", engine, tar, options.count))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=50, help="timed execs per case")
    add_docker_option(parser)


def main(argv: Sequence[str] | None = None) -> int:
    return run_benchmark(__doc__.splitlines()[0], "dtwb-exec-", _add_arguments, bench, argv)


if __name__ == "__main__":
    sys.exit(main())

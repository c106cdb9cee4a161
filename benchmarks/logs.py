#!/usr/bin/env python3
"""Throughput of container logs: writing the json-file log and serving ``docker logs``.

Three figures, in MB/s of container output (the log payload, not the JSON around it):

Micro figures are per second of CPU time; end-to-end ones per second of wall time
(and per second of the daemon's CPU time).

* ``write``: 64 KiB pipe reads cut into lines, encoded and appended to a json-file log
  (what the daemon does for a container's stdout);
* ``read``: the written log read back, decoded and framed for a non-TTY client (what
  ``GET /containers/{id}/logs`` does), without HTTP; also for JSON-like lines, whose
  quotes are escaped in the log;
* ``e2e`` (``--e2e``, needs root, runc and the docker CLI): a real daemon runs a busybox
  container writing ``--e2e-mb`` MB to stdout (``run -d`` until ``wait`` returns: the
  daemon's log keeps up) and ``docker logs C | wc -c`` reads it all (``logs``);
  ``--docker`` does the same on a private dockerd and prints the ratio of the rates.

    .venv/bin/python benchmarks/logs.py [--mb 50] [--line 100] [--e2e] [--e2e-mb 200]
        [--docker] [--skip-micro]

Figures only, no verdict.  Docker 20.10 served ``docker logs`` at 9.4 MB/s (the issue).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dockertw.daemon import jsonlog  # noqa: E402
from dockertw.daemon.containers.running import logs  # noqa: E402

DOCKER_LOGS_MB_S = 9.4


def _output(total: int, line: int, quoted: bool = False) -> bytes:
    """``total`` bytes of numbered lines of ``line`` bytes each (JSON-like if ``quoted``)."""
    if quoted:
        return b"".join(b'{"n": %08d, "msg": "' % i + b"x" * (line - 24) + b'"}\n'
                        for i in range(total // line))
    return b"".join(b"%08d " % i + b"x" * (line - 10) + b"\n" for i in range(total // line))


def _timed(work: Callable[[], object]) -> float:
    """Seconds of CPU time ``work`` took (steadier than wall time on a busy machine)."""
    started = time.process_time()
    work()
    return time.process_time() - started


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_write(path: Path, data: bytes) -> float:
    """Seconds to split, encode and append ``data`` as 64 KiB pipe reads."""
    def write() -> None:
        log = jsonlog.JSONLogFile(path)
        splitter = jsonlog.LineSplitter()
        for start in range(0, len(data), 65536):
            now = time.time_ns()
            log.write([jsonlog.LogEntry("stdout", now, message)
                       for message in splitter.feed(data[start:start + 65536])])
        log.close()
    return _timed(write)


def bench_write_lines(path: Path, data: bytes) -> float:
    """The same through ``write_lines``: no LogEntry per line (running.py could do this)."""
    def write() -> None:
        log = jsonlog.JSONLogFile(path)
        splitter = jsonlog.LineSplitter()
        for start in range(0, len(data), 65536):
            log.write_lines("stdout", time.time_ns(), splitter.feed(data[start:start + 65536]))
        log.close()
    return _timed(write)


def bench_read(path: Path) -> tuple[float, int]:
    """Seconds to read, decode and frame the whole log; and the payload bytes sent."""
    sent = [0]

    def read() -> None:
        for chunk in logs.read_chunks(logs.open_files(path), logs.LogOptions(),
                                      logs.Framing(tty=False, timestamps=False)):
            sent[0] += len(chunk)
    return _timed(read), sent[0]


def _rate(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:8.1f} MB/s  ({size / 1e6:.0f} MB in {seconds:.2f} s)"


def micro(mb: int, line: int) -> None:
    data = _output(mb * 1_000_000, line)
    directory = Path(tempfile.mkdtemp(prefix="dtw-bench-"))
    try:
        path = directory / "c-json.log"
        print(f"write {_rate(len(data), bench_write(path, data))}")
        if hasattr(jsonlog.JSONLogFile, "write_lines"):
            lines_path = directory / "lines-json.log"
            print(f"write_lines {_rate(len(data), bench_write_lines(lines_path, data))}")
        seconds, sent = bench_read(path)
        print(f"read  {_rate(len(data), seconds)}  framed bytes {sent}")
        quoted = _output(mb * 1_000_000, line, quoted=True)
        quoted_path = directory / "quoted-json.log"
        print(f"write, lines with quotes {_rate(len(quoted), bench_write(quoted_path, quoted))}")
        seconds, sent = bench_read(quoted_path)
        print(f"read, lines with quotes {_rate(len(quoted), seconds)}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _logs_to_wc(socket: str, name: str) -> tuple[float, int]:
    """Seconds of ``docker logs NAME | wc -c`` and the count wc printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    started = time.perf_counter()
    logs_cli = subprocess.Popen(["docker", "-H", f"unix://{socket}", "logs", name],
                                stdout=subprocess.PIPE, env=env)
    counted = subprocess.run(["wc", "-c"], stdin=logs_cli.stdout, capture_output=True,
                             check=True)
    assert logs_cli.stdout is not None
    logs_cli.stdout.close()
    logs_cli.wait()
    return time.perf_counter() - started, int(counted.stdout.split()[0])


def _e2e_on(name: str, target: Any, pids: Callable[[], list[int]], tar: Path, mb: int,
            line: int) -> float:
    """Run the writer on ``target``, then read its log back; the read rate in MB/s."""
    from tests.cli import import_image, ok
    from tests.support import docker
    import_image(target, tar, "bb:1")
    count = mb * 1_000_000 // line
    script = (f"yes $(head -c {line - 1} /dev/zero | tr '\\0' x) | head -n {count}")
    started, cpu = time.perf_counter(), _cpu_of(pids())
    ok(target, "run", "-d", "--network", "none", "--name", "big", "bb:1", "sh", "-c", script)
    done = docker("-H", f"unix://{target.socket}", "wait", "big", timeout=900)
    assert done.stdout.strip() == "0", done
    seconds = time.perf_counter() - started
    print(f"{name}: e2e run -d + wait {_rate(count * line, seconds)}; daemon CPU "
          f"{_rate(count * line, _cpu_of(pids()) - cpu)}")
    cpu, children = _cpu_of(pids()), _children_cpu()
    seconds, counted = _logs_to_wc(str(target.socket), "big")
    assert counted == count * line, counted
    print(f"{name}: e2e docker logs | wc -c {_rate(count * line, seconds)}")
    print(f"  daemon CPU {_rate(count * line, _cpu_of(pids()) - cpu)}")
    print(f"  CLI CPU    {_rate(count * line, _children_cpu() - children)}")
    return count * line / seconds / 1e6


def _cpu_of(pids: list[int]) -> float:
    return sum(_cpu_seconds(pid) for pid in pids)


def e2e(mb: int, line: int, with_docker: bool) -> None:
    from benchmarks.common import DockerEngine, on_dockerd
    from benchmarks.monitor import docker_side
    from tests.rootfs import make_busybox_tar
    from tests.support import Daemon
    workdir = Path(tempfile.mkdtemp(prefix="dtw-bench-"))
    tar = make_busybox_tar(workdir)
    (workdir / "daemon").mkdir()
    daemon = Daemon(workdir / "daemon")
    try:
        daemon.start()
        assert daemon.process is not None
        pid = daemon.process.pid
        ours = _e2e_on("dockertw", daemon, lambda: [pid], tar, mb, line)
        with contextlib.suppress(Exception):
            subprocess.run(["docker", "-H", f"unix://{daemon.socket}", "rm", "-f", "big"],
                           capture_output=True, check=False, timeout=60)
    finally:
        daemon.stop()
    theirs = None
    try:
        if with_docker:
            engine = DockerEngine(workdir / "docker")
            theirs = on_dockerd(engine, lambda engine: _e2e_on(
                "docker", engine, lambda: list(docker_side(engine.workdir)), tar, mb, line))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if theirs:
        print(f"docker logs | wc -c: dockertw {ours:.1f} MB/s, docker {theirs:.1f} MB/s, "
              f"ratio {ours / theirs:.1f} (target: at least 10)")
    else:
        print(f"docker logs | wc -c: dockertw {ours:.1f} MB/s (Docker 20.10 in the issue: "
              f"{DOCKER_LOGS_MB_S} MB/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--line", type=int, default=100, help="bytes per line")
    parser.add_argument("--e2e", action="store_true")
    parser.add_argument("--e2e-mb", type=int, default=200)
    parser.add_argument("--docker", action="store_true",
                        help="with --e2e: the same on a private dockerd")
    parser.add_argument("--skip-micro", action="store_true")
    args = parser.parse_args()
    if not args.skip_micro:
        micro(args.mb, args.line)
    if args.e2e:
        e2e(args.e2e_mb, args.line, args.docker)


if __name__ == "__main__":
    main()

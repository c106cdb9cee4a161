"""Faults: a state root that fills up, a runtime that is missing, fails or is killed
while it starts a container, and records on disk that cannot be read.  The daemon
answers with clear errors, keeps serving, corrupts nothing it wrote before, and
recovers once the cause is gone."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockertw.runtime.mounts import mounts_under
from tests.cli import cli, import_image, inspect, ok
from tests.support import Daemon, unix_get

FULL = "no space left on device"


def _tar_of(path: Path, size: int) -> Path:
    with tarfile.open(path, "w") as tar:
        data = os.urandom(size)
        info = tarfile.TarInfo("payload")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _fill(directory: Path) -> Path:
    """Write a file in ``directory`` until its filesystem is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * (1 << 16))
        except OSError as error:
            assert error.errno == 28
    return filler


def _log_lines_whole(path: Path) -> list[dict[str, str]]:
    entries = []
    with open(path, "rb") as log:
        for line in log:
            entries.append(json.loads(line))  # a half-written line would fail here
    return entries


@pytest.fixture
def small_root(workdir: Path, busybox_tar: Path) -> Iterator[Daemon]:
    """A daemon whose state root is a 40 MiB tmpfs of its own, with ``bb:1``."""
    home = workdir / "small"
    home.mkdir()
    daemon = Daemon(home)
    daemon.root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "dtw-full", str(daemon.root)],
                   check=True)
    try:
        daemon.start()
        import_image(daemon, busybox_tar, "bb:1")
        yield daemon
    finally:
        daemon.kill_leftovers()
        subprocess.run(["umount", "-l", str(daemon.root)], check=False)


def test_a_full_state_root_gives_clear_errors_and_recovers(small_root: Daemon,
                                                           workdir: Path):
    daemon = small_root
    ok(daemon, "run", "-d", "--name", "keep", "bb:1", "sh", "-c", "echo before; sleep 1000")
    ok(daemon, "volume", "create", "kept")
    ok(daemon, "run", "--rm", "-v", "kept:/data", "bb:1", "sh", "-c", "echo safe > /data/f")
    ok(daemon, "run", "-d", "--name", "talker", "bb:1", "sh", "-c",
       "i=0; while true; do echo line $i; i=$((i+1)); done")
    big = _tar_of(workdir / "big.tar", 4 << 20)
    filler = _fill(daemon.root)
    time.sleep(0.5)  # the talker meets the full disk too
    for args in (("import", str(big), "big:1"), ("cp", str(big), "keep:/big.tar"),
                 ("create", "--name", "new", "bb:1", "true")):
        refused = cli(daemon, *args)
        assert refused.returncode != 0 and FULL in refused.stderr, (args, refused.stderr)
    assert "new" not in ok(daemon, "ps", "-a", "--format", "{{.Names}}")
    assert "big:1" not in ok(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}")
    # it keeps serving, and what it wrote before is whole
    assert ok(daemon, "logs", "keep") == "before\n"
    assert inspect(daemon, "talker")["State"]["Running"]  # logging failed, it runs on
    ok(daemon, "kill", "talker")
    assert inspect(daemon, "talker")["State"]["ExitCode"] == 137
    talker_log = Path(inspect(daemon, "talker")["LogPath"])
    assert _log_lines_whole(talker_log)  # read once nothing writes it
    volume = Path(json.loads(ok(daemon, "volume", "inspect", "kept"))[0]["Mountpoint"])
    assert (volume / "f").read_text() == "safe\n"
    # space comes back, and so does everything
    filler.unlink()
    import_image(daemon, big, "big:1")
    ok(daemon, "cp", str(big), "keep:/big.tar")
    assert ok(daemon, "run", "--rm", "bb:1", "echo", "after") == "after\n"
    ok(daemon, "start", "talker")
    time.sleep(0.3)
    ok(daemon, "stop", "-t", "0", "talker")
    entries = _log_lines_whole(talker_log)
    assert entries[-1]["log"].startswith("line ")
    assert "Traceback" not in daemon.output()
    ok(daemon, "rm", "-f", "keep", "talker")


RUNTIME = "dtw-test-runtime"


def _wrapper(directory: Path) -> Path:
    """A runtime that does what ``directory/mode`` says: ``run`` (real runc), ``fail``
    (runc's way of failing), or ``stall`` (create the container, then hang: killed
    mid-start); its pid goes to ``directory/pid``."""
    runc = shutil.which("runc")
    script = directory / RUNTIME
    script.write_text(f"""#!/bin/sh
echo $$ > {directory}/pid
mode=$(cat {directory}/mode)
case " $* " in *" run "*|*" exec "*) ;; *) mode=run ;; esac
if [ "$mode" = fail ]; then
    while [ $# -gt 0 ]; do [ "$1" = --log ] && log=$2; shift; done
    echo '{{"level":"error","msg":"the runtime says no"}}' >> "$log"
    exit 1
fi
if [ "$mode" = stall ]; then
    args=""
    for arg in "$@"; do
        case "$arg" in run) args="$args create" ;; --detach) ;; *) args="$args $arg" ;; esac
    done
    {runc} $args
    exec sleep 1000
fi
exec {runc} "$@"
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    (directory / "mode").write_text("run")
    return script


@pytest.fixture(params=[False, True], ids=["direct", "live-restore"])
def wrapped(request: pytest.FixtureRequest, start_daemon: Callable[..., Daemon],
            busybox_tar: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[Daemon, Path]]:
    """A daemon whose runtime is :func:`_wrapper`'s, found in its ``PATH`` (with and
    without the holder)."""
    runtime = workdir / "runtime-dir"
    runtime.mkdir()
    _wrapper(runtime)
    monkeypatch.setenv("PATH", f"{runtime}:{os.environ['PATH']}")
    extra = ["--runtime", RUNTIME] + (["--live-restore"] if request.param else [])
    daemon = start_daemon(*extra)
    try:
        import_image(daemon, busybox_tar, "bb:1")
        yield daemon, runtime
    finally:
        (runtime / "mode").write_text("run")
        daemon.kill_leftovers()


def _nothing_left(daemon: Daemon, name: str) -> None:
    container = inspect(daemon, name)["Id"]
    assert not (daemon.exec_root / "runc" / container).exists()
    assert all(container not in str(path) for path in mounts_under(daemon.root))
    assert all(path.name != container for path in daemon.container_cgroups())


def test_a_failing_missing_or_killed_runtime_gives_clear_errors(
        wrapped: tuple[Daemon, Path]):
    daemon, runtime = wrapped
    ok(daemon, "create", "--name", "ctr", "bb:1", "sleep", "1000")
    (runtime / "mode").write_text("fail")
    failed = cli(daemon, "start", "ctr")
    assert failed.returncode != 0 and "the runtime says no" in failed.stderr, failed.stderr
    _nothing_left(daemon, "ctr")
    script = runtime / RUNTIME
    script.rename(runtime / "elsewhere")  # the runtime is gone
    missing = cli(daemon, "start", "ctr")
    assert missing.returncode != 0 and "executable file not found" in missing.stderr, \
        missing.stderr
    assert f'"{RUNTIME}"' in missing.stderr
    _nothing_left(daemon, "ctr")
    (runtime / "elsewhere").rename(script)
    (runtime / "mode").write_text("stall")
    (runtime / "pid").unlink()
    starting = subprocess.Popen(["docker", "-H", f"unix://{daemon.socket}", "start", "ctr"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    container = inspect(daemon, "ctr")["Id"]
    deadline = time.monotonic() + 20
    while not ((runtime / "pid").exists()
               and (daemon.exec_root / "runc" / container / "state.json").exists()):
        assert time.monotonic() < deadline, "the runtime never created the container"
        time.sleep(0.02)
    time.sleep(0.2)  # the wrapper is in its sleep now
    os.kill(int((runtime / "pid").read_text()), signal.SIGKILL)
    _, error = starting.communicate(timeout=30)
    assert starting.returncode != 0 and "exited with status 137" in error, error
    _nothing_left(daemon, "ctr")
    (runtime / "mode").write_text("run")
    ok(daemon, "start", "ctr")  # the daemon is fine, and so is the container
    assert inspect(daemon, "ctr")["State"]["Running"]
    ok(daemon, "rm", "-f", "ctr")
    assert "Traceback" not in daemon.output()


def test_records_that_cannot_be_read_are_skipped_with_a_clear_error(
        start_daemon: Callable[..., Daemon], busybox_tar: Path):
    daemon = start_daemon()
    image = import_image(daemon, busybox_tar, "bb:1")
    ok(daemon, "create", "--name", "good", "bb:1", "true")
    broken = ok(daemon, "create", "--name", "broken", "bb:1", "true").strip()
    half = ok(daemon, "create", "--name", "half", "bb:1", "true").strip()
    ok(daemon, "volume", "create", "good-volume")
    ok(daemon, "volume", "create", "broken-volume")
    daemon.stop()
    containers = daemon.root / "containers"
    (containers / broken / "config.v2.json").write_text("{not json")
    (containers / half / "hostconfig.json").unlink()
    (daemon.root / "volumes" / "broken-volume" / "volume.json").write_text("[")
    (daemon.root / "image" / "repositories.json").write_text("{\"Repositories\": ")
    daemon.start()
    names = ok(daemon, "ps", "-a", "--format", "{{.Names}}").split()
    assert names == ["good"]
    assert ok(daemon, "run", "--rm", image, "echo", "still serving") == "still serving\n"
    assert "good-volume" in ok(daemon, "volume", "ls", "-q").split()
    log = daemon.output()
    for path in (containers / broken / "config.v2.json", containers / half,
                 daemon.root / "volumes" / "broken-volume" / "volume.json",
                 daemon.root / "image" / "repositories.json"):
        assert str(path) in log, f"{path} is not named in the log"
    assert (containers / broken).is_dir()  # kept for whoever can mend it
    assert (daemon.root / "volumes" / "broken-volume" / "_data").is_dir()
    status, _, body = unix_get(daemon.socket or "", f"/containers/{broken}/json")
    assert status == 404
    shutil.rmtree(containers / broken)
    ok(daemon, "rm", "good")

"""Acceptance: ``docker cp`` through the real CLI, and escapes that must not work.

A container's symbolic links (absolute, relative, to a host path) and ``..`` are
resolved inside its root filesystem: the host's files are never read nor written.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import cli, ok, says_path_missing
from tests.support import Daemon, _UnixConnection, mounts_left

pytestmark = pytest.mark.integration


@pytest.fixture
def host_victim() -> Iterator[Path]:
    """A host file that containers' links point at (it must never change)."""
    directory = Path(tempfile.mkdtemp(prefix="dtw-cp-"))
    victim = directory / "victim"
    victim.write_text("host secret\n")
    try:
        yield victim
    finally:
        shutil.rmtree(directory)


def traps(victim: Path) -> str:
    """Shell commands making the escape links inside a container (a file of its own in
    /etc: /etc/hostname is the daemon's, bind-mounted, as Docker's)."""
    return (f"ln -s / /escape && ln -s ../../../.. /rel && ln -s {victim} /victimlink"
            f" && ln -s {victim.parent} /victimdir && echo container > /etc/issue"
            " && ln -s ../escape/etc/issue /hostlink")


def running(daemon: Daemon, victim: Path) -> str:
    name = "cprun"
    ok(daemon, "run", "-d", "--name", name, "bb:1", "sh", "-c",
       f"{traps(victim)} && touch /ready && sleep 300")
    for _ in range(100):
        if cli(daemon, "exec", name, "test", "-e", "/ready").returncode == 0:
            return name
    raise AssertionError("the container did not get ready")


def stopped(daemon: Daemon, victim: Path) -> str:
    name = "cpstop"
    ok(daemon, "run", "--name", name, "bb:1", "sh", "-c", traps(victim))
    return name


@pytest.fixture(params=["running", "stopped"])
def container(request: pytest.FixtureRequest, running_daemon: Daemon,
              host_victim: Path) -> Iterator[str]:
    make = running if request.param == "running" else stopped
    name = make(running_daemon, host_victim)
    try:
        yield name
    finally:
        cli(running_daemon, "rm", "-f", name)


def cat(daemon: Daemon, name: str, path: str) -> bytes:
    """A file of the container, read back through ``docker cp C:path -``."""
    members = untar(cp_stdout(daemon, f"{name}:{path}"))
    return members[os.path.basename(path)]


def cp_stdout(daemon: Daemon, source: str) -> bytes:
    binary = shutil.which("docker")
    assert binary
    done = subprocess.run([binary, "-H", f"unix://{daemon.socket}", "cp", source, "-"],
                          capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: (tar.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
                for m in tar}


@pytest.mark.both_api_versions
def test_copy_in_and_out(running_daemon: Daemon, container: str, workdir: Path) -> None:
    source = workdir / "in.txt"
    source.write_bytes(b"hello from the host\n")
    source.chmod(0o640)
    tree = workdir / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "deep.sh").write_text("#!/bin/sh\n")
    (tree / "sub" / "deep.sh").chmod(0o755)
    ok(running_daemon, "cp", str(source), f"{container}:/tmp/")
    ok(running_daemon, "cp", str(tree), f"{container}:/opt")
    out = workdir / "out"
    out.mkdir()
    ok(running_daemon, "cp", f"{container}:/tmp/in.txt", str(out / "back.txt"))
    ok(running_daemon, "cp", f"{container}:/opt", str(out / "opt"))
    assert (out / "back.txt").read_bytes() == b"hello from the host\n"
    assert (out / "back.txt").stat().st_mode & 0o777 == 0o640
    assert (out / "opt" / "sub" / "deep.sh").read_text() == "#!/bin/sh\n"
    assert (out / "opt" / "sub" / "deep.sh").stat().st_mode & 0o777 == 0o755
    ok(running_daemon, "cp", f"{container}:/opt/.", str(out / "contents"))
    assert (out / "contents" / "sub" / "deep.sh").read_text() == "#!/bin/sh\n"
    ok(running_daemon, "cp", "-L", f"{container}:/hostlink", str(out / "followed"))
    assert (out / "followed").read_text() == "container\n"


def test_copy_out_to_stdout(running_daemon: Daemon, container: str) -> None:
    members = untar(cp_stdout(running_daemon, f"{container}:/etc/passwd"))
    assert list(members) == ["passwd"]
    assert members["passwd"].startswith(b"root:")


def test_missing_path(running_daemon: Daemon, container: str, workdir: Path) -> None:
    done = cli(running_daemon, "cp", f"{container}:/no/such", str(workdir))
    assert done.returncode != 0
    assert says_path_missing(done.stderr, container, "/no/such"), done.stderr
    (workdir / "f").write_text("x")
    done = cli(running_daemon, "cp", str(workdir / "f"), f"{container}:/no/such/dir/")
    assert done.returncode != 0


@pytest.mark.both_api_versions
def test_stat_header(running_daemon: Daemon, container: str) -> None:
    status, headers, _ = request(running_daemon, "HEAD",
                                 f"/containers/{container}/archive?path=/escape")
    assert status == 200
    found = json.loads(base64.b64decode(headers["X-Docker-Container-Path-Stat"]))
    assert found["name"] == "escape" and found["linkTarget"] == "/"
    assert found["mode"] & (1 << 27)  # Go's ModeSymlink


def test_links_are_resolved_inside(running_daemon: Daemon, container: str,
                                   host_victim: Path, workdir: Path) -> None:
    assert cat(running_daemon, container, "/escape/etc/issue") == b"container\n"
    assert cat(running_daemon, container, "/rel/etc/issue") == b"container\n"
    done = cli(running_daemon, "cp", f"{container}:/victimdir/victim", str(workdir))
    assert done.returncode != 0
    assert says_path_missing(done.stderr, container, "/victimdir/victim"), done.stderr
    payload = workdir / "victim"
    payload.write_text("overwritten\n")
    for destination in ("/victimlink", "/escape/tmp/", "/victimdir/",
                        f"/escape{host_victim.parent}/", f"/rel{host_victim}"):
        cli(running_daemon, "cp", str(payload), f"{container}:{destination}")
    assert host_victim.read_text() == "host secret\n"
    assert list(host_victim.parent.iterdir()) == [host_victim]
    # the CLI refuses the container's /rel link and may hang up mid-stream: the daemon
    # stops (no double outcome, no traceback) and unmounts (checked by the fixture)
    cli(running_daemon, "cp", "-L", f"{container}:/escape", str(workdir / "all"))


def request(daemon: Daemon, method: str, url: str, body: bytes | None = None,
            **headers: str) -> tuple[int, dict[str, str], bytes]:
    assert daemon.socket
    connection = _UnixConnection(daemon.socket)
    try:
        connection.request(method, url, body=body,
                           headers={"Host": "x", "Content-Type": "application/x-tar",
                                    **headers})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def evil_tar(victim: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add(name: str, data: bytes = b"pwned\n", **extra: object) -> None:
            info = tarfile.TarInfo(name)
            for key, value in extra.items():
                setattr(info, key, value)
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)

        add("hostlink", type=tarfile.SYMTYPE, linkname=str(victim.parent))
        add(f"hostlink/{victim.name}")
        add("rootlink", type=tarfile.SYMTYPE, linkname="/")
        add(f"rootlink{victim}")
    return buffer.getvalue()


@pytest.mark.parametrize("members", ["dotdot", "links"])
def test_raw_put_does_not_escape(running_daemon: Daemon, container: str,
                                 host_victim: Path, members: str) -> None:
    if members == "dotdot":
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            info = tarfile.TarInfo(f"../../../../../../../..{host_victim}")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"pwned\n"))
        status, _, body = request(running_daemon, "PUT",
                                  f"/containers/{container}/archive?path=/tmp",
                                  buffer.getvalue())
        assert status == 400, body
        assert b"outside of the destination" in body
    else:
        status, _, body = request(running_daemon, "PUT",
                                  f"/containers/{container}/archive?path=/tmp",
                                  evil_tar(host_victim))
        assert status == 200, body
        # the writes landed inside the container: /tmp/hostlink -> victim's directory
        assert cat(running_daemon, container, f"{host_victim}") == b"pwned\n"
    assert host_victim.read_text() == "host secret\n"
    assert list(host_victim.parent.iterdir()) == [host_victim]


def test_put_errors(running_daemon: Daemon, container: str) -> None:
    status, _, body = request(running_daemon, "PUT",
                              f"/containers/{container}/archive?path=/etc/passwd", b"")
    assert status == 400 and b"not a directory" in body
    status, _, body = request(running_daemon, "PUT",
                              f"/containers/{container}/archive?path=/nope", b"")
    assert status == 404
    status, _, body = request(running_daemon, "GET", f"/containers/{container}/archive")
    assert status == 400 and b"pathcannot be empty" in body


def test_readonly_rootfs(running_daemon: Daemon, workdir: Path) -> None:
    ok(running_daemon, "create", "--name", "cpro", "--read-only", "bb:1", "true")
    (workdir / "f").write_text("x")
    done = cli(running_daemon, "cp", str(workdir / "f"), "cpro:/tmp/")
    assert done.returncode != 0 and "container rootfs is marked read-only" in done.stderr
    ok(running_daemon, "rm", "cpro")


def test_a_stopped_container_starts_with_the_copy(running_daemon: Daemon,
                                                  workdir: Path) -> None:
    ok(running_daemon, "create", "--name", "cpnew", "bb:1", "cat", "/tmp/in.txt")
    (workdir / "in.txt").write_text("copied while stopped\n")
    ok(running_daemon, "cp", str(workdir / "in.txt"), "cpnew:/tmp/")
    assert ok(running_daemon, "start", "-a", "cpnew") == "copied while stopped\n"
    ok(running_daemon, "rm", "cpnew")


def test_a_client_going_away_releases_the_mount(running_daemon: Daemon) -> None:
    ok(running_daemon, "create", "--name", "cpgone", "bb:1", "true")
    assert running_daemon.socket
    connection = _UnixConnection(running_daemon.socket)
    try:
        connection.request("GET", "/containers/cpgone/archive?path=/", headers={"Host": "x"})
        response = connection.getresponse()
        assert response.status == 200 and response.read(1000)
    finally:
        connection.close()
    assert mounts_left(running_daemon.root / "tmp" / "cp") == []
    ok(running_daemon, "rm", "cpgone")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_archive(running_daemon: Daemon, encoding: str) -> None:
    ok(running_daemon, "create", "--name", "cpzip", "bb:1", "true")
    try:
        status, headers, body = request(running_daemon, "GET",
                                        "/containers/cpzip/archive?path=/etc/passwd",
                                        **{"Accept-Encoding": f"{encoding}, identity"})
    finally:
        ok(running_daemon, "rm", "cpzip")
    assert status == 200 and headers["Content-Encoding"] == encoding
    data = zlib.decompress(body, 31 if encoding == "gzip" else -15)
    assert untar(data)["passwd"].startswith(b"root:")


def owners(daemon: Daemon, source: str) -> tuple[int, int]:
    with tarfile.open(fileobj=io.BytesIO(cp_stdout(daemon, source))) as tar:
        member = tar.next()
        assert member is not None
        return member.uid, member.gid


def test_ownership(running_daemon: Daemon, workdir: Path) -> None:
    ok(running_daemon, "create", "--name", "cpuid", "--user", "nobody", "bb:1", "true")
    source = workdir / "owned.txt"
    source.write_text("x")
    os.chown(source, 1234, 4321)
    try:
        ok(running_daemon, "cp", str(source), "cpuid:/tmp/kept.txt")
        ok(running_daemon, "cp", "-a", str(source), "cpuid:/tmp/user.txt")
        assert owners(running_daemon, "cpuid:/tmp/kept.txt") == (1234, 4321)
        assert owners(running_daemon, "cpuid:/tmp/user.txt") == (65534, 65534)
    finally:
        ok(running_daemon, "rm", "cpuid")


def test_copies_reach_volumes_and_binds(running_daemon: Daemon, workdir: Path) -> None:
    """As Docker: a path inside a volume or a bind mount is the mount's, for running
    and stopped containers; a read-only mount refuses writes, even when the root
    filesystem is read-only too the volumes take copies."""
    shared = workdir / "shared"
    shared.mkdir()
    (workdir / "f.txt").write_text("into the volume\n")
    ok(running_daemon, "run", "-d", "--name", "cpvol", "-v", "cpdata:/data",
       "-v", f"{shared}:/ro:ro", "bb:1", "sleep", "300")
    ok(running_daemon, "create", "--name", "cpvolstop", "--read-only",
       "-v", "cpdata2:/data", "bb:1", "cat", "/data/f.txt")
    try:
        ok(running_daemon, "cp", str(workdir / "f.txt"), "cpvol:/data/")
        assert ok(running_daemon, "exec", "cpvol", "cat", "/data/f.txt") == \
            "into the volume\n"
        ok(running_daemon, "exec", "cpvol", "sh", "-c", "echo made > /data/made")
        assert cat(running_daemon, "cpvol", "/data/made") == b"made\n"
        done = cli(running_daemon, "cp", str(workdir / "f.txt"), "cpvol:/ro/")
        assert done.returncode != 0
        assert "mounted volume is marked read-only" in done.stderr
        assert list(shared.iterdir()) == []
        ok(running_daemon, "cp", str(workdir / "f.txt"), "cpvolstop:/data/")
        assert ok(running_daemon, "start", "-a", "cpvolstop") == "into the volume\n"
    finally:
        cli(running_daemon, "rm", "-f", "-v", "cpvol", "cpvolstop")
        cli(running_daemon, "volume", "rm", "cpdata", "cpdata2")

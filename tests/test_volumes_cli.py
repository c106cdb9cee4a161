"""Acceptance: bind mounts, tmpfs mounts and volumes with the real ``docker`` CLI.

Every test removes what it made on the host; the ``running_daemon`` fixture checks no
mount is left under the daemon's root.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import cli, inspect, ok
from tests.support import Daemon, unix_get

pytestmark = pytest.mark.integration


@pytest.fixture
def host_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dtw-bind-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run(daemon: Daemon, *args: str) -> str:
    return ok(daemon, "run", "--rm", *args)


def test_bind_mount_read_write_and_read_only(running_daemon: Daemon, host_dir: Path):
    daemon = running_daemon
    (host_dir / "in.txt").write_text("from host\n")
    out = run(daemon, "-v", f"{host_dir}:/data", "bb:1", "sh", "-c",
              "cat /data/in.txt; echo from ctr > /data/out.txt")
    assert out == "from host\n"
    assert (host_dir / "out.txt").read_text() == "from ctr\n"
    failed = cli(daemon, "run", "--rm", "-v", f"{host_dir}:/data:ro", "bb:1", "sh", "-c",
                 "echo x > /data/ro.txt")
    assert failed.returncode != 0 and "Read-only file system" in failed.stderr
    assert not (host_dir / "ro.txt").exists()
    # --mount type=bind, read-only, nested below another mount
    out = run(daemon, "--mount", f"type=bind,source={host_dir},target=/a/b,readonly",
              "--tmpfs", "/a", "bb:1", "sh", "-c", "grep ' /a' /proc/mounts | cut -d' ' -f2,4")
    lines = out.splitlines()
    assert lines[0].startswith("/a rw,") and lines[1].startswith("/a/b ro,")


def test_binds_create_missing_source_mounts_do_not(running_daemon: Daemon,
                                                   host_dir: Path):
    daemon = running_daemon
    missing = host_dir / "made" / "here"
    run(daemon, "-v", f"{missing}:/m", "bb:1", "true")
    assert missing.is_dir()
    gone = host_dir / "gone"
    done = cli(daemon, "run", "--rm", "--mount", f"type=bind,src={gone},dst=/m", "bb:1",
               "true")
    assert done.returncode != 0
    assert (f'invalid mount config for type "bind": bind source path does not exist: '
            f"{gone}") in done.stderr
    assert not gone.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["-v", "/tmp:/"], "invalid volume specification: '/tmp:/': invalid mount config for "
                       "type \"bind\": invalid specification: destination can't be '/'"),
    (["-v", "/tmp:rel"], "mount path must be absolute"),
    (["-v", "/tmp:/x:bogus"], "invalid mode: bogus"),
    (["-v", "/tmp:/x", "-v", "/var:/x"], "Duplicate mount point: /x"),
    (["--tmpfs", "/x", "-v", "/tmp:/x"], "Duplicate mount point: /x"),
    (["-v", "x:/x"], "invalid mount path: 'x:/x' mount path must be absolute"),
])
def test_invalid_mount_specs_answer_400(running_daemon: Daemon, args: list[str],
                                        message: str):
    done = cli(running_daemon, "create", *args, "bb:1", "true")
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert ok(running_daemon, "ps", "-aq") == ""


def test_tmpfs_is_mounted_with_options(running_daemon: Daemon):
    out = run(running_daemon, "--tmpfs", "/run:size=64k,mode=1777", "--mount",
              "type=tmpfs,target=/scratch,tmpfs-size=1m", "bb:1", "sh", "-c",
              "grep tmpfs /proc/mounts | grep -E ' /(run|scratch) '; stat -c %a /run")
    lines = out.splitlines()
    run_line = next(line for line in lines if " /run " in line)
    assert "size=64k" in run_line and "noexec" in run_line and "nosuid" in run_line
    assert any(" /scratch " in line and "size=1024k" in line for line in lines)
    assert lines[-1] == "1777"


def test_symlink_in_image_cannot_redirect_a_mount(running_daemon: Daemon,
                                                  host_dir: Path):
    """A destination that is a link to a host path lands inside the root filesystem."""
    daemon = running_daemon
    target = host_dir / "target"
    target.mkdir()
    ok(daemon, "create", "--name", "linker", "bb:1", "true")
    # make an image whose /evil is a symlink to the host's target directory
    source = host_dir / "src"
    source.mkdir()
    ok(daemon, "run", "--name", "mk", "-v", f"{source}:/out", "bb:1", "sh", "-c",
       f"ln -s {target} /evil && tar -C / -cf /out/root.tar bin evil")
    ok(daemon, "rm", "mk", "linker")
    ok(daemon, "import", str(source / "root.tar"), "evil:1")
    run(daemon, "--tmpfs", "/evil", "evil:1", "sh", "-c", "echo pwned > /evil/f")
    run(daemon, "-v", f"{source}:/evil", "evil:1", "true")
    assert list(target.iterdir()) == []
    ok(daemon, "rmi", "evil:1")


def test_named_volume_shared_and_survives_restart(running_daemon: Daemon):
    daemon = running_daemon
    run(daemon, "-v", "vol1:/data", "bb:1", "sh", "-c", "echo x > /data/f")
    assert run(daemon, "-v", "vol1:/data", "bb:1", "cat", "/data/f") == "x\n"
    shown = json.loads(ok(daemon, "volume", "inspect", "vol1"))[0]
    assert shown["Driver"] == "local" and shown["Scope"] == "local"
    assert shown["Mountpoint"] == str(daemon.root / "volumes" / "vol1" / "_data")
    daemon.stop()
    daemon.start()
    assert run(daemon, "-v", "vol1:/data:ro", "bb:1", "cat", "/data/f") == "x\n"
    ok(daemon, "volume", "rm", "vol1")
    assert not (daemon.root / "volumes" / "vol1").exists()


def test_volume_commands_filters_and_in_use(running_daemon: Daemon):
    daemon = running_daemon
    assert ok(daemon, "volume", "create", "--label", "a=1", "va").strip() == "va"
    ok(daemon, "volume", "create", "vb")
    assert cli(daemon, "volume", "create", "x").returncode != 0  # one character
    bad = cli(daemon, "volume", "create", "-d", "other", "vc")
    assert 'plugin "other" not found' in bad.stderr
    names = ok(daemon, "volume", "ls", "-q").split()
    assert names == ["va", "vb"]
    assert ok(daemon, "volume", "ls", "-q", "-f", "label=a=1").split() == ["va"]
    assert ok(daemon, "volume", "ls", "-q", "-f", "name=b").split() == ["vb"]
    ok(daemon, "create", "--name", "user", "-v", "va:/x", "bb:1", "true")
    container_id = inspect(daemon, "user")["Id"]
    assert ok(daemon, "volume", "ls", "-q", "-f", "dangling=true").split() == ["vb"]
    busy = cli(daemon, "volume", "rm", "va")
    assert f"remove va: volume is in use - [{container_id}]" in busy.stderr
    assert cli(daemon, "volume", "rm", "nosuch").returncode != 0
    ok(daemon, "volume", "rm", "-f", "nosuch")
    pruned = ok(daemon, "volume", "prune", "-f", "--filter", "label!=keep", "--filter",
                "all=true")  # named volumes too from API 1.42 on
    assert "vb" in pruned and "va" not in pruned
    ok(daemon, "rm", "user")
    ok(daemon, "volume", "prune", "-f", "--filter", "all=true")
    assert ok(daemon, "volume", "ls", "-q") == ""


_NETWORK_FILES = ["hostname", "hosts", "resolv.conf"]


def test_anonymous_volumes_copy_image_content_and_go_with_rm_v(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "create", "--name", "anon", "-v", "/etc", "bb:1", "cat", "/etc/passwd")
    mounts = inspect(daemon, "anon")["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Type"] == "volume"
    name = mounts[0]["Name"]
    assert len(name) == 64 and mounts[0]["Destination"] == "/etc"
    assert set(mounts[0]) == {"Type", "Name", "Source", "Destination", "Driver", "Mode",
                              "RW", "Propagation"}
    ok(daemon, "start", "-a", "anon")
    data = Path(mounts[0]["Source"])
    assert (data / "passwd").is_file()
    for entry in data.iterdir():  # emptied: a second start copies nothing again
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    assert cli(daemon, "start", "-a", "anon").returncode != 0  # no /etc/passwd now
    # only the mount points of the daemon's /etc/hosts, /etc/hostname, /etc/resolv.conf
    assert sorted(p.name for p in data.iterdir()) == _NETWORK_FILES
    ok(daemon, "rm", "-v", "anon")
    assert name not in ok(daemon, "volume", "ls", "-q")
    # --rm removes them too; nocopy leaves a new volume empty
    run(daemon, "-v", "/etc", "bb:1", "true")
    out = run(daemon, "-v", "empty1:/etc:nocopy", "bb:1", "ls", "/etc")
    assert out.split() == _NETWORK_FILES
    assert ok(daemon, "volume", "ls", "-q").split() == ["empty1"]
    ok(daemon, "volume", "rm", "empty1")


def test_volumes_from_and_inspect_shape(running_daemon: Daemon, host_dir: Path):
    daemon = running_daemon
    ok(daemon, "create", "--name", "store", "-v", "shared:/shared",
       "-v", f"{host_dir}:/host", "bb:1", "true")
    run(daemon, "--volumes-from", "store", "bb:1", "sh", "-c",
        "echo hi > /shared/f; echo ho > /host/g")
    assert (host_dir / "g").read_text() == "ho\n"
    failed = cli(daemon, "run", "--rm", "--volumes-from", "store:ro", "bb:1", "sh", "-c",
                 "echo x > /shared/f")
    assert failed.returncode != 0
    ok(daemon, "create", "--name", "rosrc", "-v", f"{host_dir}:/r:ro", "bb:1", "true")
    failed = cli(daemon, "run", "--rm", "--volumes-from", "rosrc:rw", "bb:1", "touch",
                 "/r/x")
    assert failed.returncode != 0 and not (host_dir / "x").exists()
    ok(daemon, "rm", "rosrc")
    mounts = {m["Destination"]: m for m in inspect(daemon, "store")["Mounts"]}
    assert mounts["/host"] == {"Type": "bind", "Source": str(host_dir),
                               "Destination": "/host", "Mode": "", "RW": True,
                               "Propagation": "rprivate"}
    assert mounts["/shared"]["Name"] == "shared" and mounts["/shared"]["Mode"] == "z"
    listed = json.loads(ok(daemon, "ps", "-a", "--format", "{{json .Mounts}}"))
    assert "shared" in listed
    assert ok(daemon, "ps", "-aq", "-f", "volume=shared").strip() == \
        inspect(daemon, "store")["Id"][:12]
    assert ok(daemon, "ps", "-aq", "-f", "volume=/nothing") == ""
    df = json.loads(ok(daemon, "system", "df", "-v", "--format", "{{json .Volumes}}"))
    assert any(v["Name"] == "shared" for v in df)
    ok(daemon, "rm", "store")
    ok(daemon, "volume", "rm", "shared")
    assert not os.listdir(daemon.root / "volumes")


def test_prune_all_unused_and_volume_events(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "volume", "create", "named1")
    run(daemon, "-v", "named1:/n", "-v", "/anon", "bb:1", "true")  # --rm: anon removed
    ok(daemon, "create", "--name", "keeper", "-v", "/anon", "bb:1", "true")
    anonymous = inspect(daemon, "keeper")["Mounts"][0]["Name"]
    ok(daemon, "rm", "keeper")  # without -v: the anonymous volume stays
    # API 1.41 (Docker 20.10) prunes every unused volume, named ones too
    status, _, body = unix_get(daemon.socket, "/v1.41/volumes/prune", method="POST")
    assert status == 200
    assert sorted(json.loads(body)["VolumesDeleted"]) == sorted([anonymous, "named1"])
    status, _, body = unix_get(daemon.socket, "/v1.41/volumes/nosuch")
    assert status == 404 and json.loads(body)["message"] == "get nosuch: no such volume"
    events = ok(daemon, "events", "--since", "0", "--until", str(int(time.time()) + 1),
                "--filter",
                "type=volume", "--format", "{{.Action}} {{.Actor.ID}}").splitlines()
    assert events[0] == "create named1" and f"destroy {anonymous}" in events
    assert {"mount named1", "unmount named1", "destroy named1"} <= set(events)
    assert events[-1].startswith("prune")


def test_failed_mount_with_rm_removes_the_container(running_daemon: Daemon,
                                                    host_dir: Path):
    """A mount runc cannot make fails the start; ``--rm`` still removes the container."""
    daemon = running_daemon
    done = cli(daemon, "run", "--rm", "-v", f"{host_dir}:/a:ro", "--tmpfs", "/a/b", "bb:1",
               "true")
    assert done.returncode != 0 and "read-only file system" in done.stderr
    assert ok(daemon, "ps", "-aq") == ""
    assert list(host_dir.iterdir()) == []
    out = run(daemon, "-v", f"{host_dir}:/p:rshared", "bb:1", "sh", "-c",
              "grep ' /p ' /proc/mounts | cut -d' ' -f4")
    assert out.startswith("rw")


def test_local_driver_options_mount_a_tmpfs(running_daemon: Daemon):
    daemon = running_daemon
    ok(daemon, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
       "--opt", "o=size=1m,uid=1000", "tv")
    shown = json.loads(ok(daemon, "volume", "inspect", "tv"))[0]
    assert shown["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000"}
    out = run(daemon, "-v", "tv:/data", "bb:1", "sh", "-c",
              "echo x > /data/f; grep ' /data ' /proc/mounts; stat -c %u /data")
    assert out.startswith("tmpfs /data tmpfs") and "size=1024k" in out
    assert out.splitlines()[-1] == "1000"
    assert run(daemon, "-v", "tv:/data", "bb:1", "cat", "/data/f") == "x\n"
    daemon.stop()
    daemon.start()  # mounted again (empty: it is a tmpfs)
    assert run(daemon, "-v", "tv:/data", "bb:1", "ls", "/data") == ""
    bad = cli(daemon, "volume", "create", "--opt", "bogus=1", "b1")
    assert 'invalid option key: "bogus"' in bad.stderr
    bad = cli(daemon, "volume", "create", "--opt", "type=tmpfs", "b2")
    assert 'missing required option: "device"' in bad.stderr
    bad = cli(daemon, "volume", "create", "--opt", "type=nosuchfs", "--opt", "device=x",
              "b3")
    assert "failed to mount local volume" in bad.stderr
    assert ok(daemon, "volume", "ls", "-q").split() == ["tv"]
    ok(daemon, "volume", "rm", "tv")
    out = run(daemon, "--mount", "type=volume,src=mv,dst=/m,volume-opt=type=tmpfs,"
              "volume-opt=device=tmpfs,volume-label=made=here", "bb:1",
              "grep", " /m ", "/proc/mounts")
    assert out.startswith("tmpfs /m tmpfs")
    assert json.loads(ok(daemon, "volume", "inspect", "mv"))[0]["Labels"] == {"made": "here"}
    ok(daemon, "volume", "rm", "mv")
    assert os.listdir(daemon.root / "volumes") == []


def test_volume_driver_applies_to_binds_and_image_volumes(running_daemon: Daemon):
    """``--volume-driver`` is recorded; the volumes of ``-v`` and of the image come
    from that driver (only ``local`` exists), those of ``--mount`` do not."""
    daemon = running_daemon
    ok(daemon, "create", "--name", "vd", "--volume-driver", "foo", "bb:1", "true")
    assert inspect(daemon, "vd")["HostConfig"]["VolumeDriver"] == "foo"
    ok(daemon, "rm", "vd")
    body = {"Image": "bb:1", "Cmd": ["true"],
            "HostConfig": {"VolumeDriver": "foo", "Binds": ["vdv:/data"]}}
    status, _, answer = unix_get(daemon.socket or "", "/containers/create", "POST",
                                 json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    # a 404, as moby's (on which the CLI goes on to pull the image)
    assert (status, json.loads(answer)) == (404, {"message": 'create vdv: error looking '
                                                  'up volume plugin foo: plugin "foo" not found'})
    assert cli(daemon, "volume", "inspect", "vdv").returncode != 0
    assert run(daemon, "--volume-driver", "local", "-v", "vdv:/data", "bb:1",
               "sh", "-c", "echo x > /data/f; cat /data/f") == "x\n"
    assert run(daemon, "--volume-driver", "foo", "--mount", "source=vdv,target=/data",
               "bb:1", "cat", "/data/f") == "x\n"
    ok(daemon, "volume", "rm", "vdv")

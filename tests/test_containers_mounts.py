"""Bind mounts and tmpfs (``-v /host:/ctr``, ``--mount``, ``--tmpfs``) with the real
``docker`` CLI, and their checks without a daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockertw.daemon.containers.mounts import container_mounts, oci_mounts
from dockertw.errdefs import InvalidParameter
from tests.cli import cli, inspect, ok
from tests.support import Daemon


@pytest.mark.integration
def test_bind_mounts_read_write_and_read_only(running_daemon: Daemon, workdir: Path):
    daemon = running_daemon
    shared = workdir / "shared"
    shared.mkdir()
    (shared / "in").write_text("from the host\n")
    out = ok(daemon, "run", "--rm", "-v", f"{shared}:/data", "bb:1", "sh", "-c",
             "cat /data/in; echo from the container > /data/out")
    assert out == "from the host\n"
    assert (shared / "out").read_text() == "from the container\n"
    failed = cli(daemon, "run", "--rm", "-v", f"{shared}:/data:ro", "bb:1", "sh", "-c",
                 "echo x > /data/out")
    assert failed.returncode != 0 and "Read-only file system" in failed.stderr
    created = workdir / "made" / "by" / "docker"
    ok(daemon, "run", "--name", "mk", "-v", f"{created}:/m", "bb:1", "true")
    assert created.is_dir()  # -v makes a missing host directory, as Docker does
    assert inspect(daemon, "mk")["Mounts"] == [{
        "Type": "bind", "Source": str(created), "Destination": "/m", "Mode": "",
        "RW": True, "Propagation": "rprivate"}]
    ok(daemon, "rm", "mk")


@pytest.mark.integration
def test_mount_flag_and_tmpfs(running_daemon: Daemon, workdir: Path):
    daemon = running_daemon
    missing = cli(daemon, "run", "--rm", "--mount",
                  f"type=bind,source={workdir}/nope,target=/x", "bb:1", "true")
    assert f"bind source path does not exist: {workdir}/nope" in missing.stderr
    ok(daemon, "run", "--rm", "--mount", f"type=bind,source={workdir},target=/w,readonly",
       "bb:1", "test", "-d", "/w")
    mounted = ok(daemon, "run", "--rm", "--tmpfs", "/run/t:size=64k,mode=1770", "--mount",
                 "type=tmpfs,target=/t2,tmpfs-size=131072", "bb:1", "grep", "tmpfs",
                 "/proc/mounts")
    lines = {line.split()[1]: line for line in mounted.splitlines()}
    assert "size=64k" in lines["/run/t"] and "mode=1770" in lines["/run/t"]
    assert "size=128k" in lines["/t2"]
    duplicate = cli(daemon, "create", "-v", f"{workdir}:/a", "--tmpfs", "/a", "bb:1", "true")
    assert "Duplicate mount point: /a" in duplicate.stderr
    named = cli(daemon, "create", "-v", "vol:/a", "bb:1", "true")
    assert "named volumes are not supported by dockertw yet" in named.stderr


@pytest.mark.integration
def test_a_symlink_at_the_destination_stays_inside_the_container(
        running_daemon: Daemon, workdir: Path):
    daemon = running_daemon
    source = workdir / "src"
    source.mkdir()
    (source / "marker").write_text("m")
    victim = workdir / "victim"
    victim.mkdir()
    ok(daemon, "run", "--name", "ln", "bb:1", "ln", "-s", str(victim), "/escape")
    ok(daemon, "commit", "ln", "escape:1")
    ok(daemon, "run", "--rm", "-v", f"{source}:/escape", "escape:1", "cat",
       "/escape/marker")
    assert list(victim.iterdir()) == []  # the mount landed inside the rootfs
    ok(daemon, "rm", "ln")
    ok(daemon, "rmi", "escape:1")


@pytest.mark.parametrize(("host", "message"), [
    ({"Binds": ["/a"]}, "invalid volume specification: '/a'"),
    ({"Binds": ["/a:b"]}, "mount path must be absolute"),
    ({"Binds": ["/a:/"]}, "destination can't be '/'"),
    ({"Binds": ["/a:/b:bogus"]}, "invalid mode: bogus"),
    ({"Mounts": [{"Type": "npipe", "Target": "/x"}]}, "mount type unknown"),
    ({"Tmpfs": {"/t": "size=lots"}}, "invalid tmpfs option 'size=lots'"),
    ({"Binds": ["/a:/x", "/b:/x/"]}, "Duplicate mount point: /x"),
])
def test_bad_mounts(host, message):
    with pytest.raises(InvalidParameter, match=message):
        container_mounts(host)


def test_oci_mounts_parents_first(tmp_path: Path):
    host = {"Binds": [f"{tmp_path}/deep:/a/b:ro,rshared"], "Tmpfs": {"/a": ""}}
    mounts = oci_mounts(container_mounts(host))
    assert [m.destination for m in mounts] == ["/a", "/a/b"]
    assert mounts[1].options == ("rbind", "rshared", "ro")
    assert os.path.isdir(tmp_path / "deep")

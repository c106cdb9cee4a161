"""Unit tests: parsing and validating Binds, Mounts, Tmpfs and VolumesFrom."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockertw.daemon.containers.records import mounts
from dockertw.daemon.containers.running.mountsetup import copy_image_content, resolve_inside
from dockertw.daemon.mountpoint import MountPoint
from dockertw.errdefs import InvalidParameter


def test_bind_with_host_path_and_options():
    point = mounts.parse_bind("/srv/x/:/data:ro,Z,rshared")
    assert point == MountPoint("bind", "/data", source="/srv/x", rw=False,
                               mode="ro,Z,rshared", propagation="rshared",
                               create_source=True)
    assert mounts.parse_bind("/a:/b").propagation == "rprivate"


def test_named_and_anonymous_volume_binds():
    named = mounts.parse_bind("vol:/data:nocopy")
    assert (named.type, named.name, named.copy_data, named.mode) == (
        "volume", "vol", False, "nocopy")
    assert mounts.parse_bind("vol:/data").mode == "z"
    anonymous = mounts.parse_bind("/data")
    assert anonymous.anonymous and anonymous.name == ""


@pytest.mark.parametrize(("raw", "message"), [
    ("", "invalid volume specification: ''"),
    (":/x", "invalid volume specification: ':/x'"),
    ("/x:rw", "invalid volume specification: '/x:rw'"),
    ("/a:/b:c:d", "invalid volume specification: '/a:/b:c:d'"),
    ("/a:/b:bogus", "invalid mode: bogus"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type "
             "\"bind\": invalid specification: destination can't be '/'"),
    ("/a:b", "invalid volume specification: '/a:b': invalid mount config for type "
             "\"bind\": invalid mount path: 'b' mount path must be absolute"),
])
def test_invalid_binds(raw: str, message: str):
    with pytest.raises(InvalidParameter) as caught:
        mounts.parse_bind(raw)
    assert str(caught.value) == message


def test_mount_specs(tmp_path: Path):
    bind = mounts.parse_mount({"Type": "bind", "Source": str(tmp_path), "Target": "/t",
                               "ReadOnly": True,
                               "BindOptions": {"Propagation": "rslave"}})
    assert (bind.source, bind.rw, bind.propagation) == (str(tmp_path), False, "rslave")
    tmpfs = mounts.parse_mount({"Type": "tmpfs", "Target": "/t",
                                "TmpfsOptions": {"SizeBytes": 65536, "Mode": 0o1777}})
    assert tmpfs.data == "mode=1777,size=64k"
    volume = mounts.parse_mount({"Type": "volume", "Source": "v", "Target": "/t",
                                 "VolumeOptions": {"NoCopy": True}})
    assert (volume.name, volume.copy_data, volume.driver) == ("v", False, "local")
    configured = mounts.parse_mount({
        "Type": "volume", "Target": "/t", "VolumeOptions": {
            "Labels": {"a": "b"},
            "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}})
    assert configured.labels == {"a": "b"} and configured.options == {"type": "tmpfs"}
    with pytest.raises(InvalidParameter, match="mount path must be absolute"):
        mounts.collect({}, ["rel"])


@pytest.mark.parametrize(("spec", "message"), [
    ({"Type": "bind", "Source": "/nonexistent-dtw", "Target": "/t"},
     'invalid mount config for type "bind": bind source path does not exist: '
     "/nonexistent-dtw"),
    ({"Type": "bind", "Target": "/t"},
     'invalid mount config for type "bind": field Source must not be empty'),
    ({"Type": "bind", "Source": "rel", "Target": "/t"},
     'invalid mount config for type "bind": invalid mount path: \'rel\' mount path must '
     "be absolute"),
    ({"Type": "bind", "Source": "/", "Target": ""},
     'invalid mount config for type "bind": field Target must not be empty'),
    ({"Type": "tmpfs", "Source": "x", "Target": "/t"},
     'invalid mount config for type "tmpfs": field Source must not be specified'),
    ({"Type": "volume", "Target": "/t", "ReadOnly": True},
     'invalid mount config for type "volume": must not set ReadOnly mode when using '
     "anonymous volumes"),
    ({"Type": "weird", "Target": "/t"},
     'invalid mount config for type "weird": mount type unknown'),
    ({"Type": "bind", "Source": "/", "Target": "/t", "BindOptions": {"Propagation": "x"}},
     'invalid mount config for type "bind": invalid propagation mode: x'),
])
def test_invalid_mount_specs(spec: dict[str, object], message: str):
    with pytest.raises(InvalidParameter) as caught:
        mounts.parse_mount(spec)
    assert str(caught.value) == message


def test_collect_orders_parents_first_and_refuses_duplicates():
    points = mounts.collect({"Binds": ["/h:/a/b/c", "v:/a"], "Tmpfs": {"/a/b": "size=1k"}},
                            ["/a", "/img"])
    assert [p.destination for p in points] == ["/a", "/img", "/a/b", "/a/b/c"]
    assert points[1].anonymous
    with pytest.raises(InvalidParameter, match="Duplicate mount point: /x"):
        mounts.collect({"Binds": ["/h:/x"], "Mounts": [{"Type": "tmpfs", "Target": "/x/"}]})


def test_volumes_from_modes():
    assert mounts.parse_volumes_from("c") == ("c", "rw")
    assert mounts.parse_volumes_from("c:ro") == ("c", "ro")
    for bad in ("c:rshared", "c:nocopy", "c:bad"):
        with pytest.raises(InvalidParameter, match="invalid mode"):
            mounts.parse_volumes_from(bad)


def test_runtime_mounts_options():
    bind, tmpfs = mounts.runtime_mounts([
        MountPoint("bind", "/b", source="/h", rw=False, propagation="rslave"),
        MountPoint("tmpfs", "/a", data="exec,size=1k")])[::-1]
    assert bind.options == ("rbind", "rslave", "ro")
    assert tmpfs.options == ("nosuid", "nodev", "exec", "size=1k")
    assert tmpfs.destination == "/a" and tmpfs.type == "tmpfs"


def test_resolve_inside_never_leaves_the_root(tmp_path: Path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "abs").symlink_to("/real")
    (root / "up").symlink_to("../../../../real")
    (root / "out").symlink_to(str(tmp_path))
    assert resolve_inside(root, "/abs") == root / "real"
    assert resolve_inside(root, "/up") == root / "real"
    assert resolve_inside(root, "/out") is None  # tmp_path's components are not in root


def test_copy_image_content_keeps_modes(tmp_path: Path):
    root = tmp_path / "root"
    (root / "etc" / "sub").mkdir(parents=True)
    (root / "etc" / "f").write_text("x")
    (root / "etc" / "f").chmod(0o640)
    (root / "etc").chmod(0o750)
    data = tmp_path / "data"
    data.mkdir()
    copy_image_content(root, "/etc", data)
    assert (data / "f").read_text() == "x" and (data / "sub").is_dir()
    assert (data / "f").stat().st_mode & 0o777 == 0o640
    assert data.stat().st_mode & 0o777 == 0o750

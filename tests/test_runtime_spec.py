"""OCI spec generation, and the spec run by the real runc."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import attrs
import pytest

from dockertw.errdefs import InvalidParameter
from dockertw.runtime.devices import Device, DeviceRule
from dockertw.runtime.seccomp_default import DEFAULT_PROFILE
from dockertw.runtime.spec import (
    DEFAULT_CAPABILITIES,
    ContainerRuntimeConfig,
    Mount,
    Namespaces,
    ProcessUser,
    Tuning,
    build_spec,
    normalize_capabilities,
)
from tests.rootfs import make_busybox_rootfs, remove_cgroup


def _config(**changes) -> ContainerRuntimeConfig:
    base = ContainerRuntimeConfig(args=("sh",), rootfs="/r", hostname="abc123")
    return attrs.evolve(base, **changes)


def test_terminal_and_console_size():
    assert "consoleSize" not in build_spec(_config(console_size=(40, 120)))["process"]
    process = build_spec(_config(terminal=True, console_size=(40, 120)))["process"]
    assert process["terminal"] is True
    assert process["consoleSize"] == {"height": 40, "width": 120}
    assert "TERM=xterm" in process["env"]
    assert "consoleSize" not in build_spec(_config(terminal=True))["process"]


def test_docker_defaults():
    spec = build_spec(_config())
    process = spec["process"]
    assert process["env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=abc123", "HOME=/root"]
    assert process["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert {ns["type"] for ns in spec["linux"]["namespaces"]} == {
        "pid", "ipc", "uts", "mount", "network"}
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    devices = spec["linux"]["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in devices
    assert devices[-1] == {"allow": False, "type": "c", "major": 10, "minor": 229,
                           "access": "rwm"}
    assert [m["destination"] for m in spec["mounts"]][:2] == ["/proc", "/dev"]
    assert "seccomp" not in spec["linux"] and "devices" not in spec["linux"]


def test_seccomp_devices_namespaces_and_shm():
    tuning = Tuning(seccomp=DEFAULT_PROFILE, writable_cgroups=True)
    null = Device("/dev/n", "c", 1, 3, 0o666, 0, 0)
    spec = build_spec(_config(
        tuning=tuning, devices=(null,), device_rules=(DeviceRule(True, "r", "c", 1, 3),),
        namespaces=Namespaces(pid="host", ipc="/proc/7/ns/ipc", uts="host",
                              cgroup_private=True, shm="/srv/shm")))
    linux = spec["linux"]
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert linux["devices"] == [{"path": "/dev/n", "type": "c", "major": 1, "minor": 3,
                                 "fileMode": 0o666, "uid": 0, "gid": 0}]
    assert linux["resources"]["devices"][-1] == {"allow": True, "type": "c", "major": 1,
                                                 "minor": 3, "access": "r"}
    assert linux["namespaces"] == [{"type": "ipc", "path": "/proc/7/ns/ipc"},
                                   {"type": "mount"}, {"type": "network"},
                                   {"type": "cgroup"}]
    assert spec["hostname"] == ""
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/dev/shm"] == {"destination": "/dev/shm", "type": "bind",
                                  "source": "/srv/shm", "options": ["rbind", "rprivate"]}
    assert "ro" not in mounts["/sys/fs/cgroup"]["options"]
    none = build_spec(_config(namespaces=Namespaces(shm="none")))
    assert "/dev/shm" not in {m["destination"] for m in none["mounts"]}


def test_capabilities_add_drop_and_all():
    spec = build_spec(_config(cap_add=("net_admin",), cap_drop=("CAP_CHOWN", "kill")))
    caps = spec["process"]["capabilities"]["effective"]
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    only = build_spec(_config(cap_drop=("ALL",), cap_add=("NET_RAW",)))
    assert only["process"]["capabilities"]["effective"] == ["CAP_NET_RAW"]
    with pytest.raises(InvalidParameter, match='unknown capability: "CAP_BOGUS"'):
        normalize_capabilities(["bogus"], "CapAdd")


def test_resources_network_host_privileged_and_mounts():
    spec = build_spec(_config(memory=64 << 20, nano_cpus=1_500_000_000, cpu_shares=512,
                              pids_limit=10, network="host", privileged=True,
                              mounts=(Mount("/data", "/srv/data"),),
                              user=ProcessUser(1000, 1000, (10,), "/home/u"),
                              env=("PATH=/x", "HOME=/h"), terminal=True))
    resources = spec["linux"]["resources"]
    assert resources["memory"] == {"limit": 64 << 20}
    assert resources["cpu"] == {"shares": 512, "period": 100000, "quota": 150000}
    assert resources["pids"] == {"limit": 10}
    assert resources["devices"] == [{"allow": True, "access": "rwm"}]
    assert "network" not in {ns["type"] for ns in spec["linux"]["namespaces"]}
    assert "maskedPaths" not in spec["linux"]
    assert spec["mounts"][-1] == {"destination": "/data", "type": "bind",
                                  "source": "/srv/data", "options": ["rbind", "rprivate"]}
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert spec["process"]["env"] == ["PATH=/x", "HOME=/h", "HOSTNAME=abc123", "TERM=xterm"]


@pytest.fixture
def bundle():
    base = Path("/tmp") / f"dtw-bundle-{uuid.uuid4().hex[:8]}"
    try:
        make_busybox_rootfs(base / "rootfs")
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _run_in_runc(bundle: Path, config: ContainerRuntimeConfig) -> subprocess.CompletedProcess:
    container_id = f"dtw-spec-{uuid.uuid4().hex[:12]}"
    (bundle / "config.json").write_text(json.dumps(build_spec(config)))
    state = bundle / "runc-state"
    try:
        return subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle),
                               container_id], capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, check=False)
    finally:
        subprocess.run(["runc", "--root", str(state), "delete", "--force", container_id],
                       capture_output=True, check=False)


def test_runc_runs_the_spec(bundle: Path):
    config = ContainerRuntimeConfig(
        args=("sh", "-c", "echo hi; id -u; hostname; grep CapEff /proc/self/status; "
                          "ip link 2>/dev/null | grep -c '^[0-9]'; exit 3"),
        rootfs=str(bundle / "rootfs"), hostname="c0ffee", user=ProcessUser(65534, 65534),
        cgroups_path=f"/dockertw-test-{uuid.uuid4().hex[:8]}/c")
    try:
        done = _run_in_runc(bundle, config)
    finally:
        remove_cgroup(config.cgroups_path.rsplit("/", 1)[0])
    lines = done.stdout.splitlines()
    assert done.returncode == 3, done.stderr
    assert lines[:3] == ["hi", "65534", "c0ffee"]
    assert lines[3].split()[1] == "0000000000000000"  # no capabilities for a non-root user
    assert lines[4] == "1"  # a private network namespace has only loopback


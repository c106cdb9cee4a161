"""Unit tests: the local volume store and the volume service without a daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed

from dockertw.client.docker import DockerClient
from dockertw.client.errors import NotFoundError
from dockertw.daemon.events import EventBus
from dockertw.daemon.mountpoint import MountPoint
from dockertw.daemon.volumes.service import VolumeService
from dockertw.daemon.volumes.store import VolumeStore
from dockertw.errdefs import Conflict, InvalidParameter, NotFound
from dockertw.filters import Filters
from tests.support import Daemon


def _now(function: Any) -> Deferred[Any]:
    return succeed(function())


def _result(deferred: Deferred[Any]) -> Any:
    results: list[Any] = []
    deferred.addBoth(results.append)
    value = results[0]
    if hasattr(value, "raiseException"):
        value.raiseException()
    return value


def _service(root: Path, users: dict[str, list[str]] | None = None
             ) -> tuple[VolumeService, EventBus]:
    bus = EventBus()
    service = VolumeService(VolumeStore(root / "volumes"),
                            call_from_thread=lambda f, *a, **k: f(*a, **k), events=bus,
                            writer=_now, reader=_now)
    service.volume_users = lambda name: (users or {}).get(name, [])
    return service, bus


def test_store_survives_reopen_and_ignores_half_created(tmp_path: Path):
    store = VolumeStore(tmp_path)
    volume, created = store.create("data", labels={"a": "b"})
    assert created and Path(volume.mountpoint).is_dir()
    assert store.create("data")[1] is False
    (tmp_path / "half" / "_data").mkdir(parents=True)  # no volume.json: never finished
    again = VolumeStore(tmp_path)
    assert [v.name for v in again.all()] == ["data"]
    assert again.get("data").labels == {"a": "b"}
    view = again.get("data").view()
    assert list(view) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                          "Scope"]
    assert view["Options"] is None and view["Scope"] == "local"


@pytest.mark.parametrize("name", ["x", "a/b", "-x", "a b"])
def test_store_refuses_bad_names(tmp_path: Path, name: str):
    with pytest.raises(InvalidParameter, match="includes invalid characters"):
        VolumeStore(tmp_path).create(name)


def test_anonymous_names_are_64_hex(tmp_path: Path):
    volume, _ = VolumeStore(tmp_path).create(anonymous=True)
    assert len(volume.name) == 64 and int(volume.name, 16) >= 0


def test_service_create_remove_in_use_and_events(tmp_path: Path):
    service, bus = _service(tmp_path, {"busy": ["c" * 64]})
    shown = _result(service.create({"Name": "busy", "Driver": "local"}))
    assert shown["Name"] == "busy"
    with pytest.raises(Conflict, match=r"remove busy: volume is in use - \[c{64}\]"):
        _result(service.remove("busy"))
    with pytest.raises(NotFound, match="get gone: no such volume"):
        _result(service.remove("gone"))
    _result(service.remove("gone", force=True))
    with pytest.raises(NotFound, match='plugin "nfs" not found'):
        service.create({"Name": "v2", "Driver": "nfs"})
    with pytest.raises(InvalidParameter, match='invalid option key: "bogus"'):
        service.create({"Name": "v2", "DriverOpts": {"bogus": "1"}})
    events = [(e.action, e.actor_id) for e in bus.recent(Filters(), 0, None)]
    assert events == [("create", "busy")]


def test_service_list_filters_and_prune(tmp_path: Path):
    service, _ = _service(tmp_path, {"used": ["c1"]})
    for name, labels in (("used", {}), ("free", {"keep": "1"}), ("other", {})):
        _result(service.create({"Name": name, "Labels": labels}))
    anonymous = service.acquire(MountPoint("volume", "/x", anonymous=True))

    def names(**filters: list[str]) -> list[str]:
        listed = _result(service.list_volumes(Filters(filters)))
        return sorted(v["Name"] for v in listed["Volumes"])

    assert names(dangling=["false"]) == ["used"]
    assert names(label=["keep=1"]) == ["free"]
    assert names(name=["ot"]) == ["other"]
    assert names(driver=["nfs"]) == []
    pruned = _result(service.prune(Filters({"label!": frozenset({"keep"})}), False))
    assert sorted(pruned["VolumesDeleted"]) == sorted([anonymous.name, "other"])
    _result(service.create({"Name": "other"}))
    service.acquire(MountPoint("volume", "/x", anonymous=True))
    pruned = _result(service.prune(Filters(), True))  # API >= 1.42: anonymous only
    assert len(pruned["VolumesDeleted"]) == 1 and len(pruned["VolumesDeleted"][0]) == 64
    metadata = json.loads((tmp_path / "volumes" / "free" / "volume.json").read_bytes())
    assert metadata["Labels"] == {"keep": "1"}


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_client_volume_calls_against_the_daemon(daemon: Daemon) -> None:
    """dockertw's own client: create, list (filtered), inspect, remove."""
    client = DockerClient(f"unix://{daemon.socket}")
    try:
        created = await client.create_volume("cv1", labels={"k": "v"})
        assert created["Name"] == "cv1" and created["Labels"] == {"k": "v"}
        listed = await client.list_volumes(filters={"label": "k=v"})
        assert [v["Name"] for v in listed["Volumes"]] == ["cv1"]
        assert (await client.inspect_volume("cv1"))["Driver"] == "local"
        await client.remove_volume("cv1")
        with pytest.raises(NotFoundError):
            await client.inspect_volume("cv1")
        await client.remove_volume("cv1", force=True)
    finally:
        await client.close()

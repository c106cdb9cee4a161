"""Container records without HTTP: names, config merge and defaults, the store, the
service with synchronous runners (events, resolution, filters, prune, image users)."""

from __future__ import annotations

import io
import json
import random
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred

from dockertw.daemon.containers.records import config as configs
from dockertw.daemon.containers.records.names import check_name, generate_id, random_name
from dockertw.daemon.containers.records.record import ZERO_TIME, Container, command_line
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.service import ContainerService, CreateOptions, ListOptions
from dockertw.daemon.events import EventBus
from dockertw.daemon.images.service import ImageService, ImportOptions
from dockertw.daemon.images.store import ImageStore
from dockertw.errdefs import Conflict, InvalidParameter, NotFound, System
from dockertw.filters import Filters


def _result(deferred: Deferred[Any]) -> Any:
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]


def _now(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    call(*args, **kwargs)


def _layer() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("hello")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"hi"))
    buffer.seek(0)
    return buffer


@pytest.fixture
def images(tmp_path: Path) -> ImageService:
    store = ImageStore.open(tmp_path, overlay_whiteouts=False)
    return ImageService(store, relay=lambda *_: None, call_from_thread=_now,
                        writer=maybeDeferred, reader=maybeDeferred, architecture="amd64")


@pytest.fixture
def image_id(images: ImageService) -> str:
    changes = ('ENV A=1 B=2', 'CMD ["sh"]', "WORKDIR /w", 'LABEL from=image x=image',
               "EXPOSE 80")
    return str(_result(images.import_image(
        _layer(), ImportOptions(repository="img:1", changes=changes))))


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


def _service(root: Path, images: ImageService, bus: EventBus) -> ContainerService:
    return ContainerService(ContainerStore.open(root), images.store, call_from_thread=_now,
                            events=bus, writer=maybeDeferred, reader=maybeDeferred,
                            cgroup_version="2")


@pytest.fixture
def service(tmp_path: Path, images: ImageService, bus: EventBus,
            image_id: str) -> ContainerService:
    return _service(tmp_path, images, bus)


def _create(service: ContainerService, name: str = "", **body: Any) -> str:
    answer = _result(service.create({"Image": "img:1", **body}, CreateOptions(name=name)))
    assert answer["Warnings"] == []
    return str(answer["Id"])


def _inspect(service: ContainerService, name: str) -> dict[str, Any]:
    return dict(_result(service.inspect(name)))


def _list(service: ContainerService, **filters: list[str]) -> list[str]:
    options = ListOptions(all=True, filters=Filters({k: frozenset(v)
                                                     for k, v in filters.items()}))
    return [item["Names"][0] for item in _result(service.list_containers(options))]


# -- names --------------------------------------------------------------------------


def test_ids_are_random_hex_whose_short_form_is_not_a_number():
    assert re.fullmatch(r"[0-9a-f]{64}", generate_id())
    tokens = iter(["1" * 64, "a" * 64])
    assert generate_id(lambda _: next(tokens)) == "a" * 64


def test_generated_names_and_retries():
    rng = random.Random(4)
    assert re.fullmatch(r"[a-z]+_[a-z]+", random_name(0, rng))
    assert re.fullmatch(r"[a-z]+_[a-z]+[0-9]", random_name(1, rng))


@pytest.mark.parametrize("name", ["ab", "/ab", "a.b-c_d", "A1"])
def test_valid_names_gain_a_slash(name: str):
    assert check_name(name) == "/" + name.removeprefix("/")


@pytest.mark.parametrize("name", ["a", "bad/name", "-ab", "a b", ""])
def test_invalid_names_answer_dockers_message(name: str):
    with pytest.raises(InvalidParameter) as caught:
        check_name(name)
    assert str(caught.value) == (f"Invalid container name ({name}), only "
                                 f"[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


# -- config -------------------------------------------------------------------------


def test_the_body_must_carry_a_config():
    with pytest.raises(InvalidParameter, match="Config cannot be empty"):
        configs.parse_create_body({"HostConfig": {}})
    with pytest.raises(InvalidParameter, match="invalid JSON"):
        configs.parse_create_body(None)
    with pytest.raises(InvalidParameter, match="invalid JSON"):
        configs.parse_create_body([1])
    with pytest.raises(InvalidParameter, match="Cmd"):
        configs.parse_create_body({"Image": "x", "Cmd": [1]})
    assert configs.parse_create_body({"Image": "x", "Cmd": "true"}).config["Cmd"] == ["true"]


def test_merge_takes_what_the_container_leaves_unset_from_the_image():
    user: dict[str, Any] = {"Env": ["A=9", "C=3"], "Labels": {"x": "user"}, "Cmd": None,
                            "Entrypoint": None, "ExposedPorts": {"81/tcp": {}}}
    image = {"Env": ["A=1", "B=2"], "Cmd": ["sh"], "WorkingDir": "/w", "User": "u",
             "Labels": {"x": "image", "y": "image"}, "ExposedPorts": {"80/tcp": {}}}
    configs.merge_image_config(user, image)
    assert user["Env"] == ["A=9", "C=3", "B=2"]
    assert user["Labels"] == {"x": "user", "y": "image"}
    assert user["Cmd"] == ["sh"] and user["WorkingDir"] == "/w" and user["User"] == "u"
    assert user["ExposedPorts"] == {"80/tcp": {}, "81/tcp": {}}


def test_an_entrypoint_keeps_the_image_command_out():
    user: dict[str, Any] = {"Entrypoint": ["echo"], "Cmd": None}
    configs.merge_image_config(user, {"Cmd": ["sh"], "Entrypoint": ["/init"]})
    assert user["Cmd"] is None and user["Entrypoint"] == ["echo"]
    assert configs.entrypoint_and_args({"Entrypoint": ["a", "b"], "Cmd": ["c"]}) == (
        "a", ["b", "c"])


def test_fill_config_orders_fields_and_refuses_nothing_to_run():
    filled = configs.fill_config({"Cmd": ["true"], "Image": "img"}, "0123456789abcdef")
    assert list(filled)[:3] == ["Hostname", "Domainname", "User"]
    assert filled["Hostname"] == "0123456789ab" and filled["Labels"] == {}
    assert "ExposedPorts" not in filled and filled["Env"] is None
    with pytest.raises(InvalidParameter, match="^No command specified$"):
        configs.fill_config({"Cmd": None, "Entrypoint": [""]}, "0" * 64)
    with pytest.raises(InvalidParameter, match="absolute path"):
        configs.fill_config({"Cmd": ["true"], "WorkingDir": "rel"}, "0" * 64)
    with pytest.raises(InvalidParameter, match="Invalid signal"):
        configs.fill_config({"Cmd": ["true"], "StopSignal": "BOGUS"}, "0" * 64)


def test_host_config_defaults_match_docker():
    filled = configs.fill_host_config({}, {}, runtime="runc", cgroup_version="1")
    captured = {
        "NetworkMode": "default", "PortBindings": {}, "CgroupnsMode": "host",
        "IpcMode": "private", "ShmSize": 67108864, "Runtime": "runc",
        "ConsoleSize": [0, 0], "Dns": [], "Devices": [], "PidsLimit": None,
        "LogConfig": {"Type": "json-file", "Config": {}}, "Binds": None,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "MaskedPaths": list(configs.MASKED_PATHS),
        "ReadonlyPaths": list(configs.READONLY_PATHS),
    }
    assert {key: filled[key] for key in captured} == captured
    assert list(filled)[:4] == ["Binds", "ContainerIDFile", "LogConfig", "NetworkMode"]
    assert "Tmpfs" not in filled and "Init" not in filled
    assert configs.fill_host_config({}, {}, runtime="runc",
                                    cgroup_version="2")["CgroupnsMode"] == "private"


def test_host_config_keeps_what_will_be_honoured():
    filled = configs.fill_host_config(
        {"Binds": ["/a:/b"], "Tmpfs": {"/t": ""}, "NetworkMode": "host",
         "CapAdd": ["net_admin"], "RestartPolicy": {"Name": "on-failure",
                                                    "MaximumRetryCount": 2}},
        {"EndpointsConfig": {"host": {}}}, runtime="runc", cgroup_version="2")
    assert filled["Binds"] == ["/a:/b"] and filled["Tmpfs"] == {"/t": ""}
    assert filled["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}


@pytest.mark.parametrize("host, message", [
    ({"PortBindings": {"80/tcp": [{"HostPort": "80-x"}]}}, 'invalid port specification: "80-x"'),
    ({"PortBindings": {"http/tcp": []}}, 'invalid port specification: "http"'),
    ({"ExtraHosts": ["nocolon"]}, 'bad format for add-host: "nocolon"'),
    ({"ExtraHosts": ["h:1.2.3"]}, 'invalid IP address in add-host: "1.2.3"'),
    ({"Dns": ["example.com"]}, "example.com is not an ip address"),
    ({"NetworkMode": "container:x", "Links": ["a:b"]}, "container type network can't be "
                                                       "used with links"),
    ({"NetworkMode": "container:x", "PortBindings": {"80/tcp": []}}, "port publishing "
                                                                    "and the container"),
    ({"NetworkMode": "host", "Links": ["a:b"]}, "host type networking can't be used"),
    ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]},
     "invalid device mode: rwx"),
    ({"Devices": [{"PathInContainer": "/dev/x"}]}, "PathOnHost is empty"),
    ({"DeviceRequests": [{"Driver": "nvidia", "Capabilities": [["gpu", "utility"]]}]},
     'could not select device driver "nvidia" with capabilities: [[gpu utility]]'),
    ({"Isolation": "process"}, "invalid isolation (process): linux only supports 'default'"),
    ({"IpcMode": "sometimes"}, "invalid IPC mode: sometimes"),
    ({"RestartPolicy": {"Name": "sometimes"}}, "invalid restart policy 'sometimes'"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 1}}, "maximum retry"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, "AutoRemove"),
    ({"CapAdd": ["NOT_A_CAP"]}, "unknown capability"),
    ({"Memory": 1024}, "Minimum memory"),
    ({"LogConfig": {"Type": "syslog"}}, "logging driver"),
])
def test_host_config_refuses_what_cannot_be_honoured(host: dict[str, Any], message: str):
    with pytest.raises(InvalidParameter, match=re.escape(message)):
        configs.fill_host_config(host, {}, runtime="runc", cgroup_version="2")


def test_endpoint_configs_must_be_objects():
    with pytest.raises(InvalidParameter, match="an endpoint config must be an object"):
        configs.fill_host_config({}, {"EndpointsConfig": {"other": []}}, runtime="runc",
                                 cgroup_version="2")


def test_command_line_quotes_arguments_with_spaces():
    assert command_line("sh", ["-c", "echo hi"]) == "sh -c 'echo hi'"
    assert command_line("true", []) == "true"


# -- service and store ----------------------------------------------------------------


def test_create_merges_the_image_and_publishes_create(service: ContainerService,
                                                      bus: EventBus, image_id: str):
    container_id = _create(service, "web", Env=["B=3"], Labels={"x": "user"})
    shown = _inspect(service, "web")
    assert shown["Id"] == container_id and shown["Name"] == "/web"
    assert shown["Path"] == "sh" and shown["Args"] == []
    assert shown["Image"] == image_id and shown["State"]["Status"] == "created"
    assert shown["State"]["StartedAt"] == ZERO_TIME
    assert shown["Config"]["Env"] == ["B=3", "A=1"]
    assert shown["Config"]["Labels"] == {"from": "image", "x": "user"}
    assert shown["Config"]["WorkingDir"] == "/w"
    assert shown["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert list(shown)[:5] == ["Id", "Created", "Path", "Args", "State"]
    event = bus.recent(Filters(), 0, None)[-1]
    assert (event.type, event.action, event.actor_id) == ("container", "create",
                                                          container_id)
    assert event.attributes["name"] == "web" and event.attributes["image"] == "img:1"
    assert service.container_count() == 1


def test_create_errors(service: ContainerService):
    _create(service, "web", Cmd=["true"])
    with pytest.raises(Conflict, match='The container name "/web" is already in use'):
        _create(service, "web", Cmd=["true"])
    with pytest.raises(NotFound, match="^No such image: nope:latest$"):
        _result(service.create({"Image": "nope", "Cmd": ["true"]}, CreateOptions()))
    with pytest.raises(InvalidParameter, match="Invalid container name"):
        _create(service, "bad/name")


def test_resolution_by_id_name_and_prefix(service: ContainerService):
    first = _create(service, "one")
    assert _inspect(service, first)["Name"] == "/one"
    assert _inspect(service, "/one")["Id"] == first
    assert _inspect(service, first[:5])["Id"] == first
    with pytest.raises(NotFound, match="^No such container: zz$"):
        _inspect(service, "zz")
    store = ContainerStore(Path("/nonexistent"))
    for cid in ("ab" + "0" * 62, "ab" + "1" * 62):
        store._containers[cid] = Container(cid, "/" + cid, 0, "true", [], {}, {}, "")
    with pytest.raises(System, match="^Multiple IDs found with provided prefix: ab$"):
        store.get("ab")


def test_records_survive_a_reopen(tmp_path: Path, service: ContainerService,
                                  images: ImageService, bus: EventBus):
    container_id = _create(service, "kept", Cmd=["echo", "a b"])
    (tmp_path / "containers" / ("f" * 64)).mkdir()  # an interrupted create
    again = _service(tmp_path, images, bus)
    assert _inspect(again, "kept") == _inspect(service, container_id)
    assert not (tmp_path / "containers" / ("f" * 64)).exists()
    saved = json.loads((tmp_path / "containers" / container_id / "hostconfig.json")
                       .read_bytes())
    assert saved["NetworkMode"] == "default"


def test_rename_and_remove(service: ContainerService, bus: EventBus):
    container_id = _create(service, "old")
    _create(service, "other")
    _result(service.rename("old", "new"))
    assert _inspect(service, container_id)["Name"] == "/new"
    renamed = bus.recent(Filters(), 0, None)[-1]
    assert renamed.action == "rename" and renamed.attributes["oldName"] == "/old"
    with pytest.raises(Conflict):
        _result(service.rename("new", "other"))
    with pytest.raises(InvalidParameter, match="same name as its current name"):
        _result(service.rename("new", "new"))
    with pytest.raises(InvalidParameter, match="Neither old nor new names may be empty"):
        service.rename("new", "")
    _result(service.remove("new"))
    assert bus.recent(Filters(), 0, None)[-1].action == "destroy"
    with pytest.raises(NotFound):
        _inspect(service, container_id)


def test_list_shapes_and_filters(service: ContainerService):
    _create(service, "aa", Labels={"tier": "web"})
    _create(service, "bb", Cmd=["echo", "a b"])
    _create(service, "cc")
    assert _result(service.list_containers(ListOptions())) == []  # none running
    assert _list(service) == ["/cc", "/bb", "/aa"]
    assert _list(service, name=["b"]) == ["/bb"]
    assert _list(service, label=["tier=web"]) == ["/aa"]
    assert _list(service, status=["created"]) == ["/cc", "/bb", "/aa"]
    assert _list(service, status=["exited"]) == []
    assert _list(service, exited=["0"]) == []
    assert _list(service, ancestor=["img:1"]) == ["/cc", "/bb", "/aa"]
    assert _list(service, before=["bb"]) == ["/aa"]
    assert _list(service, since=["aa"]) == ["/cc", "/bb"]
    item = _result(service.list_containers(ListOptions(limit=1, size=True)))[0]
    assert list(item)[:7] == ["Id", "Names", "Image", "ImageID", "Command", "Created",
                              "Ports"]
    assert (item["State"], item["Status"], item["Image"]) == ("created", "Created", "img:1")
    assert item["NetworkSettings"]["Networks"].keys() == {"bridge"}
    for bad in ({"status": frozenset({"bogus"})}, {"foo": frozenset({"x"})}):
        with pytest.raises(InvalidParameter):
            service.list_containers(ListOptions(all=True, filters=Filters(bad)))


def test_prune_and_image_users(service: ContainerService, images: ImageService,
                               bus: EventBus, image_id: str):
    kept = _create(service, "kept", Labels={"keep": "1"})
    gone = _create(service, "gone")
    with pytest.raises(Conflict, match="container .* is using its referenced image"):
        _result(images.delete("img:1"))
    upper = service._store.root / gone / "upper"  # what the container wrote
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "data").write_bytes(b"x" * 1234)
    answer = _result(service.prune(Filters({"label!": frozenset({"keep"})})))
    assert answer == {"ContainersDeleted": [gone], "SpaceReclaimed": 1234}
    event = bus.recent(Filters(), 0, None)[-1]
    assert (event.action, event.attributes["reclaimed"]) == ("prune", "1234")
    assert _list(service) == ["/kept"]
    _result(service.remove(kept))
    assert _result(service.prune(Filters())) == {"ContainersDeleted": None,
                                                 "SpaceReclaimed": 0}
    _result(images.delete("img:1"))

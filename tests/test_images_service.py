"""The image service with synchronous runners: Docker's JSON shapes, filters, events."""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, maybeDeferred

from dockertw.daemon.images import views
from dockertw.daemon.images.service import ImageService, ImportOptions
from dockertw.daemon.images.store import ImageStore
from dockertw.errdefs import Conflict, InvalidParameter, NotFound, NotImplemented
from dockertw.filters import Filters

Events = list[tuple[str, str, dict[str, str]]]


def _tar(files: Mapping[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _result(deferred: Deferred[Any]) -> Any:
    """The result of an already fired Deferred (its failure is raised)."""
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]


def _filters(**values: list[str]) -> Filters:
    return Filters({key.replace("_", "!"): frozenset(v) for key, v in values.items()})


@pytest.fixture
def events() -> Events:
    return []


@pytest.fixture
def service(tmp_path: Path, events: Events) -> ImageService:
    def relay(action: str, actor: str, attributes: Mapping[str, str]) -> None:
        events.append((action, actor, dict(attributes)))

    def now(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        call(*args, **kwargs)

    store = ImageStore.open(tmp_path, overlay_whiteouts=False, events=relay)
    return ImageService(store, relay=relay, call_from_thread=now, writer=maybeDeferred,
                        reader=maybeDeferred, architecture="amd64")


def _import(service: ImageService, files: Mapping[str, bytes] | None = None,
            **options: Any) -> str:
    body = _tar(files if files is not None else {"hello": b"hi"})
    return str(_result(service.import_image(body, ImportOptions(**options))))


def test_import_writes_dockers_config_and_publishes_tag_then_import(
        service: ImageService, events: Events):
    image_id = _import(service, repository="img:1", changes=('CMD ["sh"]',))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    config = json.loads(service.store.get(image_id).raw_config)
    assert list(config) == sorted(config)  # Docker sorts the top-level keys
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["comment"] == "Imported from -"
    assert config["config"]["Cmd"] == ["sh"]
    assert config["history"] == [{"created": config["created"],
                                  "comment": "Imported from -"}]
    assert config["rootfs"]["type"] == "layers" and len(config["rootfs"]["diff_ids"]) == 1
    assert [(action, actor) for action, actor, _ in events] == [("tag", image_id),
                                                                ("import", image_id)]
    assert events[0][2] == {"name": "img:1"} and events[1][2] == {"name": image_id}


def test_import_parameters_are_checked_before_the_body(service: ImageService):
    unread = io.BytesIO(b"not a tar")
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        service.import_image(unread, ImportOptions(changes=("RUN x",)))
    with pytest.raises(InvalidParameter, match="cannot import digest reference"):
        service.import_image(unread, ImportOptions(repository="a@sha256:" + "0" * 64))
    with pytest.raises(InvalidParameter, match="operating system is not supported"):
        service.import_image(unread, ImportOptions(platform="windows/amd64"))
    with pytest.raises(NotImplemented, match="URL"):
        service.import_image(unread, ImportOptions(source="http://example.com/x.tar"))
    assert unread.tell() == 0


def test_a_bad_layer_leaves_no_layer_behind(service: ImageService, tmp_path: Path):
    with pytest.raises(InvalidParameter, match="escapes the layer root"):
        _import(service, {"../escape": b"x"})
    assert not (tmp_path / "image" / "layers" / "escape").exists()
    assert not list((tmp_path / "image" / "layers" / "sha256").iterdir())
    assert service.image_count() == 0


def test_list_shows_placeholders_for_untagged_images_newest_first(service: ImageService):
    tagged = _import(service, {"a": b"1"}, repository="img", tag="1")
    untagged = _import(service, {"b": b"2"})
    listed = _result(service.list_images(Filters()))
    assert [item["Id"] for item in listed] == [untagged, tagged]
    assert listed[0]["RepoTags"] == ["<none>:<none>"]
    assert listed[0]["RepoDigests"] == ["<none>@<none>"]
    assert listed[1]["RepoTags"] == ["img:1"] and listed[1]["RepoDigests"] is None
    assert list(listed[1]) == ["Containers", "Created", "Id", "Labels", "ParentId",
                               "RepoDigests", "RepoTags", "SharedSize", "Size",
                               "VirtualSize"]
    assert listed[1]["Containers"] == 0 and listed[1]["SharedSize"] == -1
    assert listed[1]["Size"] == listed[1]["VirtualSize"] == 1
    newer = _result(service.list_images(Filters(), placeholders=False))
    assert newer[0]["RepoTags"] == [] and newer[1]["RepoDigests"] == []


def test_list_filters(service: ImageService):
    first = _import(service, {"a": b"1"}, repository="web/app:1",
                    changes=("LABEL tier=front",))
    second = _import(service, {"b": b"2"}, repository="db:2")
    third = _import(service, {"c": b"3"})

    def ids(filters: Filters) -> list[str]:
        return [item["Id"] for item in _result(service.list_images(filters))]

    assert ids(_filters(dangling=["true"])) == [third]
    assert ids(_filters(dangling=["false"])) == [second, first]
    assert ids(_filters(label=["tier=front"])) == [first]
    assert ids(_filters(label=["tier=back"])) == []
    assert ids(_filters(reference=["web/*"])) == [first]
    assert ids(_filters(reference=["*"])) == [second]  # "*" stops at "/"
    assert ids(_filters(reference=["db:2"])) == [second]
    assert ids(_filters(before=["db:2"])) == [first]
    assert ids(_filters(since=["web/app:1"])) == [third, second]
    with pytest.raises(NotFound, match="No such image: nope:latest"):
        _result(service.list_images(_filters(before=["nope"])))
    with pytest.raises(InvalidParameter, match=r"Invalid filter 'dangling=\[maybe\]'"):
        service.list_images(_filters(dangling=["maybe"]))
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        service.list_images(_filters(reference=["[a"]))


def test_inspect_shape(service: ImageService):
    image_id = _import(service, repository="img:1", message="hello",
                       changes=("ENV A=b", "EXPOSE 80"))
    shown = _result(service.inspect("img:1"))
    assert list(shown) == ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created",
                           "Container", "ContainerConfig", "DockerVersion", "Author",
                           "Config", "Architecture", "Os", "Size", "VirtualSize",
                           "GraphDriver", "RootFS", "Metadata"]
    assert shown["Id"] == image_id and shown["RepoTags"] == ["img:1"]
    assert shown["RepoDigests"] == [] and shown["Comment"] == "hello"
    assert shown["Config"]["Env"] == ["A=b"]
    assert shown["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert shown["ContainerConfig"]["Cmd"] is None and "ExposedPorts" not in \
        shown["ContainerConfig"]
    layer = service.store.layer_chain(service.store.get(image_id).top_layer or "")[0]
    assert shown["GraphDriver"] == {"Data": {
        "MergedDir": str(layer.path.parent / "merged"), "UpperDir": str(layer.path),
        "WorkDir": str(layer.path.parent / "work")}, "Name": "overlay2"}
    assert shown["RootFS"] == {"Type": "layers", "Layers": [layer.diff_id]}
    assert shown["Metadata"]["LastTagTime"] != views.ZERO_TIME


def test_inspect_missing_image_has_dockers_message(service: ImageService):
    with pytest.raises(NotFound) as caught:
        _result(service.inspect("nothing"))
    assert str(caught.value) == "no such image: nothing: No such image: nothing:latest"


def test_history_of_an_import(service: ImageService):
    image_id = _import(service, {"f": b"12345"}, repository="img:1")
    history = _result(service.history("img:1"))
    assert len(history) == 1
    assert history[0]["Id"] == image_id and history[0]["Tags"] == ["img:1"]
    assert history[0]["Size"] == 5 and history[0]["CreatedBy"] == ""
    assert history[0]["Comment"] == "Imported from -"


def test_history_marks_entries_without_a_local_image_missing(service: ImageService):
    layer = service.store.add_layer(_tar({"f": b"x"}))
    config = {"created": "2026-11-28T00:00:00Z", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
              "history": [{"created": "2026-11-27T00:00:00Z", "created_by": "ADD f"},
                          {"created": "2026-11-28T00:00:00Z", "created_by": "CMD",
                           "empty_layer": True}]}
    image_id = service.store.create_image(json.dumps(config).encode())
    history = _result(service.history(image_id))
    assert [(h["Id"], h["CreatedBy"], h["Size"], h["Tags"]) for h in history] == [
        (image_id, "CMD", 0, None), ("<missing>", "ADD f", 1, None)]
    assert history[1]["Created"] == 1795737600


def test_tag_and_delete(service: ImageService, events: Events):
    image_id = _import(service, repository="img:1")
    assert _result(service.tag("img:1", "docker.io/library/img", "2")) == "img:2"
    assert _result(service.delete("img:2")) == [{"Untagged": "img:2"}]
    with pytest.raises(Conflict, match="image is referenced in multiple repositories"):
        _result(service.tag("img:1", "other", "1").addCallback(
            lambda _: service.delete(image_id)))
    records = _result(service.delete(image_id, force=True))
    assert {"Deleted": image_id} in records
    assert [action for action, _, _ in events][-3:] == ["untag", "untag", "delete"]


def test_prune_deletes_dangling_images_and_reports_space(service: ImageService,
                                                          events: Events):
    kept = _import(service, {"a": b"1"}, repository="img:1")
    dangling = _import(service, {"b": b"22"})
    report = _result(service.prune(Filters()))
    assert report["ImagesDeleted"][0] == {"Deleted": dangling}
    assert report["SpaceReclaimed"] == 2
    assert events[-1] == ("prune", "", {"reclaimed": "2"})
    assert [i["Id"] for i in _result(service.list_images(Filters()))] == [kept]
    assert _result(service.prune(Filters())) == {"ImagesDeleted": None,
                                                  "SpaceReclaimed": 0}
    everything = _result(service.prune(_filters(dangling=["false"])))
    assert {"Untagged": "img:1"} in everything["ImagesDeleted"]
    assert service.image_count() == 0


def test_prune_filters(service: ImageService):
    _import(service, {"a": b"1"}, changes=("LABEL keep=yes",))
    gone = _import(service, {"b": b"2"})
    layer = service.store.get(gone).chain[0]
    report = _result(service.prune(_filters(label_=["keep"])))
    assert report["ImagesDeleted"] == [{"Deleted": gone}, {"Deleted": layer}]
    assert _result(service.prune(_filters(until=["24h"])))["ImagesDeleted"] is None
    with pytest.raises(InvalidParameter, match="more than one until filter"):
        service.prune(_filters(until=["1", "2"]))
    with pytest.raises(InvalidParameter, match="dangling=\\[maybe\\]"):
        service.prune(_filters(dangling=["maybe"]))


def test_figures_follow_every_change(service: ImageService):
    assert service.image_count() == 0 and service.image_disk_usage() == (0, [])
    first = _import(service, {"a": b"1234"}, repository="a:1")
    _result(service.tag("a:1", "b"))
    size, images = service.image_disk_usage()
    assert service.image_count() == 1 and size == 4
    assert images[0]["Id"] == first and images[0]["Containers"] == 0
    assert images[0]["SharedSize"] == 0


@pytest.mark.parametrize("pattern, reference, matched", [
    ("img*", "img:1", True), ("img", "img:1", True), ("*", "a/b:1", False),
    ("*/*", "a/b:1", True), ("im?:1", "img:1", True), ("[a-h]*", "img:1", False),
    ("[^a-h]*", "img:1", True), ("localhost:5000/*", "localhost:5000/x:1", True),
    ("img", "img@sha256:" + "a" * 64, True), ("\\*", "*", True),
])
def test_reference_patterns_follow_go_path_match(pattern: str, reference: str,
                                                  matched: bool):
    assert views.reference_matches(pattern, reference) is matched


@pytest.mark.parametrize("pattern", ["[", "[]", "[a-", "a\\", "[-]"])
def test_bad_reference_patterns(pattern: str):
    with pytest.raises(InvalidParameter, match="syntax error in pattern"):
        views.reference_matches(pattern, "x")


def test_container_config_follows_go_field_order_and_omitempty():
    shaped = views.container_config({"Cmd": ["sh"], "Labels": {"b": "1", "a": "2"},
                                     "StopTimeout": 0, "ArgsEscaped": False})
    assert shaped is not None
    assert list(shaped)[:4] == ["Hostname", "Domainname", "User", "AttachStdin"]
    assert "ArgsEscaped" not in shaped and "ExposedPorts" not in shaped
    assert shaped["StopTimeout"] == 0 and list(shaped["Labels"]) == ["a", "b"]
    assert views.container_config(None) is None

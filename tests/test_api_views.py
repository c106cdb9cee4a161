"""The version-dependent view functions on their own, on both sides of each gate."""

from __future__ import annotations

import pytest

from dockertw.api import versions
from dockertw.api.views import containers, images, system
from dockertw.errdefs import InvalidParameter


def test_gate_helpers_compare_as_moby():
    assert versions.before("1.41", "1.42") and not versions.before("1.42", "1.42")
    assert versions.since("1.42", "1.42") and versions.since("1.100", "1.42")
    assert not versions.since("1.9", "1.24")


def test_health_config_start_interval_from_1_44():
    check = {"Test": ["CMD", "true"], "StartInterval": 5}
    assert "StartInterval" not in versions.health_config(check, "1.43")
    assert versions.health_config(check, "1.44")["StartInterval"] == 5
    assert versions.health_config(None, "1.43") is None


def test_stream_content_type_from_1_42():
    assert containers.stream_content_type(False, "1.41") == containers.RAW_STREAM
    assert containers.stream_content_type(False, "1.42") == containers.MULTIPLEXED_STREAM
    assert containers.stream_content_type(True, "1.56") == containers.RAW_STREAM


def test_create_body_resources_per_version():
    body = {"HostConfig": {"KernelMemory": 1, "KernelMemoryTCP": 2, "ConsoleSize": [3, 4]}}
    old, _ = containers.create_body(body, "1.41")
    assert old["HostConfig"] == {"KernelMemory": 1, "KernelMemoryTCP": 2,
                                 "ConsoleSize": [0, 0]}
    middle, _ = containers.create_body(body, "1.42")
    assert middle["HostConfig"] == {"KernelMemoryTCP": 2, "ConsoleSize": [3, 4]}
    new, _ = containers.create_body(body, "1.52")
    assert new["HostConfig"] == {"ConsoleSize": [3, 4]}
    assert body["HostConfig"]["KernelMemory"] == 1  # the caller's body is left alone


def test_create_body_mounts_before_1_42():
    mount = {"Type": "bind", "Source": "/x", "Target": "/y",
             "BindOptions": {"CreateMountpoint": True}, "TmpfsOptions": {"SizeBytes": 1}}
    old, _ = containers.create_body({"HostConfig": {"Mounts": [mount]}}, "1.41")
    assert old["HostConfig"]["Mounts"][0] == {"Type": "bind", "Source": "/x",
                                              "Target": "/y", "BindOptions": {}}
    with pytest.raises(InvalidParameter, match="TmpfsOptions must not be specified"):
        containers.create_body({"HostConfig": {"Mounts": [mount]}}, "1.42")


def test_create_body_gateway_priority_from_1_48():
    body = {"NetworkingConfig": {"EndpointsConfig": {"a": {"GwPriority": 5}}}}
    old, _ = containers.create_body(body, "1.47")
    new, _ = containers.create_body(body, "1.48")
    assert old["NetworkingConfig"]["EndpointsConfig"]["a"]["GwPriority"] == 0
    assert new["NetworkingConfig"]["EndpointsConfig"]["a"]["GwPriority"] == 5


def test_update_body_per_version():
    body = {"PidsLimit": 5, "KernelMemory": 1, "KernelMemoryTCP": 2,
            "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 10}]}
    assert containers.update_body(body, "1.39") == {"KernelMemory": 1, "KernelMemoryTCP": 2}
    assert containers.update_body(body, "1.41") == {"PidsLimit": 5, "KernelMemory": 1,
                                                    "KernelMemoryTCP": 2}
    assert containers.update_body(body, "1.52") == {"PidsLimit": 5}
    assert containers.update_body(body, "1.55") == {
        "PidsLimit": 5, "BlkioWeightDevice": [{"Path": "/dev/sda", "Weight": 10}]}


def test_exec_console_size_needs_1_42_and_a_tty():
    body = {"Cmd": ["sh"], "ConsoleSize": [1, 2]}
    assert "ConsoleSize" not in containers.exec_body(body, "1.41")
    assert containers.exec_body(body, "1.42")["ConsoleSize"] == [1, 2]
    start = {"Tty": True, "ConsoleSize": [1, 2]}
    assert "ConsoleSize" not in containers.exec_start_body(start, "1.41")
    assert containers.exec_start_body(start, "1.42")["ConsoleSize"] == [1, 2]
    assert "ConsoleSize" not in containers.exec_start_body({"ConsoleSize": [1, 2]}, "1.42")


def test_image_created_zero_time_omitted_from_1_44():
    document = {"Created": "0001-01-01T00:00:00Z", "Size": 1}
    assert images.inspect_view(dict(document), "1.43")["Created"] == "0001-01-01T00:00:00Z"
    assert "Created" not in images.inspect_view(dict(document), "1.44")


def test_decode_platform_as_moby():
    assert str(images.decode_platform('{"os":"linux","architecture":"arm64",'
                                      '"variant":"v8"}')) == "linux/arm64/v8"
    with pytest.raises(InvalidParameter, match="failed to parse platform"):
        images.decode_platform("linux/amd64")
    with pytest.raises(InvalidParameter, match="OS and Architecture are missing"):
        images.decode_platform('{"variant":"v8"}')


def test_info_view_kernel_memory_tcp_gone():
    info = {"KernelMemory": False, "KernelMemoryTCP": False, "BridgeNfIptables": False}
    assert system.info_view(info, "1.41") == info
    assert system.info_view(info, "1.42") == {"BridgeNfIptables": False}
    assert system.info_view(info, "1.50") == {}


def test_events_content_type_negotiation():
    assert system.events_content_type("", "1.51") == "application/json"
    assert system.events_content_type("", "1.52") == system.JSON_LINES
    assert system.events_content_type("*/*", "1.52") == system.JSON_LINES
    assert system.events_content_type("application/json-seq", "1.24") == system.JSON_SEQUENCE
    assert system.events_content_type(
        "application/x-ndjson, application/jsonl;q=0.5", "1.56") == "application/x-ndjson"
    assert system.events_content_type("application/jsonl;q=0", "1.41") == "application/json"


def test_event_view_legacy_fields_until_1_51():
    message = {"status": "start", "id": "abc", "from": "bb:1", "Type": "container"}
    assert system.event_view(message, "1.51") == message
    assert system.event_view(message, "1.52") == {"Type": "container"}


def test_progress_and_error_text_until_1_52():
    from dockertw.streams.jsonmessage import format_error, format_progress
    assert b'"progress"' in format_progress("Loading layer", "a", 1, 2)
    assert b'"progress"' not in format_progress("Loading layer", "a", 1, 2, legacy=False)
    assert format_error("boom", legacy=False) == b'{"errorDetail":{"message":"boom"}}\r\n'

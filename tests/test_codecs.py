"""Small pure helpers: versions, form values, JSON bodies, filters, timestamps, probes."""

from __future__ import annotations

import pytest

from dockertw import versions
from dockertw.api import httputils
from dockertw.api.httpstatus import status_for
from dockertw.api.routers.system import parse_timestamp
from dockertw.errdefs import Conflict, InvalidParameter, NotFound, NotModified, System
from dockertw.filters import Filters
from dockertw.runtime.probe import parse_version_output


@pytest.mark.parametrize("a, b, result", [
    ("1.41", "1.41.0", 0), ("01.041", "1.41", 0), ("1.9", "1.41", -1),
    ("2.0", "1.41", 1), (".41", "1.24", -1), ("", "0", 0), ("1.x", "1.0", 0),
])
def test_versions_compare_numerically(a, b, result):
    assert versions.compare(a, b) == result


@pytest.mark.parametrize("raw, expected", [
    (None, False), (b"", False), (b"0", False), (b"No", False), (b" FALSE ", False),
    (b"none", False), (b"1", True), (b"True", True), (b"yes", True), (b"x", True),
])
def test_bool_value_is_false_only_for_dockers_words(raw, expected):
    args = {} if raw is None else {b"all": [raw]}
    assert httputils.bool_value(args, "all") is expected


def test_bool_value_or_default():
    assert httputils.bool_value_or_default({}, "stream", True) is True
    assert httputils.bool_value_or_default({b"stream": [b"0"]}, "stream", True) is False


def test_decode_json_body():
    assert httputils.decode_json_body(None, b"") is None
    assert httputils.decode_json_body("application/json", b' {"a":1}\n') == {"a": 1}
    with pytest.raises(InvalidParameter, match="invalid JSON"):
        httputils.decode_json_body("application/json", b"\xff")
    with pytest.raises(InvalidParameter, match="must be 'application/json'"):
        httputils.decode_json_body("text/plain", b"{}")


def test_encode_json_is_compact_unescaped_and_newline_terminated():
    assert httputils.encode_json({"a": "<é>"}) == '{"a":"<é>"}\n'.encode()


def test_status_table_follows_the_cause_chain():
    assert status_for(NotFound("x")) == 404
    assert status_for(NotModified()) == 304
    assert status_for(ValueError("x")) == 500
    try:
        try:
            raise Conflict("in use")
        except Conflict as cause:
            raise RuntimeError("wrapped") from cause
    except RuntimeError as error:
        assert status_for(error) == 409
    assert status_for(System("x")) == 500


def test_filters_parse_validate_and_match():
    filters = Filters.from_json('{"label":{"a=1":true,"b":true},"name":{"x":false}}')
    assert filters.get("name") == frozenset()
    assert filters.match_labels("label", {"a": "1", "b": ""})
    assert not filters.match_labels("label", {"a": "2", "b": ""})
    assert Filters.from_json("") == Filters()
    for bad in ("[1]", '{"a": 1}', "{"):
        with pytest.raises(InvalidParameter):
            Filters.from_json(bad)


@pytest.mark.parametrize("text, nanos", [
    ("", None), ("12", 12_000_000_000), ("12.5", 12_500_000_000),
    ("1795828519.000000001", 1_795_828_519_000_000_001),
])
def test_timestamps_as_docker_sends_them(text, nanos):
    assert parse_timestamp(text, "since") == nanos


@pytest.mark.parametrize("text", ["-1", "1h", "2026-01-01T00:00:00Z", "1.x"])
def test_bad_timestamps_are_400(text):
    with pytest.raises(InvalidParameter):
        parse_timestamp(text, "since")


def test_runtime_version_output():
    output = ("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n"
              "go: go1.19.8\n")
    info = parse_version_output("runc", "/usr/sbin/runc", output)
    assert (info.version, info.commit, info.found) == ("1.1.5+ds1", "1.1.5+ds1-1+deb12u1",
                                                       True)
    assert not parse_version_output("runc", "runc", "").found

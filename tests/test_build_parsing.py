"""The builder's pure parts: Dockerfile checks, patterns, build arguments, history
comments, the cache's config comparison and destinations."""

from __future__ import annotations

import pytest

from dockertw.daemon.builder import gofmt
from dockertw.daemon.builder.buildargs import BuildArgs
from dockertw.daemon.builder.cache import matches
from dockertw.daemon.builder.context import is_git_url
from dockertw.daemon.builder.copier import normalize_dest
from dockertw.daemon.builder.instructions import escape_token, parse_dockerfile
from dockertw.daemon.builder.patterns import (
    BadPattern,
    go_match,
    ignore_matcher,
    read_dockerignore,
)
from dockertw.errdefs import InvalidParameter


def test_a_dockerfile_becomes_stages_of_checked_instructions() -> None:
    parsed = parse_dockerfile("ARG B=bb\nFROM $B AS One\nRUN a \\\n  b\n"
                              "COPY --from=x --chown=1:2 a b/\nFROM scratch\nCMD [\"x\"]\n")
    assert [a.code for a in parsed.meta_args] == ["ARG B=bb"]
    first, second = parsed.stages
    assert (first.base, first.name, first.code) == ("$B", "one", "FROM $B AS One")
    run, copy = first.instructions
    assert (run.name, run.args, run.json_form) == ("run", ("a   b",), False)
    assert copy.flags == {"from": "x", "chown": "1:2"} and copy.args == ("a", "b/")
    assert second.instructions[0].json_form and second.instructions[0].args == ("x",)
    assert parse_dockerfile("# escape=`\nFROM a\n").escape == "`"
    assert escape_token("FROM a\n# escape=`\n") == "\\"


@pytest.mark.parametrize("text, message", [
    ("FROM a\nFOOBAR x\n", "dockerfile parse error line 2: unknown instruction: FOOBAR"),
    ("RUN x\n", "no build stage in current context"),
    ("FROM a\nENV\n", "dockerfile parse error line 2: ENV requires at least one argument"),
    ("FROM a\nCOPY a\n", "dockerfile parse error line 2: COPY requires at least two "
                         "arguments, but only one was provided. Destination could not be "
                         "determined"),
    ("FROM a\nCOPY --bad=1 a b\n", "dockerfile parse error line 2: Unknown flag: bad"),
    ("FROM a\nSHELL sh -c\n", "dockerfile parse error line 2: SHELL requires the arguments "
                              "to be in JSON form"),
    ("FROM a\nONBUILD ONBUILD RUN x\n", "dockerfile parse error line 2: Chaining ONBUILD via "
                                        "`ONBUILD ONBUILD` isn't allowed"),
    ("FROM a AS 1x\n", 'dockerfile parse error line 1: invalid name for build stage: "1x", '
                       "name can't start with a number or contain symbols"),
    ("FROM a\nHEALTHCHECK --interval=1ns CMD x\n",
     'dockerfile parse error line 2: Interval "interval" cannot be less than 1ms'),
    ("FROM a\nRUN <<EOF\necho hi\nEOF\n", "dockerfile parse error line 3: unknown "
                                          "instruction: ECHO"),
    ("# only a comment\n", "failed to parse Dockerfile: file with no instructions"),
    ("", "the Dockerfile (Dockerfile) cannot be empty"),
])
def test_bad_dockerfiles_get_buildkits_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as raised:
        parse_dockerfile(text)
    assert str(raised.value) == message


def test_go_match_and_dockerignore() -> None:
    assert go_match("*.txt", "a.txt") and not go_match("*", "a/b")
    assert go_match("a/[b-c]?", "a/cx") and not go_match("[^a]x", "ax")
    for bad in ("[", "a\\", "[]a]"):
        with pytest.raises(BadPattern):
            go_match(bad, "x")
    patterns = read_dockerignore("\ufeff# c\n*.log\n!keep.log\n /secret/ \n**/tmp\n\n")
    assert patterns == ["*.log", "!keep.log", "secret", "**/tmp"]
    excluded = ignore_matcher(patterns)
    assert [path for path in ("a.log", "keep.log", "secret/x", "d/e/tmp", "Dockerfile")
            if excluded(path)] == ["a.log", "secret/x", "d/e/tmp"]


def test_build_arguments_follow_their_declarations() -> None:
    args = BuildArgs({"A": "given", "HTTP_PROXY": "p", "unused": "u", "NOVALUE": None})
    args.add_meta_arg("M", "meta")
    stage = args.for_stage()
    assert stage.allowed() == {"HTTP_PROXY": "p"}
    stage.add_arg("A", "default")
    stage.add_arg("M", None)
    stage.add_arg("NOVALUE", None)
    assert stage.allowed() == {"A": "given", "M": "meta", "HTTP_PROXY": "p"}
    assert stage.filter_allowed(["A=set"]) == ["M=meta", "HTTP_PROXY=p"]
    assert not stage.is_referenced_or_not_builtin("HTTP_PROXY")
    args.merge_referenced(stage)
    assert args.unused() == ["unused"]


def test_history_comments_print_as_go_does() -> None:
    assert gofmt.quoted_list(["/bin/sh", "-c", 'say "hi"']) == '["/bin/sh" "-c" "say \\"hi\\""]'
    assert gofmt.quoted_list(None) == "[]" and gofmt.plain_list(["/v", "/w"]) == "[/v /w]"
    assert [gofmt.duration(n) for n in (0, 1_500_000, 5_000_000_000, 90_000_000_000,
                                        3_723_500_000_000)] == ["0s", "1.5ms", "5s", "1m30s",
                                                                "1h2m3.5s"]
    assert gofmt.health_comment({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                                 "Retries": 3}) == \
        '&{["CMD-SHELL" "true"] "5s" "0s" "0s" \'\\x03\'}'


def test_the_cache_compares_what_moby_compares() -> None:
    base = {"Cmd": ["/bin/sh", "-c", "x"], "Env": ["A=1"], "Labels": {"a": "b"},
            "Volumes": {"/v": {}}, "WorkingDir": "/w", "Image": "sha256:1"}
    assert matches(base, {**base, "Image": "sha256:2", "WorkingDir": "/other"})
    assert not matches(base, {**base, "Labels": {"a": "c"}})
    assert not matches(base, {**base, "Env": ["A=2"]})
    assert not matches(base, {**base, "OpenStdin": True})
    assert not matches(None, base)


def test_destinations_and_remote_kinds() -> None:
    assert normalize_dest("/w", "rel") == "/w/rel"
    assert normalize_dest("/w", "rel/") == "/w/rel/"
    assert normalize_dest("", "./") == "/"
    assert normalize_dest("/w", "/abs") == "/abs"
    assert is_git_url("https://host/repo.git#main:dir") and is_git_url("git@host:r")
    assert not is_git_url("https://host/context.tar")

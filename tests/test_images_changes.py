"""``docker import --change``: Dockerfile instructions applied to a config, and shell words."""

from __future__ import annotations

from typing import Any

import pytest

from dockertw.daemon.images.changes import apply_changes
from dockertw.daemon.images.shellwords import process_word, process_words
from dockertw.daemon.signals import parse_signal
from dockertw.daemon.timestamps import parse_go_duration
from dockertw.errdefs import InvalidParameter


@pytest.mark.parametrize("changes, expected", [
    (['CMD ["sh"]'], {"Cmd": ["sh"]}),
    (["CMD echo hi there"], {"Cmd": ["/bin/sh", "-c", "echo hi there"]}),
    (['CMD ["a", "b"] trailing'], {"Cmd": ["a", "b"]}),
    (["CMD [not json"], {"Cmd": ["/bin/sh", "-c", "[not json"]}),
    (['ENTRYPOINT ["/bin/x"]'], {"Entrypoint": ["/bin/x"], "Cmd": None}),
    (["CMD a", "ENTRYPOINT b"], {"Cmd": ["/bin/sh", "-c", "a"],
                                 "Entrypoint": ["/bin/sh", "-c", "b"]}),
    (["ENV A=b", "ENV A=c D=e"], {"Env": ["A=c", "D=e"]}),
    (["ENV A b c"], {"Env": ["A=b c"]}),
    (['ENV A="x y" B=$A', "ENV C=$A"], {"Env": ["A=x y", "B=", "C=x y"]}),
    (["ENV A=1", "ENV B=${A:-z}${Q:-q}${A:+set}"], {"Env": ["A=1", "B=1qset"]}),
    (["ENV A='$B' C=\\$D"], {"Env": ["A=$B", "C=$D"]}),
    (["WORKDIR /a", "WORKDIR b/../c"], {"WorkingDir": "/a/c"}),
    (["USER nobody"], {"User": "nobody"}),
    (['LABEL "a b"=c d="e f"', "LABEL legacy value here"],
     {"Labels": {"a b": "c", "d": "e f", "legacy": "value here"}}),
    (["EXPOSE 80 53/udp 8000-8001"],
     {"ExposedPorts": {"53/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {}}}),
    (['VOLUME ["/v"]', "VOLUME /a /b"], {"Volumes": {"/v": {}, "/a": {}, "/b": {}}}),
    (["STOPSIGNAL SIGUSR1"], {"StopSignal": "SIGUSR1"}),
    (["ONBUILD RUN echo $A"], {"OnBuild": ["RUN echo $A"]}),
    (["HEALTHCHECK NONE"], {"Healthcheck": {"Test": ["NONE"]}}),
    (["HEALTHCHECK --interval=1m30s --retries=3 CMD true"],
     {"Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 90_000_000_000,
                      "Retries": 3}}),
    (["ENV A=b \\", "  # a comment", "    C=d", "", "cmd x"],
     {"Env": ["A=b", "C=d"], "Cmd": ["/bin/sh", "-c", "x"]}),
    (["ENV A=1\nUSER $A"], {"Env": ["A=1"], "User": "1"}),
])
def test_changes_set_the_config_as_docker_does(changes: list[str], expected: dict[str, Any]):
    assert apply_changes({}, changes) == expected


def test_no_changes_leave_the_config_alone():
    assert apply_changes({"Cmd": ["x"]}, []) == {"Cmd": ["x"]}


@pytest.mark.parametrize("change, message", [
    ("RUN echo hi", "run is not a valid change command"),
    ("FROM busybox", "from is not a valid change command"),
    ("BOGUS x", "bogus is not a valid change command"),
    ("", "file with no instructions"),
    ("CMD [1, 2]", "when using JSON array syntax, arrays must be comprised of strings only"),
    ("ENV", "ENV requires at least one argument"),
    ("ENV A", "ENV must have two arguments"),
    ("ENV A=b C", 'Syntax error - can\'t find = in "C". Must be of the form: name=value'),
    ("ENV =b", "ENV names can not be blank"),
    ('ENV A="b', 'failed to process "\\"b": unexpected end of statement while looking for '
                 "matching double-quote"),
    ("WORKDIR", "WORKDIR requires exactly one argument"),
    ("STOPSIGNAL NOPE", "Invalid signal: NOPE"),
    ("EXPOSE http", "Invalid containerPort: http"),
    ("EXPOSE 80/bogus", "Invalid proto: bogus"),
    ("CMD --flag x", "Unknown flag: flag"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("HEALTHCHECK --interval=2 CMD x", 'time: invalid duration "2"'),
    ("HEALTHCHECK --retries=0 CMD x", "--retries must be at least 1 (not 0)"),
    ("HEALTHCHECK WHAT x", 'Unknown type "WHAT" in HEALTHCHECK (try CMD)'),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
])
def test_bad_changes_are_400s_with_dockers_messages(change: str, message: str):
    with pytest.raises(InvalidParameter) as caught:
        apply_changes({}, [change])
    assert str(caught.value) == message


@pytest.mark.parametrize("word, expected", [
    ("plain", "plain"), ("'single $A'", "single $A"), ('"double $A"', "double 1"),
    ("${A}x", "1x"), ("$UNSET.", "."), ("a\\ b", "a b"), ('"q\\"q"', 'q"q'),
    ("${UNSET:-d}", "d"), ("${A:+alt}", "alt"), ("$", "$"),
])
def test_shell_words(word: str, expected: str):
    assert process_word(word, {"A": "1"}) == expected


def test_shell_words_split_expansions_but_not_quotes():
    assert process_words('$P "x y"', {"P": "80 443"}) == ["80", "443", "x y"]


def test_required_variables_fail_with_the_shell_message():
    with pytest.raises(InvalidParameter, match="A: is not allowed to be unset"):
        process_word("${A?}", {})


@pytest.mark.parametrize("text, nanoseconds", [
    ("0", 0), ("30s", 30 * 10**9), ("1m30s", 90 * 10**9), ("1.5h", 5400 * 10**9),
    ("250ms", 250_000_000), ("-2us", -2000),
])
def test_go_durations(text: str, nanoseconds: int):
    assert parse_go_duration(text) == nanoseconds


@pytest.mark.parametrize("raw, number", [("9", 9), ("KILL", 9), ("sigterm", 15),
                                         ("RTMIN+1", 35), ("RTMAX", 64)])
def test_signals(raw: str, number: int):
    assert parse_signal(raw) == number


@pytest.mark.parametrize("raw", ["0", "", "SIGNOPE", " 9", "999", "-1"])
def test_bad_signals(raw: str):
    with pytest.raises(InvalidParameter, match="Invalid signal"):
        parse_signal(raw)

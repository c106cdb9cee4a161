"""``docker top`` parsing: ps output in, Docker's answer out (no process run)."""

from __future__ import annotations

import pytest

from dockertw.daemon.containers.usage.top import parse_ps_output, ps_argv
from dockertw.errdefs import System

PS_EF = b"""UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 06:00 ?        00:00:01 /sbin/init splash
root         321       1  0 06:01 ?        00:00:00 sleep 100
root         322     321  0 06:01 ?        00:00:00 sh -c while :; do :; done
"""


def test_rows_of_the_container_only_and_the_command_kept_whole():
    listed = parse_ps_output(PS_EF, {321, 322})
    assert list(listed) == ["Processes", "Titles"]  # moby's order
    assert listed["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert listed["Processes"] == [
        ["root", "321", "1", "0", "06:01", "?", "00:00:00", "sleep 100"],
        ["root", "322", "321", "0", "06:01", "?", "00:00:00", "sh -c while :; do :; done"],
    ]
    assert parse_ps_output(PS_EF, set())["Processes"] is None  # Go's nil slice


def test_thread_rows_follow_their_process():
    output = b"USER PID TID CMD\nroot 5 - sleep\nroot - 5 -\nroot 6 - other\nroot - 6 -\n"
    assert parse_ps_output(output, {5})["Processes"] == [["root", "5", "-", "sleep"],
                                                         ["root", "-", "5", "-"]]


def test_errors():
    with pytest.raises(System, match="Couldn't find PID field in ps output"):
        parse_ps_output(b"USER COMMAND\nroot sh\n", {1})
    with pytest.raises(System, match="^Unexpected pid 'x': strconv.Atoi: parsing \"x\""):
        parse_ps_output(b"PID CMD\nx sh\n", {1})


def test_ps_arguments():
    assert ps_argv("") == ["-ef"]
    assert ps_argv("-o pid,comm") == ["-o", "pid,comm"]
    assert ps_argv("-o pid=PID") == ["-o", "pid=PID"]
    assert ps_argv("aux  f") == ["aux", "", "f"]  # Go's strings.Split
    with pytest.raises(System, match='^specifying "user=PID" is not allowed$'):
        ps_argv("-o user=PID")

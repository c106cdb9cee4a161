"""Parsing ``ps`` output for ``docker top`` (no daemon)."""

from __future__ import annotations

import pytest

from dockertw.daemon.containers.top import filter_ps_output, ps_arguments
from dockertw.errdefs import System

_PS = """UID   PID  PPID  C STIME TTY  TIME     CMD
root    10     1  0 10:00 ?    00:00:00 sh -c sleep 100 & sleep 200
root    11    10  0 10:00 ?    00:00:00 sleep 100
root    99     1  0 10:00 ?    00:00:00 /usr/sbin/sshd -D
"""


def test_rows_of_the_containers_pids_with_spaces_in_the_command():
    shown = filter_ps_output(_PS, {10, 11})
    assert shown["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert shown["Processes"] == [
        ["root", "10", "1", "0", "10:00", "?", "00:00:00", "sh -c sleep 100 & sleep 200"],
        ["root", "11", "10", "0", "10:00", "?", "00:00:00", "sleep 100"]]


def test_errors_and_default_arguments():
    with pytest.raises(System, match="Couldn't find PID field in ps output"):
        filter_ps_output("COMMAND\nsh\n", {1})
    assert ps_arguments("") == ["-ef"] and ps_arguments("-o pid,comm") == ["-o", "pid,comm"]

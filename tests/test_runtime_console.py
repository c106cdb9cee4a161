"""The console socket: a pty master sent as runc sends it, time-outs, clean-up."""

from __future__ import annotations

import os
import pty
import socket

import pytest
import pytest_twisted
from twisted.internet import reactor

from dockertw.runtime.console import ConsoleError, ConsoleSocket


def _send_master(path: str) -> int:
    """Connect and send a fresh pty master the way runc does; returns the slave."""
    master, slave = pty.openpty()
    try:
        with socket.socket(socket.AF_UNIX) as sender:
            sender.connect(path)
            socket.send_fds(sender, [b"/dev/ptmx"], [master])
    finally:
        os.close(master)
    return slave


@pytest_twisted.ensureDeferred
async def test_receives_the_master_and_removes_the_socket():
    console = ConsoleSocket(reactor)
    slave = -1
    try:
        assert len(str(console.path)) < 100 and console.path.exists()
        slave = _send_master(str(console.path))
        master = await console.received(5)
        try:
            os.write(slave, b"hi\n")
            assert b"hi" in os.read(master, 100)
        finally:
            os.close(master)
    finally:
        console.close()
        if slave >= 0:
            os.close(slave)
    assert not console.path.parent.exists()


@pytest_twisted.ensureDeferred
async def test_nothing_received_times_out():
    console = ConsoleSocket(reactor)
    try:
        with pytest.raises(ConsoleError, match="no terminal received from runc in 0.2s"):
            await console.received(0.2)
    finally:
        console.close()
    assert not console.path.parent.exists()


@pytest_twisted.ensureDeferred
async def test_a_connection_closed_without_a_descriptor_is_an_error():
    console = ConsoleSocket(reactor)
    try:
        with socket.socket(socket.AF_UNIX) as sender:
            sender.connect(str(console.path))
        with pytest.raises(ConsoleError, match="without sending a terminal"):
            await console.received(5)
    finally:
        console.close()


def test_close_without_waiting_closes_an_unclaimed_master():
    console = ConsoleSocket(reactor)
    console.close()
    assert not console.path.parent.exists()

"""Container stdin written through the reactor: buffered, never blocking."""

from __future__ import annotations

import os

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from dockertw.daemon.containers.running.stdio import StdinWriter


def _drained(writer: StdinWriter) -> Deferred[None]:
    done: Deferred[None] = Deferred()
    writer.when_drained(lambda: done.callback(None))
    return done


@pytest_twisted.ensureDeferred
async def test_a_reader_that_does_not_read_never_blocks_and_eof_follows_the_data():
    read_end, write_end = os.pipe()
    writer = StdinWriter(reactor, write_end)
    try:
        writer.write(b"x" * (1 << 20))  # far more than a pipe holds
        await deferLater(reactor, 0.05, lambda: None)
        assert 0 < writer.buffered < (1 << 20)
        writer.close()
        assert writer.closed
        received = bytearray()
        os.set_blocking(read_end, False)
        while True:
            try:
                chunk = os.read(read_end, 1 << 16)
            except BlockingIOError:
                await deferLater(reactor, 0.01, lambda: None)
                continue
            if not chunk:
                break
            received += chunk
        assert len(received) == 1 << 20
    finally:
        os.close(read_end)
        writer.abort()


@pytest_twisted.ensureDeferred
async def test_a_closed_reader_drops_the_buffer():
    read_end, write_end = os.pipe()
    writer = StdinWriter(reactor, write_end)
    os.close(read_end)
    writer.write(b"data")
    await _drained(writer)  # EPIPE: dropped, closed, waiters answered
    assert writer.buffered == 0 and writer.fileno() == -1
    writer.write(b"more")  # ignored
    assert writer.buffered == 0

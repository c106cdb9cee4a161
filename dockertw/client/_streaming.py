"""Response bodies as async iterators: raw chunks, lines, JSON messages, stdcopy frames."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, cast

from twisted.internet.defer import DeferredQueue
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IResponse

from dockertw.streams.stdcopy import Chunk, StdcopyDecoder, Stream

__all__ = ["iter_body", "iter_lines", "iter_json", "iter_stdcopy", "iter_raw_output"]

_END = object()


class _QueueingBody(Protocol):
    """Hands each piece of a response body to a queue, then an end marker or the error."""

    def __init__(self, queue: DeferredQueue[Any]) -> None:
        self._queue = queue

    def dataReceived(self, data: bytes) -> None:
        self._queue.put(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(ResponseDone, PotentialDataLoss):
            self._queue.put(_END)
        else:
            self._queue.put(reason)


async def iter_body(response: IResponse) -> AsyncIterator[bytes]:
    """The body as it arrives; leaving the loop early closes the connection."""
    queue: DeferredQueue[Any] = DeferredQueue()
    receiver = _QueueingBody(queue)
    response.deliverBody(receiver)
    finished = False
    try:
        while True:
            item = await queue.get()
            if item is _END:
                finished = True
                return
            if isinstance(item, Failure):
                finished = True
                item.raiseException()
            yield item
    finally:
        if not finished and receiver.transport is not None:
            cast(IPushProducer, receiver.transport).stopProducing()


async def iter_lines(response: IResponse) -> AsyncIterator[bytes]:
    """Newline-terminated records (``\\r\\n`` or ``\\n``), without the terminator."""
    pending = b""
    async for data in iter_body(response):
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r")
    if pending.strip():
        yield pending


async def iter_json(response: IResponse) -> AsyncIterator[Any]:
    """One decoded JSON value per line (events, progress messages)."""
    async for line in iter_lines(response):
        if line.strip():
            yield json.loads(line)


async def iter_stdcopy(response: IResponse) -> AsyncIterator[Chunk]:
    """Demultiplexed stdout/stderr chunks of a non-TTY stream."""
    decoder = StdcopyDecoder()
    async for data in iter_body(response):
        for chunk in decoder.feed(data):
            yield chunk


async def iter_raw_output(response: IResponse) -> AsyncIterator[Chunk]:
    """A TTY stream: everything is stdout."""
    async for data in iter_body(response):
        yield Chunk(Stream.STDOUT, data)

"""Wiring a container's or an exec's :class:`Attachment` to a hijacked connection."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from dockertw.api.hijack import RawStream
from dockertw.daemon.containers.running.running import Attachment
from dockertw.daemon.jsonlog import LogEntry
from dockertw.streams.stdcopy import Stream, encode_frame

__all__ = ["connect_attachment"]


def connect_attachment(stream: RawStream, attachment: Attachment,
                       mux: bool) -> Deferred[None]:
    """Output to the client (stdcopy frames when ``mux``, raw for a TTY), its bytes to
    stdin, flow control both ways; the stream closes when the attachment ends.  Fires
    once the client's connection is gone."""
    done: Deferred[None] = Deferred()

    def output(entry: LogEntry) -> None:
        if mux:
            kind = Stream.STDERR if entry.stream == "stderr" else Stream.STDOUT
            stream.write(encode_frame(kind, entry.data))
        else:
            stream.write(entry.data)

    def lost(_: object) -> None:
        attachment.detach()
        if not done.called:
            done.callback(None)

    attachment.output = output
    attachment.pause, attachment.resume = stream.pause, stream.resume
    stream.on_data = attachment.write_stdin
    stream.on_eof = attachment.close_stdin
    stream.on_lost = lost
    attachment.finished.addCallback(lambda _: stream.close())
    stream.start()
    return done

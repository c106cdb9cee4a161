"""``python -m dockertw.daemon.holder --socket PATH [--listen-fd N] [--log-limit BYTES]``:
the holder process, on the listening socket its daemon bound at ``PATH`` and passed
(descriptor 3)."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket

from dockertw.daemon.holder.server import AWAY_LOG_LIMIT, Holder
from dockertw.runtime.subreaper import become_subreaper


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m dockertw.daemon.holder")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--listen-fd", type=int, default=3)
    parser.add_argument("--log-limit", type=int, default=AWAY_LOG_LIMIT)
    options = parser.parse_args()
    with contextlib.suppress(PermissionError):
        os.setsid()  # out of the daemon's session: its terminal's signals stay there
    become_subreaper()
    listener = socket.socket(fileno=options.listen_fd)
    path = options.socket
    inode = os.stat(path).st_ino
    try:
        Holder(listener, options.log_limit).run()
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == inode:
                os.unlink(path)  # still ours: no daemon has bound a new one


if __name__ == "__main__":
    main()

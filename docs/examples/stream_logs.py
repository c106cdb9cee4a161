"""Follow a container's logs, stdout and stderr apart, until it stops.

    DOCKER_HOST=unix:///run/dockertw.sock python docs/examples/stream_logs.py CONTAINER
"""

import sys

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from dockertw.client import DockerClient, Stream


async def main(reactor, container: str) -> None:
    client = DockerClient.from_env(reactor=reactor)
    try:
        async for chunk in client.container_logs(container, follow=True, timestamps=True):
            label = "err" if chunk.stream == Stream.STDERR else "out"
            sys.stdout.write(f"{label} | {chunk.data.decode(errors='replace')}")
            sys.stdout.flush()
    finally:
        await client.close()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor, sys.argv[1])))

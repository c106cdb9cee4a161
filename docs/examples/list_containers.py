"""List containers like ``docker ps -a``, with settings from the environment.

    DOCKER_HOST=unix:///run/dockertw.sock python docs/examples/list_containers.py [NAME-FILTER]
"""

import sys

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from dockertw.client import DockerClient


async def main(reactor, name_filter: str = "") -> None:
    client = DockerClient.from_env(reactor=reactor)
    try:
        filters = {"name": [name_filter]} if name_filter else None
        containers = await client.list_containers(all=True, filters=filters)
        print(f"{'CONTAINER ID':<14}{'IMAGE':<16}{'STATUS':<12}NAMES")
        for container in containers:
            names = ",".join(name.lstrip("/") for name in container["Names"])
            print(f"{container['Id'][:12]:<14}{container['Image']:<16}"
                  f"{container['Status']:<12}{names}")
    finally:
        await client.close()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor, *sys.argv[1:2])))

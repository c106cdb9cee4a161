"""Print a one-screen summary of a Docker daemon, with settings from the environment.

    DOCKER_HOST=unix:///run/dockertw.sock python docs/examples/system_summary.py

Reads DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY and the
proxy variables, negotiates the API version, then prints what /info says and streams
events for a few seconds.
"""

import time

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from dockertw.client import DockerClient


async def main(reactor, seconds: float = 2.0) -> None:
    client = DockerClient.from_env(reactor=reactor)
    try:
        info = await client.info()
        print(f"{info['Name']}: {info['OperatingSystem']}, kernel {info['KernelVersion']}, "
              f"{info['NCPU']} CPUs, API {await client.negotiate()}")
        print(f"containers {info['Containers']} (running {info['ContainersRunning']}), "
              f"images {info['Images']}")
        until = str(int(time.time() + seconds))
        async for event in client.events(since="0", until=until):
            print(f"event: {event['Type']} {event['Action']} {event['Actor']['ID'][:12]}")
    finally:
        await client.close()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor)))

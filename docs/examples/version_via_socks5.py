"""Ask a Docker daemon for its version through a SOCKS5 proxy.

    python docs/examples/version_via_socks5.py tcp://daemon.example:2375 socks5h://127.0.0.1:1080

The same works with any proxy variable: the client reads HTTP_PROXY, HTTPS_PROXY,
NO_PROXY and ALL_PROXY as Docker's Go client does.
"""

import sys

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import react

from dockertw.client import DockerClient, ProxyEnvironment


async def main(reactor, host: str, proxy: str) -> None:
    client = DockerClient(host, reactor=reactor,
                          proxies=ProxyEnvironment.from_env({"ALL_PROXY": proxy}))
    try:
        version = await client.version()
        print(f"{version['Platform']['Name']} API {version['ApiVersion']} "
              f"(negotiated {client.api_version}, route: {client.transport.route})")
    finally:
        await client.close()


if __name__ == "__main__":
    react(lambda reactor: ensureDeferred(main(reactor, sys.argv[1], sys.argv[2])))

"""A DNS server on a loopback address for tests (Twisted Names): answers one name with
one address, NXDOMAIN for every other.  The daemon under test forwards to it, so no
query of a test ever leaves the machine.

    python tests/dnsupstream.py 127.A.B.C NAME ADDRESS      # prints "ready" once up
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.names import common, dns, error, server


class _One(common.ResolverBase):
    def __init__(self, name: str, address: str) -> None:
        super().__init__()
        self._name = name.encode()
        self._address = address

    def _lookup(self, name: bytes, cls: int, type: int,  # noqa: A002 - Twisted's name
                timeout: Any) -> Deferred[Any]:
        if name.lower().rstrip(b".") != self._name:
            return fail(error.AuthoritativeDomainError(name))
        if type != dns.A:
            return succeed(([], [], []))
        record = dns.RRHeader(name=name, type=dns.A, ttl=60, auth=True,
                              payload=dns.Record_A(self._address, 60))
        return succeed(([record], [], []))


def main(interface: str, name: str, address: str) -> None:
    factory = server.DNSServerFactory(authorities=[_One(name, address)])
    reactor.listenUDP(53, dns.DNSDatagramProtocol(controller=factory),  # type: ignore[attr-defined]
                      interface=interface)
    reactor.callWhenRunning(lambda: print("ready", flush=True))  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""The network routes' answers at API 1.56 against the 1.56 spec, and a container's
inspect and list with endpoints and published ports (closed schemas: a field moby does
not have fails)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import Daemon, api_request
from tests.test_api_schema import VERSION, check, schemas  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration


def test_network_routes_and_endpoints_fit_the_spec(
        net_daemon: Daemon, check: Callable[..., None]) -> None:  # noqa: F811 - a fixture
    def call(method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, answer = api_request(str(net_daemon.socket), VERSION, method, path,
                                        body, None)
        return status, json.loads(answer) if answer.strip() else None

    status, created = call("POST", "/networks/create", {
        "Name": "schemanet", "Labels": {"a": "1"},
        "IPAM": {"Config": [{"Subnet": "198.18.99.0/24", "Gateway": "198.18.99.254"}]}})
    assert status == 201
    check("/networks/create", "post", 201, created)
    status, listed = call("GET", "/networks")
    check("/networks", "get", 200, listed)
    assert {n["Name"] for n in listed} == {"bridge", "host", "none", "schemanet"}
    status, body = call("POST", "/containers/create?name=schemac", {
        "Image": "bb:1", "Cmd": ["sleep", "60"], "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {"NetworkMode": "schemanet",
                       "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]}},
        "NetworkingConfig": {"EndpointsConfig": {"schemanet": {"Aliases": ["web"]}}}})
    assert status == 201, body
    assert call("POST", "/containers/schemac/start")[0] == 204
    status, inspected = call("GET", "/networks/schemanet")
    assert status == 200
    # NetworkInspect is allOf [Network, its own fields]: checked part by part
    check("#Network", "", 0, {k: v for k, v in inspected.items()
                              if k not in ("Containers", "Status")})
    check("#NetworkStatus", "", 0, inspected["Status"])
    for member in inspected["Containers"].values():
        check("#EndpointResource", "", 0, member)
    assert list(inspected["Containers"]) == [body["Id"]]
    assert inspected["Status"]["IPAM"]["Subnets"]["198.18.99.0/24"]["IPsInUse"] >= 4
    status, container = call("GET", "/containers/schemac/json")
    check("/containers/{id}/json", "get", 200, container)
    endpoint = container["NetworkSettings"]["Networks"]["schemanet"]
    assert endpoint["Aliases"] == ["web"] and "web" in endpoint["DNSNames"]
    assert container["NetworkSettings"]["Ports"]["80/tcp"][0]["HostIp"] == "127.0.0.1"
    status, summaries = call("GET", "/containers/json")
    check("/containers/json", "get", 200, summaries)
    assert summaries[0]["Ports"][0]["PrivatePort"] == 80
    assert call("POST", "/networks/bridge/connect", {"Container": "schemac"})[0] == 200
    assert call("POST", "/networks/bridge/disconnect", {"Container": "schemac"})[0] == 200
    assert call("DELETE", "/containers/schemac?force=1")[0] == 204
    status, pruned = call("POST", "/networks/prune")
    check("/networks/prune", "post", 200, pruned)
    assert pruned["NetworksDeleted"] == ["schemanet"]

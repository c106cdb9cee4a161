"""The CNI adapter: chains as libcni runs them (recorded by fake plugins), and the real
``loopback`` and ``bridge``/``host-local`` plugins in a namespace the test pins."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred

from dockertw.runtime import netns
from dockertw.runtime.cni import Cni, CniError, NetworkConfigList, RuntimeConf
from dockertw.runtime.processes import blocking_runner, reactor_runner

_FAKE = """#!/bin/sh
# Records what it was given; answers a result naming itself, or the error it is told.
input=$(cat)
echo "$CNI_COMMAND $(basename "$0") $input" >> "{log}"
if [ -n "$FAIL" ] || echo "$input" | grep -q '"fail": *true'; then
    echo '{{"code": 7, "msg": "it broke", "details": "on purpose"}}'; exit 1
fi
if [ "$CNI_COMMAND" = ADD ]; then
    echo '{{"cniVersion": "1.0.0", "interfaces": [{{"name": "'$(basename "$0")'"}}]}}'
fi
"""


def _done(deferred: Deferred[Any]) -> Any:
    """The result of a Deferred a blocking runner has fired already."""
    outcome: list[Any] = []
    deferred.addBoth(outcome.append)
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]


@pytest.fixture
def fake_plugins(tmp_path: Path) -> tuple[Cni, Path]:
    log = tmp_path / "calls"
    for name in ("first", "second"):
        plugin = tmp_path / name
        plugin.write_text(_FAKE.format(log=log))
        plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    return Cni(blocking_runner, [tmp_path]), log


def _calls(log: Path) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for line in log.read_text().splitlines():
        command, plugin, document = line.split(" ", 2)
        found.append((command, plugin, json.loads(document)))
    return found


def test_a_chain_passes_results_and_capabilities_as_libcni(fake_plugins: tuple[Cni, Path]):
    cni, log = fake_plugins
    chain = NetworkConfigList("net", ({"type": "first", "capabilities": {"ips": True}},
                                      {"type": "second"}))
    runtime = RuntimeConf("c1", "/nowhere", "eth0", {"ips": ["10.0.0.5/24"]})
    result = _done(ensureDeferred(cni.add(chain, runtime)))
    assert result["interfaces"] == [{"name": "second"}]
    first, second = _calls(log)
    assert (first[0], first[1], first[2]["name"]) == ("ADD", "first", "net")
    assert first[2]["runtimeConfig"] == {"ips": ["10.0.0.5/24"]}
    assert "prevResult" not in first[2] and "runtimeConfig" not in second[2]
    assert second[2]["prevResult"]["interfaces"] == [{"name": "first"}]
    log.unlink()
    _done(ensureDeferred(cni.delete(chain, runtime, result)))
    assert [(c, p) for c, p, _ in _calls(log)] == [("DEL", "second"), ("DEL", "first")]
    assert _calls(log)[0][2]["prevResult"] == result


def test_plugin_errors_name_the_plugin_and_delete_goes_on(fake_plugins: tuple[Cni, Path]):
    cni, log = fake_plugins
    chain = NetworkConfigList("net", ({"type": "first"}, {"type": "second", "fail": True}))
    runtime = RuntimeConf("c1", "/nowhere", "eth0")
    with pytest.raises(CniError, match='plugin type="second" failed \\(add\\): it broke: '
                                       "on purpose"):
        _done(ensureDeferred(cni.add(chain, runtime)))
    log.unlink()
    with pytest.raises(CniError, match="second"):
        _done(ensureDeferred(cni.delete(chain, runtime, None)))
    assert [c[1] for c in _calls(log)] == ["second", "first"]
    with pytest.raises(CniError, match='failed to find plugin "missing"'):
        _done(ensureDeferred(cni.add(NetworkConfigList("x", ({"type": "missing"},)),
                                     runtime)))


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ns"
    netns.create(path)
    try:
        yield path
    finally:
        netns.remove(path)
    assert not path.exists()


@pytest_twisted.ensureDeferred
async def test_real_plugins_attach_check_and_detach(namespace: Path, tmp_path: Path):
    bridge = f"dtwc{secrets.token_hex(4)}"
    leases = tmp_path / "ipam"
    cni = Cni(reactor_runner(reactor))
    chain = NetworkConfigList("cnitest", ({
        "type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
        "ipam": {"type": "host-local", "dataDir": str(leases),
                 "ranges": [[{"subnet": "198.18.250.0/24"}]]}},))
    runtime = RuntimeConf("c1", str(namespace), "eth0")
    try:
        result = await cni.add(chain, runtime)
        assert result["ips"][0]["address"] == "198.18.250.2/24"
        await cni.check(chain, runtime, result)
        inside = subprocess.run(["nsenter", f"--net={namespace}", "ip", "-o", "addr"],
                                capture_output=True, text=True, check=True).stdout
        assert "198.18.250.2/24" in inside and " lo " in inside
        await cni.delete(chain, runtime, result)
        assert not (leases / "cnitest" / "198.18.250.2").exists()
        inside = subprocess.run(["nsenter", f"--net={namespace}", "ip", "-o", "link"],
                                capture_output=True, text=True, check=True).stdout
        assert "eth0" not in inside
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False, capture_output=True)

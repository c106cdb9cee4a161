"""CNI plugins (``bridge``, ``host-local``, ``loopback``, ``tuning``...) run as child
processes of the reactor, as the CNI specification's runtime side (libcni) runs them.

A :class:`NetworkConfigList` is a chain of plugins: ``ADD`` runs them in order, each
getting the previous one's result as ``prevResult``; ``DEL`` runs them in reverse with
the ``ADD`` result, and ``CHECK`` in order with it.  Keys of :attr:`RuntimeConf.runtime`
reach the plugins that declare them in ``capabilities`` (``runtimeConfig``), as libcni
does.  The caller keeps the list and the ``ADD`` result, so that ``DEL`` later (even in
a daemon restarted after a crash) is exactly the one the specification asks for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dockertw import errdefs
from dockertw.runtime import processes

__all__ = ["Cni", "CniError", "NetworkConfigList", "RuntimeConf", "PLUGIN_DIRS",
           "CNI_VERSION"]

CNI_VERSION = "1.0.0"
PLUGIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))


class CniError(errdefs.System):
    """A plugin failed; the message is the plugin's own (``msg``, then ``details``)."""

    def __init__(self, plugin: str, command: str, message: str, code: int = 0) -> None:
        super().__init__(f"plugin type=\"{plugin}\" failed ({command.lower()}): {message}")
        self.plugin = plugin
        self.code = code
        self.plugin_message = message


@attrs.frozen
class NetworkConfigList:
    """A CNI network configuration list: its name and its chain of plugin configs."""

    name: str
    plugins: tuple[Mapping[str, Any], ...]
    cni_version: str = CNI_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"cniVersion": self.cni_version, "name": self.name,
                "plugins": [dict(plugin) for plugin in self.plugins]}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> NetworkConfigList:
        return cls(name=str(value["name"]), cni_version=str(value["cniVersion"]),
                   plugins=tuple(dict(plugin) for plugin in value["plugins"]))


@attrs.frozen
class RuntimeConf:
    """Which container, namespace and interface a call is about."""

    container_id: str
    netns: str
    ifname: str
    runtime: Mapping[str, Any] = attrs.field(factory=dict)  # capability arguments
    args: tuple[tuple[str, str], ...] = ()  # CNI_ARGS

    def to_json(self) -> dict[str, Any]:
        return {"ContainerID": self.container_id, "NetNS": self.netns,
                "IfName": self.ifname, "Runtime": dict(self.runtime),
                "Args": [list(pair) for pair in self.args]}

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> RuntimeConf:
        return cls(container_id=str(value["ContainerID"]), netns=str(value["NetNS"]),
                   ifname=str(value["IfName"]), runtime=dict(value.get("Runtime") or {}),
                   args=tuple((str(k), str(v)) for k, v in value.get("Args") or ()))


def _plugin_input(config: NetworkConfigList, plugin: Mapping[str, Any],
                  runtime: RuntimeConf, previous: Mapping[str, Any] | None) -> bytes:
    """What a plugin reads on stdin: its config with the list's name and version, the
    previous result and the runtime arguments of its capabilities."""
    document = {**plugin, "cniVersion": config.cni_version, "name": config.name}
    capabilities = plugin.get("capabilities") or {}
    wanted = {key: value for key, value in runtime.runtime.items()
              if capabilities.get(key)}
    if wanted:
        document["runtimeConfig"] = wanted
    if previous is not None:
        document["prevResult"] = dict(previous)
    return json.dumps(document).encode()


def _failure(plugin: str, command: str, finished: processes.Finished) -> CniError:
    try:
        error = json.loads(finished.stdout)
        message = str(error.get("msg") or "")
        if error.get("details"):
            message = f"{message}: {error['details']}" if message else str(error["details"])
        return CniError(plugin, command, message or finished.error_text(),
                        int(error.get("code") or 0))
    except (ValueError, AttributeError, TypeError):
        return CniError(plugin, command, finished.error_text() or f"exit {finished.code}")


class Cni:
    """Runs CNI plugins found in ``plugin_dirs`` with ``runner`` (through the reactor,
    or blocking at daemon start-up)."""

    def __init__(self, runner: processes.Runner,
                 plugin_dirs: Sequence[Path] = PLUGIN_DIRS) -> None:
        self._runner = runner
        self._dirs = tuple(plugin_dirs)

    def find(self, plugin: str) -> Path:
        """The plugin's executable (``CniError`` when no directory has it)."""
        for directory in self._dirs:
            candidate = directory / plugin
            if os.access(candidate, os.X_OK):
                return candidate
        raise CniError(plugin, "find", f"failed to find plugin \"{plugin}\" in path "
                       f"{[str(d) for d in self._dirs]}")

    def _environment(self, command: str, runtime: RuntimeConf) -> dict[str, str]:
        extra = {"CNI_COMMAND": command, "CNI_CONTAINERID": runtime.container_id,
                 "CNI_NETNS": runtime.netns, "CNI_IFNAME": runtime.ifname,
                 "CNI_PATH": os.pathsep.join(str(d) for d in self._dirs)}
        if runtime.args:
            extra["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in runtime.args)
        return processes.plain_environment(extra)

    async def _invoke(self, command: str, config: NetworkConfigList,
                      plugin: Mapping[str, Any], runtime: RuntimeConf,
                      previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
        kind = str(plugin.get("type") or "")
        executable = self.find(kind)
        finished = await self._runner(
            [str(executable)], _plugin_input(config, plugin, runtime, previous),
            self._environment(command, runtime))
        if finished.code != 0:
            raise _failure(kind, command, finished)
        if command != "ADD":
            return None
        try:
            result: dict[str, Any] = json.loads(finished.stdout)
        except ValueError:
            raise CniError(kind, command, "the plugin answered no JSON result") from None
        return result

    async def add(self, config: NetworkConfigList, runtime: RuntimeConf) -> dict[str, Any]:
        """``ADD`` of every plugin in order; answers the last result."""
        result: dict[str, Any] | None = None
        for plugin in config.plugins:
            result = await self._invoke("ADD", config, plugin, runtime, result)
        return result or {"cniVersion": config.cni_version}

    async def delete(self, config: NetworkConfigList, runtime: RuntimeConf,
                     result: Mapping[str, Any] | None) -> None:
        """``DEL`` of every plugin in reverse order; all run, the first error is raised."""
        first: CniError | None = None
        for plugin in reversed(config.plugins):
            try:
                await self._invoke("DEL", config, plugin, runtime, result)
            except CniError as error:
                first = first or error
        if first is not None:
            raise first

    async def check(self, config: NetworkConfigList, runtime: RuntimeConf,
                    result: Mapping[str, Any]) -> None:
        """``CHECK`` of every plugin in order against the ``ADD`` result."""
        for plugin in config.plugins:
            await self._invoke("CHECK", config, plugin, runtime, result)

"""Typed calls, grouped by resource, mixed into :class:`~dockertw.client.docker.DockerClient`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from dockertw.client._base import Requests
from dockertw.client._streaming import iter_body, iter_json, iter_raw_output, iter_stdcopy
from dockertw.client.hijack import HijackedStream
from dockertw.streams.stdcopy import Chunk

__all__ = ["ContainerCalls", "ExecCalls", "ImageCalls", "VolumeCalls", "NetworkCalls",
           "ProgressError"]

Filters = Mapping[str, str | Sequence[str]]


class ProgressError(Exception):
    """A JSON message stream (import, load, pull) ended with an in-band error."""


def _name(value: str) -> str:
    """A container, image, volume or network name as a path segment (slashes kept)."""
    return quote(value, safe="/:@")


async def _messages(stream: AsyncIterator[Any]) -> list[dict[str, Any]]:
    messages = []
    async for message in stream:
        if isinstance(message, dict) and message.get("errorDetail"):
            raise ProgressError(message["errorDetail"].get("message", message.get("error")))
        messages.append(message)
    return messages


class _Calls:
    _requests: Requests


class ContainerCalls(_Calls):
    async def list_containers(self, all: bool = False, limit: int | None = None,
                              size: bool = False,
                              filters: Filters | None = None) -> list[dict[str, Any]]:
        params = {"all": all, "limit": limit, "size": size, "filters": filters}
        result: list[dict[str, Any]] = await self._requests.json(
            "GET", "/containers/json", params=params)
        return result

    async def create_container(self, config: Mapping[str, Any], name: str | None = None,
                               platform: str | None = None) -> dict[str, Any]:
        """``config`` is Docker's create body (Image, Cmd, HostConfig, ...)."""
        result: dict[str, Any] = await self._requests.json(
            "POST", "/containers/create", params={"name": name, "platform": platform},
            json_body=dict(config))
        return result

    async def inspect_container(self, container: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json(
            "GET", f"/containers/{_name(container)}/json")
        return result

    async def start_container(self, container: str) -> None:
        await self._requests.call("POST", f"/containers/{_name(container)}/start")

    async def stop_container(self, container: str, timeout: int | None = None) -> None:
        await self._requests.call("POST", f"/containers/{_name(container)}/stop",
                                  params={"t": timeout})

    async def restart_container(self, container: str, timeout: int | None = None) -> None:
        await self._requests.call("POST", f"/containers/{_name(container)}/restart",
                                  params={"t": timeout})

    async def kill_container(self, container: str, signal: str | int | None = None) -> None:
        await self._requests.call("POST", f"/containers/{_name(container)}/kill",
                                  params={"signal": signal})

    async def wait_container(self, container: str,
                             condition: str | None = None) -> dict[str, Any]:
        """Blocks until the condition (``not-running``, ``next-exit``, ``removed``) holds."""
        result: dict[str, Any] = await self._requests.json(
            "POST", f"/containers/{_name(container)}/wait",
            params={"condition": condition}, stream=True)
        return result

    async def remove_container(self, container: str, force: bool = False,
                               volumes: bool = False) -> None:
        await self._requests.call("DELETE", f"/containers/{_name(container)}",
                                  params={"force": force, "v": volumes})

    async def container_logs(self, container: str, *, stdout: bool = True,
                             stderr: bool = True, follow: bool = False,
                             since: str | None = None, until: str | None = None,
                             timestamps: bool = False, tail: str = "all",
                             tty: bool | None = None) -> AsyncIterator[Chunk]:
        """Log chunks, demultiplexed unless the container has a TTY (looked up if not given)."""
        if tty is None:
            tty = bool((await self.inspect_container(container))["Config"].get("Tty"))
        response = await self._requests.call(
            "GET", f"/containers/{_name(container)}/logs",
            params={"stdout": stdout, "stderr": stderr, "follow": follow, "since": since,
                    "until": until, "timestamps": timestamps, "tail": tail}, stream=True)
        chunks = iter_raw_output(response) if tty else iter_stdcopy(response)
        async for chunk in chunks:
            yield chunk

    async def attach_container(self, container: str, *, stdin: bool = False,
                               stdout: bool = True, stderr: bool = True, stream: bool = True,
                               logs: bool = False, tty: bool | None = None) -> HijackedStream:
        """A hijacked connection to the container's stdio."""
        if tty is None:
            tty = bool((await self.inspect_container(container))["Config"].get("Tty"))
        params = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "stream": stream,
                  "logs": logs}
        return await self._requests.hijack(f"/containers/{_name(container)}/attach",
                                           params, None, tty)


class ExecCalls(_Calls):
    async def create_exec(self, container: str, cmd: Sequence[str], *,
                          attach_stdin: bool = False, tty: bool = False,
                          env: Sequence[str] | None = None, user: str = "",
                          workdir: str = "", privileged: bool = False) -> str:
        body = {"User": user, "Privileged": privileged, "Tty": tty,
                "AttachStdin": attach_stdin, "AttachStdout": True, "AttachStderr": True,
                "Detach": False, "DetachKeys": "", "Env": list(env) if env else None,
                "WorkingDir": workdir, "Cmd": list(cmd)}
        result = await self._requests.json("POST", f"/containers/{_name(container)}/exec",
                                           json_body=body)
        return str(result["Id"])

    async def start_exec(self, exec_id: str, *, tty: bool = False) -> HijackedStream:
        return await self._requests.hijack(f"/exec/{exec_id}/start", {},
                                           {"Detach": False, "Tty": tty}, tty)

    async def start_exec_detached(self, exec_id: str) -> None:
        await self._requests.call("POST", f"/exec/{exec_id}/start",
                                  json_body={"Detach": True, "Tty": False})

    async def inspect_exec(self, exec_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json("GET", f"/exec/{exec_id}/json")
        return result


class ImageCalls(_Calls):
    async def list_images(self, all: bool = False,
                          filters: Filters | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._requests.json(
            "GET", "/images/json", params={"all": all, "filters": filters})
        return result

    async def inspect_image(self, image: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json(
            "GET", f"/images/{_name(image)}/json")
        return result

    async def import_image(self, source: Any, repo: str = "", tag: str = "",
                           message: str = "", changes: Sequence[str] = ()) -> str:
        """Import a root filesystem tar (bytes or a file object, streamed); returns the ID."""
        response = await self._requests.call(
            "POST", "/images/create",
            params={"fromSrc": "-", "repo": repo or None, "tag": tag or None,
                    "message": message or None, "changes": list(changes) or None},
            data=source, headers={"Content-Type": "text/plain"}, stream=True)
        messages = await _messages(iter_json(response))
        return str(messages[-1]["status"]) if messages else ""

    async def load_images(self, source: Any, quiet: bool = True) -> list[dict[str, Any]]:
        """Load a ``docker save`` archive or OCI layout tar; returns the daemon's messages.

        ``quiet`` is always sent: the daemon's default is quiet, as in the Go client."""
        response = await self._requests.call(
            "POST", "/images/load", params={"quiet": "1" if quiet else "0"}, data=source,
            headers={"Content-Type": "application/x-tar"}, stream=True)
        return await _messages(iter_json(response))

    async def save_images(self, names: Sequence[str]) -> AsyncIterator[bytes]:
        """The ``docker save`` tar, piece by piece as it arrives."""
        response = await self._requests.call("GET", "/images/get",
                                             params={"names": list(names)}, stream=True)
        async for data in iter_body(response):
            yield data

    async def tag_image(self, image: str, repo: str, tag: str = "") -> None:
        await self._requests.call("POST", f"/images/{_name(image)}/tag",
                                  params={"repo": repo, "tag": tag or None})

    async def remove_image(self, image: str, force: bool = False,
                           noprune: bool = False) -> list[dict[str, str]]:
        result: list[dict[str, str]] = await self._requests.json(
            "DELETE", f"/images/{_name(image)}", params={"force": force, "noprune": noprune})
        return result


class VolumeCalls(_Calls):
    async def list_volumes(self, filters: Filters | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json(
            "GET", "/volumes", params={"filters": filters})
        return result

    async def create_volume(self, name: str = "", driver: str = "local",
                            labels: Mapping[str, str] | None = None,
                            driver_opts: Mapping[str, str] | None = None) -> dict[str, Any]:
        body = {"Name": name, "Driver": driver, "Labels": dict(labels or {}),
                "DriverOpts": dict(driver_opts or {})}
        result: dict[str, Any] = await self._requests.json("POST", "/volumes/create",
                                                           json_body=body)
        return result

    async def inspect_volume(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json("GET", f"/volumes/{_name(name)}")
        return result

    async def remove_volume(self, name: str, force: bool = False) -> None:
        await self._requests.call("DELETE", f"/volumes/{_name(name)}",
                                  params={"force": force})


class NetworkCalls(_Calls):
    async def list_networks(self, filters: Filters | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._requests.json(
            "GET", "/networks", params={"filters": filters})
        return result

    async def create_network(self, name: str, driver: str = "bridge",
                             options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {"Name": name, "Driver": driver, "CheckDuplicate": True, **(options or {})}
        result: dict[str, Any] = await self._requests.json("POST", "/networks/create",
                                                           json_body=body)
        return result

    async def inspect_network(self, network: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._requests.json(
            "GET", f"/networks/{_name(network)}")
        return result

    async def remove_network(self, network: str) -> None:
        await self._requests.call("DELETE", f"/networks/{_name(network)}")

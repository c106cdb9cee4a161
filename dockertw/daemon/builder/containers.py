"""A build's containers: made, run, written into and committed through the container
service, exactly as ``docker run`` and ``docker commit`` use it (moby's
``containerManager`` and ``CommitBuildStep``)."""

from __future__ import annotations

from typing import Any, TypeVar

from twisted.internet.defer import Deferred

from dockertw.daemon.builder.options import BuildOutput
from dockertw.daemon.containers.copying import WriteWork
from dockertw.daemon.containers.service import ContainerService, CreateOptions
from dockertw.daemon.jsonlog import LogEntry
from dockertw.errdefs import DockerError, System

__all__ = ["BuildContainers", "StepFailed", "BuildCancelled"]

_T = TypeVar("_T")
_RED, _RESET = "\x1b[91m", "\x1b[0m"


class StepFailed(System):
    """A ``RUN`` whose command exited non-zero; ``code`` is its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class BuildCancelled(System):
    def __init__(self) -> None:
        super().__init__("Build cancelled")


class BuildContainers:
    """The containers of one build: every one made is removed at the end of its step
    (``rm``, after a success; ``forcerm``, always), a running one killed when the build
    is cancelled."""

    def __init__(self, service: ContainerService, output: BuildOutput,
                 host_config: dict[str, Any]) -> None:
        self._service = service
        self._output = output
        self._host_config = host_config
        self._made: list[str] = []
        self._running: str | None = None
        self.cancelled = False

    async def create(self, config: dict[str, Any], announce: bool = True) -> str:
        """A container of ``config``; ``announce`` says ``Running in``."""
        body = {**config, "HostConfig": dict(self._host_config)}
        created = await self._service.create(body, CreateOptions())
        container_id = str(created["Id"])
        self._made.append(container_id)
        for warning in created.get("Warnings") or ():
            self._output.stream(f" ---> [Warning] {warning}\n")
        if announce:
            self._output.stream(f" ---> Running in {container_id[:12]}\n")
        return container_id

    def _relay(self, entry: LogEntry) -> None:
        text = entry.data.decode("utf-8", "replace")
        self._output.stream(f"{_RED}{text}{_RESET}" if entry.stream == "stderr" else text)

    async def run(self, container_id: str, command: list[str]) -> None:
        """Start the container with its output relayed, and wait for its end;
        :class:`StepFailed` when it exits non-zero."""
        runs = self._service.runs
        attachment, _ = await runs.attach(container_id, stdin=False, stdout=True,
                                          stderr=True)
        attachment.output = self._relay
        ready: Deferred[None] = Deferred()
        finished = runs.wait(container_id, "next-exit", lambda: ready.callback(None))
        await ready
        self._running = container_id
        try:
            if not self.cancelled:
                await runs.start(container_id)
            if self.cancelled:  # while it was being started
                self._kill(container_id)
            result = await finished
        finally:
            self._running = None
        if self.cancelled:
            await self.remove(container_id)
            raise BuildCancelled()
        self._check(result, command)

    @staticmethod
    def _check(result: dict[str, Any], command: list[str]) -> None:
        code = int(result.get("StatusCode") or 0)
        if code == 0:
            return
        message = f"The command '{' '.join(command)}' returned a non-zero code: {code}"
        error = (result.get("Error") or {}).get("Message")
        raise StepFailed(f"{message}: {error}" if error else message, code)

    def cancel(self) -> None:
        """Stop the build: the running container is killed (and removed once dead)."""
        self.cancelled = True
        if self._running is not None:
            self._kill(self._running)

    def _kill(self, container_id: str) -> None:
        self._service.runs.kill(container_id).addErrback(lambda failure: None)

    def write_into(self, container_id: str, work: WriteWork[_T]) -> Deferred[_T]:
        return self._service.copies.write_into(container_id, work)

    def commit(self, container_id: str, config: dict[str, Any],
               container_config: dict[str, Any], author: str) -> Deferred[str]:
        return self._service.snapshots.commit_build_step(container_id, config,
                                                         container_config, author)

    async def remove(self, container_id: str) -> None:
        """Remove one container now, saying nothing (a ``COPY``'s, a cancelled run)."""
        await self._service.remove(container_id, force=True, volumes=True)
        if container_id in self._made:
            self._made.remove(container_id)

    async def remove_all(self) -> None:
        """``Removing intermediate container`` for each container made so far."""
        for container_id in list(self._made):
            try:
                await self._service.remove(container_id, force=True, volumes=True)
            except DockerError as error:
                self._output.stream(f"Error removing intermediate container "
                                    f"{container_id[:12]}: {error}\n")
                return
            self._made.remove(container_id)
            self._output.stream(f"Removing intermediate container {container_id[:12]}\n")

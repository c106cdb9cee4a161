"""The namespaces a starting container makes, shares with the host, or joins.

``--pid container:X`` and ``--ipc container:X`` join the namespaces of X's init, which
must run (409 otherwise, as moby); joining X's IPC needs X to be ``shareable`` (or on
the host's IPC) and binds X's ``/dev/shm`` (a tmpfs the daemon mounts for a shareable
container, see :func:`~.bundle.shm_of`).  Reads the store: call from a worker
thread.
"""

from __future__ import annotations

from dockertw.daemon.containers.records.modes import shared_with
from dockertw.daemon.containers.records.record import Container
from dockertw.daemon.containers.records.store import ContainerStore
from dockertw.daemon.containers.running import bundle as bundles
from dockertw.errdefs import Conflict, DockerError, InvalidParameter
from dockertw.runtime.spec import Namespaces

__all__ = ["namespaces_of"]

_SHAREABLE = frozenset({"shareable", "host"})


def _donor(store: ContainerStore, name: str, what: str) -> Container:
    """The running container whose ``what`` namespace is joined."""
    try:
        donor = store.get(name)
    except DockerError as error:
        raise InvalidParameter(f"failed to join {what} namespace: {error}") from None
    if donor.state.restarting:
        raise Conflict(f"failed to join {what} namespace: Container {name} is restarting, "
                       "wait until the container is running")
    if not donor.state.running or not donor.state.pid:
        raise Conflict(f"failed to join {what} namespace: Container {name} is not running")
    return donor


def _pid_namespace(store: ContainerStore, mode: str) -> str:
    name = shared_with(mode)
    if name:
        return f"/proc/{_donor(store, name, 'PID').state.pid}/ns/pid"
    return "host" if mode == "host" else ""


def _shm(store: ContainerStore, container: Container) -> str:
    """Where the ``/dev/shm`` of a container that shares its IPC is (``""``: its own)."""
    mode = str(container.host_config.get("IpcMode") or "")
    if mode == "shareable":
        return str(bundles.shm_of(store.root / container.id))
    if mode == "host":
        return "/dev/shm"
    donor = shared_with(mode)
    if donor:
        return str(bundles.shm_of(store.root / donor))
    return "none" if mode == "none" else ""


def _ipc_namespace(store: ContainerStore, container: Container) -> tuple[str, str]:
    """The IPC namespace and the ``/dev/shm`` (see :class:`Namespaces`)."""
    mode = str(container.host_config.get("IpcMode") or "")
    name = shared_with(mode)
    if name:
        donor = _donor(store, name, "IPC")
        donor_mode = str(donor.host_config.get("IpcMode") or "")
        if donor_mode not in _SHAREABLE and shared_with(donor_mode) is None:
            raise InvalidParameter(f"failed to join IPC namespace: container {name}: "
                                   "non-shareable IPC (hint: use IpcMode:shareable for the "
                                   "donor container)")
        return f"/proc/{donor.state.pid}/ns/ipc", _shm(store, donor)
    return "host" if mode == "host" else "", _shm(store, container)


def namespaces_of(container: Container, store: ContainerStore) -> Namespaces:
    """The container's namespaces as its HostConfig asks (errors as moby's)."""
    host = container.host_config
    ipc, shm = _ipc_namespace(store, container)
    return Namespaces(pid=_pid_namespace(store, str(host.get("PidMode") or "")),
                      ipc=ipc, shm=shm,
                      uts="host" if host.get("UTSMode") == "host" else "",
                      cgroup_private=host.get("CgroupnsMode") == "private")

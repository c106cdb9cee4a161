"""Load for crash tests, and what must hold of a daemon's state root after a crash.

:class:`Load` runs 20 clients against a daemon: container loops (create, start, exec,
copy in, stop or kill, remove; on the default bridge, some with a published port),
imports, volume loops and the docker CLI.  Any answer
of 500 or more is kept (a request that dies with the daemon is not an answer).
:func:`problems` lists what is not whole in a restarted daemon's state: an object it
shows but cannot give, or a mount, cgroup, runc state, directory, temporary file,
network namespace, address lease or DNAT rule that nothing it shows owns.
"""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dockertw.daemon.images.layers import chain_ids
from dockertw.daemon.networks.firewall import chain_prefix
from dockertw.daemon.networks.ipam import leases
from dockertw.runtime.mounts import mounts_under
from tests.archives import file, tar
from tests.support import Daemon, command_lines, docker, unix_get

VERSION = "1.44"
_ACTIVE = ("running", "paused", "restarting")


class Gone(Exception):
    """The daemon did not answer: it was killed (the client's loop ends)."""


def call(daemon: Daemon, method: str, path: str, body: Any = None, raw: bytes | None = None,
         errors: list[str] | None = None, timeout_ok: bool = False) -> tuple[int, Any]:
    """One API request: status and decoded body; :class:`Gone` when no answer came.
    Answers of 500 and more are added to ``errors``."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    headers = {"Content-Type": "application/x-tar" if raw is not None else
               "application/json"}
    try:
        status, _, answer = unix_get(daemon.socket or "", f"/v{VERSION}{path}", method,
                                     data, headers)
    except (OSError, http.client.HTTPException) as error:
        raise Gone(str(error)) from None
    if status >= 500 and errors is not None:
        errors.append(f"{method} {path}: {status} {answer[:300]!r}")
    try:
        return status, json.loads(answer) if answer else None
    except ValueError:
        return status, answer


class Load:
    """Twenty clients, each a loop of one kind of work, until :meth:`stop`."""

    def __init__(self, daemon: Daemon, image_tar: bytes, rng: random.Random,
                 round_id: int) -> None:
        self.daemon = daemon
        self.image_tar = image_tar
        self.errors: list[str] = []
        self.answered = 0  # requests the daemon answered
        self._stop = threading.Event()
        self._seeds = [rng.randrange(1 << 30) for _ in range(20)]
        self._round = round_id
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        kinds: list[Callable[[int, random.Random], None]] = (
            [self._containers] * 12 + [self._imports] * 3 + [self._volumes] * 3
            + [self._cli] * 2)
        for index, kind in enumerate(kinds):
            thread = threading.Thread(target=self._client, daemon=True,
                                      args=(kind, index, random.Random(self._seeds[index])))
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _client(self, kind: Callable[[int, random.Random], None], index: int,
                rng: random.Random) -> None:
        try:
            kind(index, rng)
        except Gone:
            return
        except Exception as error:  # a shape the client did not expect
            self.errors.append(f"client {index}: {error!r}")

    def _call(self, method: str, path: str, body: Any = None,
              raw: bytes | None = None) -> tuple[int, Any]:
        answer = call(self.daemon, method, path, body, raw, self.errors)
        self.answered += 1
        return answer

    def _name(self, index: int, serial: int) -> str:
        return f"r{self._round}-c{index}-{serial}"

    def _containers(self, index: int, rng: random.Random) -> None:
        serial = 0
        while not self._stop.is_set():
            serial += 1
            status, made = self._call("POST", f"/containers/create?name="
                                      f"{self._name(index, serial)}", {
                                          "Image": "bb:1", "Cmd": ["sh", "-c", "sleep 5"],
                                          "Tty": index % 6 == 0,
                                          "OpenStdin": index % 4 == 1,
                                          "ExposedPorts": {"80/tcp": {}},
                                          "HostConfig": {"PublishAllPorts": index % 3 == 0}})
            if status != 201:
                continue
            container = made["Id"]
            self._call("POST", f"/containers/{container}/start")
            if rng.random() < 0.5:
                status, created = self._call("POST", f"/containers/{container}/exec",
                                             {"Cmd": ["true"]})
                if status == 201:
                    self._call("POST", f"/exec/{created['Id']}/start", {"Detach": True})
            if rng.random() < 0.3:
                self._call("PUT", f"/containers/{container}/archive?path=/tmp",
                           raw=tar([file("hello.txt", b"hello\n")]))
            if rng.random() < 0.5:
                self._call("POST", f"/containers/{container}/stop?t=0")
                self._call("DELETE", f"/containers/{container}")
            elif rng.random() < 0.8:
                self._call("DELETE", f"/containers/{container}?force=1")

    def _imports(self, index: int, rng: random.Random) -> None:
        serial = 0
        while not self._stop.is_set():
            serial += 1
            tag = f"imp{index}:{self._round}-{serial}"
            repo, version = tag.split(":")
            status, _ = self._call("POST", f"/images/create?fromSrc=-&repo={repo}"
                                   f"&tag={version}", raw=self.image_tar)
            if status == 200 and rng.random() < 0.7:
                self._call("DELETE", f"/images/{tag}")

    def _volumes(self, index: int, rng: random.Random) -> None:
        serial = 0
        while not self._stop.is_set():
            serial += 1
            volume = f"v{self._round}-{index}-{serial}"
            self._call("POST", "/volumes/create", {"Name": volume})
            status, made = self._call("POST", "/containers/create", {
                "Image": "bb:1", "Cmd": ["sh", "-c", "echo x > /data/f; echo y > /anon/g"],
                "Volumes": {"/anon": {}},
                "HostConfig": {"Binds": [f"{volume}:/data"]}})
            if status == 201:
                container = made["Id"]
                self._call("POST", f"/containers/{container}/start")
                self._call("POST", f"/containers/{container}/wait")
                self._call("DELETE", f"/containers/{container}?v=1")
            if rng.random() < 0.8:
                self._call("DELETE", f"/volumes/{volume}")

    def _cli(self, index: int, rng: random.Random) -> None:
        while not self._stop.is_set():
            args = (["run", "--rm", "bb:1", "true"] if index % 2 else
                    ["run", "-d", "-t", "--rm", "bb:1", "sleep", "1"])
            try:
                docker("-H", f"unix://{self.daemon.socket}", *args, timeout=20)
            except subprocess.TimeoutExpired:
                self.errors.append(f"docker {' '.join(args)} hung")
                return


# --------------------------------------------------------------------------- checks


def settled(daemon: Daemon, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The containers once a restarted daemon is done with its start (``--rm``
    containers found stopped are removed then): two listings alike, 0.2 s apart."""
    deadline = time.monotonic() + timeout
    previous: Any = None
    while True:
        status, listed = call(daemon, "GET", "/containers/json?all=1")
        assert status == 200, listed
        shown = sorted((c["Id"], c["State"]) for c in listed)
        if shown == previous or time.monotonic() > deadline:
            return list(listed)
        previous = shown
        time.sleep(0.2)


def problems(daemon: Daemon, live: bool) -> list[str]:
    """What is not whole, or has no owner, in the state of ``daemon`` (which runs)."""
    found: list[str] = []
    listed = settled(daemon)
    ids = {c["Id"] for c in listed}
    active = {c["Id"] for c in listed if c["State"] in _ACTIVE}
    for container in ids:
        status, shown = call(daemon, "GET", f"/containers/{container}/json")
        if status != 200:
            found.append(f"container {container}: inspect {status} {shown}")
    root = daemon.root
    found += _containers_on_disk(root, ids)
    found += _mounts(root, active)
    found += [f"cgroup of {name} without a running container"
              for name in {p.name for p in daemon.container_cgroups()} - active]
    runc = daemon.exec_root / "runc"
    found += [f"runc state of {entry.name} without a running container"
              for entry in (runc.iterdir() if runc.is_dir() else []) if entry.name not in active]
    found += _temporary_files(root)
    found += _network_stacks(daemon, active)
    found += _images(daemon)
    found += _volumes_on_disk(daemon)
    if live:
        found += _holder_children(daemon, active)
    else:  # one left by a daemon with --live-restore is stopped
        found += [f"holder {pid} without --live-restore" for pid in daemon.holders()]
    return found


def runc_leftover_report(daemon: Daemon, found: list[str]) -> str:
    """What there is to know of each container with runc state but no running record
    (for the failure message): its state files, runc's answer, processes naming it,
    and the daemon's log lines about it."""
    runc = daemon.exec_root / "runc"
    lines = []
    for problem in found:
        if not problem.startswith("runc state of "):
            continue
        container_id = problem.split()[3]
        state = runc / container_id
        files = sorted(f"{entry.name}:{entry.stat().st_size}" for entry in state.iterdir())
        shown = subprocess.run(["runc", "--root", str(runc), "state", container_id],
                               capture_output=True, text=True, check=False, timeout=30)
        lines += [f"{container_id}: files {files}; runc state rc {shown.returncode}: "
                  f"{(shown.stdout + shown.stderr)[:400]!r}",
                  *(f"  process {line}" for line in _processes_naming(container_id)),
                  *[f"  log {line[:300]}" for line in daemon.output().splitlines()
                    if container_id[:12] in line][-20:]]
    return "\n".join(lines)


def _processes_naming(word: str) -> list[str]:
    """``pid: command line`` of each process whose command line holds ``word``."""
    lines = ((pid, b" ".join(command).decode(errors="replace"))
             for pid, command in command_lines())
    return [f"{pid}: {line[:200]}" for pid, line in lines if word in line]


def _containers_on_disk(root: Path, ids: set[str]) -> list[str]:
    found = []
    for directory in sorted((root / "containers").iterdir()):
        if directory.name not in ids:
            found.append(f"container directory {directory.name} without a container")
            continue
        for name in ("config.v2.json", "hostconfig.json"):
            if not (directory / name).is_file():
                found.append(f"container {directory.name} without {name}")
    return found


def _mounts(root: Path, active: set[str]) -> list[str]:
    found = []
    for target in mounts_under(root):
        parts = target.relative_to(root).parts
        owned = (len(parts) == 3 and parts[0] == "containers" and parts[1] in active
                 and parts[2] in ("rootfs", "shm"))
        pinned = len(parts) == 2 and parts[0] == "netns" and parts[1] in active
        if not (owned or pinned):
            found.append(f"mount {target} without a running container")
    return found


def _walk(directory: Path, skip: Callable[[Path], bool]) -> Iterator[Path]:
    for entry in directory.iterdir() if directory.is_dir() else []:
        if skip(entry):
            continue
        yield entry
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry, skip)


def _temporary_files(root: Path) -> list[str]:
    """Temporary files and staging directories' contents left by a daemon that died."""
    def content(path: Path) -> bool:  # what containers, images and volumes hold
        return path.name in ("rootfs", "upper", "work", "diff", "_data", "empty-lower")

    found = [f"temporary file {path}" for path in _walk(root, content)
             if ".tmp-" in path.name]
    staging = root / "image" / "layers" / "tmp"
    found += [f"staged {path}" for path in _walk(staging, lambda p: False)]
    scratch = root / "tmp"  # cp/ and export/ and the like, each emptied at start
    found += [f"scratch {path}" for path in _walk(scratch, lambda p: False)
              if len(path.relative_to(scratch).parts) > 1]
    return found


def _network_stacks(daemon: Daemon, active: set[str]) -> list[str]:
    """Namespaces, stack records, address leases and DNAT rules of containers that do
    not run."""
    found = [f"network namespace {path.name} without a running container"
             for path in sorted((daemon.root / "netns").glob("*")) if path.name not in active]
    found += [f"network record of {path.parent.name} without a running container"
              for path in (daemon.root / "containers").glob("*/network.json")
              if path.parent.name not in active]
    for network in sorted((daemon.root / "network" / "ipam").glob("*")):
        found += [f"lease {address} of {owner} without a running container"
                  for address, owner in leases(network.parent, network.name).items()
                  if owner not in active]
    rules = subprocess.run(["iptables", "-t", "nat", "-S", f"{chain_prefix(daemon.root)}-DNAT"],
                           capture_output=True, text=True, check=False).stdout
    running = {container[:12] for container in active}
    found += [f"DNAT rule without a running container: {line}" for line in rules.splitlines()
              if "--comment" in line and line.split("--comment ")[1].split()[0] not in running]
    return found


def _images(daemon: Daemon) -> list[str]:
    found = []
    status, images = call(daemon, "GET", "/images/json?all=1")
    assert status == 200, images
    known = {image["Id"].split(":", 1)[1] for image in images}
    layers: set[str] = set()
    for image in images:
        status, shown = call(daemon, "GET", f"/images/{image['Id']}/json")
        if status != 200:
            found.append(f"image {image['Id']}: inspect {status}")
            continue
        layers.update(chain.split(":", 1)[1]
                      for chain in chain_ids(shown["RootFS"].get("Layers") or []))
    store = daemon.root / "image"
    configs = store / "imagedb" / "sha256"
    found += [f"image config {path.name} without an image"
              for path in (configs.iterdir() if configs.is_dir() else [])
              if path.name not in known]
    on_disk = store / "layers" / "sha256"
    found += [f"layer {path.name} without an image"
              for path in (on_disk.iterdir() if on_disk.is_dir() else [])
              if path.name not in layers]
    return found


def _volumes_on_disk(daemon: Daemon) -> list[str]:
    found = []
    status, listed = call(daemon, "GET", "/volumes")
    assert status == 200, listed
    names = {volume["Name"] for volume in listed["Volumes"] or []}
    for name in names:
        status, shown = call(daemon, "GET", f"/volumes/{name}")
        if status != 200 or not Path(shown["Mountpoint"]).is_dir():
            found.append(f"volume {name}: {status} {shown}")
    directory = daemon.root / "volumes"
    found += [f"volume directory {path.name} without a volume"
              for path in (directory.iterdir() if directory.is_dir() else [])
              if path.is_dir() and path.name not in names]
    return found


def _holder_children(daemon: Daemon, active: set[str]) -> list[str]:
    """Every process the holder has belongs to a running container."""
    found = []
    for holder in daemon.holders():
        children = Path(f"/proc/{holder}/task/{holder}/children").read_text().split()
        for pid in children:
            try:
                cgroups = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            if not any(container in cgroups for container in active):
                found.append(f"holder child {pid} outside every running container: "
                             f"{cgroups.splitlines()[:1]}")
    return found


def remove_everything(daemon: Daemon, keep_image: str = "bb:1") -> list[str]:
    """Remove every container, volume and image but ``keep_image`` through the API;
    answers what could not be removed."""
    failed: list[str] = []
    status, listed = call(daemon, "GET", "/containers/json?all=1")

    def remove(path: str) -> None:
        status, answer = call(daemon, "DELETE", path)
        if status not in (200, 204, 404):
            failed.append(f"DELETE {path}: {status} {answer}")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(remove, [f"/containers/{c['Id']}?force=1&v=1" for c in listed]))
        status, volumes = call(daemon, "GET", "/volumes")
        list(pool.map(remove, [f"/volumes/{v['Name']}" for v in volumes["Volumes"] or []]))
        status, images = call(daemon, "GET", "/images/json")
        doomed = [tag for image in images for tag in image["RepoTags"] or []
                  if tag != keep_image]
        list(pool.map(remove, [f"/images/{tag}" for tag in doomed]))
    return failed

"""docker push, pull and login with the real CLI against real registries on loopback."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockertw.daemon.host import go_arch
from tests import archives
from tests.certs import Authority
from tests.cli import import_image, inspect, ok
from tests.registries import SKOPEO, Registry, SlowRelay, needs_registry
from tests.support import Daemon, docker, unix_get

pytestmark = needs_registry
ARCH = go_arch(platform.machine())
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OTHER_ARCH = "arm64" if ARCH != "arm64" else "amd64"


def failed(daemon: Daemon, *args: str, env: dict[str, str] | None = None) -> str:
    done = docker("-H", f"unix://{daemon.socket}", *args, env_extra=env)
    assert done.returncode != 0, done.stdout
    return done.stderr + done.stdout


def with_config(daemon: Daemon, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return docker("-H", f"unix://{daemon.socket}", *args,
                  env_extra={"DOCKER_CONFIG": str(config)})


def layer(name: str, data: bytes) -> bytes:
    return archives.tar([archives.file(name, data)])


def load(daemon: Daemon, workdir: Path, tag: str, layers: list[bytes], **config: Any) -> str:
    """``docker load`` an image of ``layers`` tagged ``tag``; its ID."""
    raw = archives.config([archives.sha256(x) for x in layers], **config)
    path = workdir / f"load-{archives.sha256(raw)[7:19]}.tar"
    path.write_bytes(archives.docker_archive([(raw, layers, [tag])]))
    ok(daemon, "load", "-i", str(path))
    return archives.sha256(raw)


def leftovers(daemon: Daemon) -> tuple[list[str], list[str]]:
    """Layers on disk and what staging still holds."""
    layers = daemon.root / "image" / "layers"
    return (sorted(p.name for p in (layers / "sha256").iterdir()),
            sorted(p.name for p in (layers / "tmp").iterdir()))


# -- plain HTTP -------------------------------------------------------------------------


def test_push_rmi_pull_gives_the_same_image(daemon: Daemon, busybox_tar: Path,
                                            start_registry: Callable[..., Registry]):
    registry = start_registry()
    name = f"{registry.address}/bb:1"
    image_id = import_image(daemon, busybox_tar, name)
    pushed = ok(daemon, "push", name)
    assert f"The push refers to repository [{registry.address}/bb]" in pushed
    assert "Pushed" in pushed and "1: digest: sha256:" in pushed, pushed
    digest = pushed.split("digest: ")[1].split()[0]
    assert "Layer already exists" in ok(daemon, "push", name)
    ok(daemon, "rmi", name)
    pulled = ok(daemon, "pull", name)
    assert "1: Pulling from bb" in pulled and "Pull complete" in pulled, pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {name}" in pulled
    shown = inspect(daemon, name)
    assert shown["Id"] == image_id
    assert shown["RepoDigests"] == [f"{registry.address}/bb@{digest}"]
    assert f"Status: Image is up to date for {name}" in ok(daemon, "pull", name)
    listed = ok(daemon, "images", "--digests", "--format", "{{.Repository}} {{.Digest}}")
    assert f"{registry.address}/bb {digest}" in listed
    assert "Traceback" not in daemon.output()


def test_second_repository_mounts_and_pull_by_digest(daemon: Daemon, busybox_tar: Path,
                                                     start_registry: Callable[..., Registry]):
    registry = start_registry()
    first, second = f"{registry.address}/bb:1", f"{registry.address}/other:2"
    image_id = import_image(daemon, busybox_tar, first)
    ok(daemon, "push", first)
    ok(daemon, "tag", first, second)
    pushed = ok(daemon, "push", second)
    assert "Mounted from bb" in pushed, pushed
    digest = pushed.split("digest: ")[1].split()[0]
    ok(daemon, "rmi", first, second)
    by_digest = f"{registry.address}/other@{digest}"
    pulled = ok(daemon, "pull", by_digest)
    assert f"{digest}: Pulling from other" in pulled, pulled
    shown = inspect(daemon, by_digest)
    assert shown["Id"] == image_id and shown["RepoTags"] == []
    assert shown["RepoDigests"] == [by_digest]


def test_already_exists_and_all_tags(daemon: Daemon, workdir: Path,
                                     start_registry: Callable[..., Registry]):
    registry = start_registry()
    base, upper = layer("base.txt", b"base\n"), layer("upper.txt", b"upper\n")
    repo = f"{registry.address}/two"
    one_id = load(daemon, workdir, f"{repo}:one", [base])
    two_id = load(daemon, workdir, f"{repo}:two", [base, upper])
    pushed = ok(daemon, "push", "--all-tags", repo)
    assert "one: digest:" in pushed and "two: digest:" in pushed, pushed
    ok(daemon, "rmi", f"{repo}:two")
    pulled = ok(daemon, "pull", f"{repo}:two")
    assert "Already exists" in pulled and "Pull complete" in pulled, pulled
    ok(daemon, "rmi", f"{repo}:one", f"{repo}:two")
    pulled = ok(daemon, "pull", "--all-tags", repo)
    assert "one: Pulling from two" in pulled and "two: Pulling from two" in pulled, pulled
    assert inspect(daemon, f"{repo}:one")["Id"] == one_id
    assert inspect(daemon, f"{repo}:two")["Id"] == two_id


def test_missing_images_and_repositories(daemon: Daemon, busybox_tar: Path,
                                         start_registry: Callable[..., Registry]):
    registry = start_registry()
    name = f"{registry.address}/bb:1"
    assert (f"manifest for {registry.address}/bb:nope not found: manifest unknown: "
            "manifest unknown") in failed(daemon, "pull", f"{registry.address}/bb:nope")
    assert "An image does not exist locally with the tag" in failed(daemon, "push", name)
    status, _, body = unix_get(str(daemon.socket),
                               f"/images/create?fromImage={registry.address}/bb&tag=x",
                               method="POST")
    assert status == 404 and b"manifest unknown" in body
    import_image(daemon, busybox_tar, name)
    ok(daemon, "push", name)
    status, _, body = unix_get(str(daemon.socket), f"/distribution/{name}/json")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["Descriptor"]["mediaType"] == \
        "application/vnd.docker.distribution.manifest.v2+json"
    assert answer["Platforms"] == [{"architecture": ARCH, "os": "linux"}]
    assert "Traceback" not in daemon.output()


def test_push_of_a_layer_that_cannot_be_rebuilt_says_why(
        daemon: Daemon, busybox_tar: Path, start_registry: Callable[..., Registry]):
    registry = start_registry()
    name = f"{registry.address}/old:1"
    import_image(daemon, busybox_tar, name)
    for record in (daemon.root / "image" / "layers" / "sha256").glob("*/tar-split.gz"):
        record.unlink()  # as a layer stored before dockertw kept these records
    message = failed(daemon, "push", name)
    assert "its original tar cannot be rebuilt" in message, message
    assert unix_get(str(daemon.socket), "/_ping")[0] == 200
    assert "Traceback" not in daemon.output()


def test_registry_options_in_info(start_daemon: Callable[..., Daemon]):
    daemon = start_daemon("--registry-mirror", "http://127.0.0.1:1", "--insecure-registry",
                          "10.99.0.0/16", "--insecure-registry", "myregistry:5000",
                          "--max-concurrent-downloads", "2", "--hub-registry",
                          "http://127.0.0.1:2")
    shown = json.loads(ok(daemon, "info", "--format", "{{json .RegistryConfig}}"))
    assert shown["Mirrors"] == ["http://127.0.0.1:1/"]
    assert "10.99.0.0/16" in shown["InsecureRegistryCIDRs"]
    assert "127.0.0.0/8" in shown["InsecureRegistryCIDRs"]
    assert shown["IndexConfigs"]["docker.io"]["Mirrors"] == ["http://127.0.0.1:1/"]
    assert shown["IndexConfigs"]["myregistry:5000"]["Secure"] is False


# -- TLS and authentication -------------------------------------------------------------


def test_tls_with_the_ca_in_the_certs_directory(start_daemon: Callable[..., Daemon],
                                                workdir: Path, busybox_tar: Path,
                                                start_registry: Callable[..., Registry]):
    authority = Authority(workdir)
    served = authority.issue("registry", "registry", server=True,
                             hosts=("127.0.0.1", "0.0.0.0"))
    client = authority.issue("client", "client", server=False)
    registry = start_registry(tls=served, client_ca=authority.files.cert)
    certs = workdir / "certs.d"
    host = certs / f"0.0.0.0:{registry.port}"
    daemon = start_daemon("--certs-dir", str(certs))
    name = f"0.0.0.0:{registry.port}/secure:1"
    image_id = import_image(daemon, busybox_tar, name)
    assert "x509: certificate signed by unknown authority" in failed(daemon, "push", name)
    host.mkdir(parents=True)
    (host / "ca.crt").write_bytes(authority.files.cert.read_bytes())
    failed(daemon, "push", name)  # the registry wants a client certificate
    (host / "client.cert").write_bytes(client.cert.read_bytes())
    (host / "client.key").write_bytes(client.key.read_bytes())
    assert "1: digest:" in ok(daemon, "push", name)
    ok(daemon, "rmi", name)
    assert "Pull complete" in ok(daemon, "pull", name)
    # Named insecure, the same registry is reached without its CA (still with the
    # client certificate it asks for).
    (host / "ca.crt").unlink()
    insecure = start_daemon("--certs-dir", str(certs), "--insecure-registry",
                            f"0.0.0.0:{registry.port}")
    assert "Pull complete" in ok(insecure, "pull", name)
    assert inspect(insecure, name)["Id"] == image_id


def test_login_with_basic_auth_over_tls(daemon: Daemon, workdir: Path, busybox_tar: Path,
                                        start_registry: Callable[..., Registry]):
    authority = Authority(workdir)
    registry = start_registry(tls=authority.issue("registry", "registry", server=True,
                                                  hosts=("127.0.0.1",)),
                              htpasswd={"alice": "s3cret"})
    config = workdir / "cli-config"
    config.mkdir()
    name = f"{registry.address}/private:1"
    wrong = with_config(daemon, config, "login", "-u", "alice", "-p", "wrong",
                        registry.address)
    assert wrong.returncode != 0
    assert (f"login attempt to https://{registry.address}/v2/ failed with status: "
            "401 Unauthorized") in wrong.stderr
    import_image(daemon, busybox_tar, name)
    assert "authentication required" in failed(daemon, "push", name)
    right = with_config(daemon, config, "login", "-u", "alice", "-p", "s3cret",
                        registry.address)
    assert right.returncode == 0 and "Login Succeeded" in right.stdout, right.stderr
    assert with_config(daemon, config, "push", name).returncode == 0
    ok(daemon, "rmi", name)
    assert "pull access denied" in failed(daemon, "pull", name)
    pulled = with_config(daemon, config, "pull", name)
    assert pulled.returncode == 0, pulled.stderr
    assert with_config(daemon, config, "logout", registry.address).returncode == 0


def test_token_auth_with_scopes(daemon: Daemon, workdir: Path, busybox_tar: Path,
                                start_registry: Callable[..., Any]):
    tokens = start_registry.token_server({"bob": "hunter2"}, anonymous_pull=("public",))
    registry = start_registry(token=tokens)
    config = workdir / "cli-config"
    config.mkdir()
    wrong = with_config(daemon, config, "login", "-u", "bob", "-p", "nope", registry.address)
    assert wrong.returncode != 0 and "incorrect username or password" in wrong.stderr
    right = with_config(daemon, config, "login", "-u", "bob", "-p", "hunter2",
                        registry.address)
    assert right.returncode == 0 and "Login Succeeded" in right.stdout, right.stderr
    stored = json.loads((config / "config.json").read_text())["auths"][registry.address]
    assert stored.get("identitytoken"), stored  # the token server's refresh token
    name, public = f"{registry.address}/team/app:1", f"{registry.address}/public:1"
    import_image(daemon, busybox_tar, name)
    ok(daemon, "tag", name, public)
    assert with_config(daemon, config, "push", name).returncode == 0
    assert with_config(daemon, config, "push", public).returncode == 0
    assert "repository:team/app:pull,push" in tokens.scopes
    ok(daemon, "rmi", name, public)
    assert "pull access denied for " + f"{registry.address}/team/app" in failed(
        daemon, "pull", name)
    assert "Pull complete" in ok(daemon, "pull", public)  # anonymous pull allowed there
    assert "repository:public:pull" in tokens.scopes
    assert with_config(daemon, config, "pull", name).returncode == 0


# -- platforms, mirrors --------------------------------------------------------------------


def _oci_index_archive(path: Path) -> dict[str, str]:
    """An OCI layout (as a tar) with an index of two images, one per architecture;
    the config digest (= image ID) of each."""
    entries: list[archives.Entry] = [archives.file("oci-layout",
                                                    b'{"imageLayoutVersion":"1.0.0"}')]
    manifests, ids = [], {}
    for arch in (ARCH, OTHER_ARCH):
        content = layer("arch.txt", arch.encode())
        config = archives.config([archives.sha256(content)], architecture=arch)
        ids[arch] = archives.sha256(config)
        manifest = {"schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": archives._blob(entries, config,
                                             "application/vnd.oci.image.config.v1+json"),
                    "layers": [archives._blob(entries, content,
                                              "application/vnd.oci.image.layer.v1.tar")]}
        descriptor = archives._blob(entries, json.dumps(manifest).encode(),
                                    "application/vnd.oci.image.manifest.v1+json")
        descriptor["platform"] = {"os": "linux", "architecture": arch}
        manifests.append(descriptor)
    kind = "application/vnd.oci.image.index.v1+json"
    inner = archives._blob(entries, json.dumps(
        {"schemaVersion": 2, "mediaType": kind, "manifests": manifests}).encode(), kind)
    inner["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
    index = {"schemaVersion": 2, "mediaType": kind, "manifests": [inner]}
    entries.append(archives.file("index.json", json.dumps(index).encode()))
    path.write_bytes(archives.tar(entries))
    return ids


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_oci_index_platform_selection(daemon: Daemon, workdir: Path,
                                      start_registry: Callable[..., Registry]):
    registry = start_registry()
    ids = _oci_index_archive(workdir / "index.tar")
    name = f"{registry.address}/multi:1"
    copied = subprocess.run(
        [SKOPEO or "skopeo", "--insecure-policy", "copy", "--all", "--dest-tls-verify=false",
         f"oci-archive:{workdir / 'index.tar'}:multi", f"docker://{name}"],
        capture_output=True, text=True, timeout=120, check=False)
    assert copied.returncode == 0, copied.stderr
    ok(daemon, "pull", name)
    assert inspect(daemon, name)["Id"] == ids[ARCH]
    assert inspect(daemon, name)["Architecture"] == ARCH
    ok(daemon, "pull", "--platform", f"linux/{OTHER_ARCH}", name)
    assert inspect(daemon, name)["Id"] == ids[OTHER_ARCH]
    status, _, body = unix_get(str(daemon.socket), f"/distribution/{name}/json")
    platforms = json.loads(body)["Platforms"]
    assert {p["architecture"] for p in platforms} == {ARCH, OTHER_ARCH}


def test_registry_mirror_serves_docker_hub_names(start_daemon: Callable[..., Daemon],
                                                 busybox_tar: Path,
                                                 start_registry: Callable[..., Registry]):
    mirror, upstream = start_registry(), start_registry()
    # Docker Hub's registry is replaced by another loopback registry: nothing can
    # leave the machine, and the fallback after the mirror is seen to happen.
    daemon = start_daemon("--registry-mirror", f"http://{mirror.address}",
                          "--hub-registry", f"http://{upstream.address}")
    in_mirror = f"{mirror.address}/library/busybox:latest"
    in_upstream = f"{upstream.address}/library/onlyupstream:latest"
    mirrored = import_image(daemon, busybox_tar, in_mirror)
    ok(daemon, "tag", in_mirror, in_upstream)
    ok(daemon, "push", in_mirror)
    ok(daemon, "push", in_upstream)
    ok(daemon, "rmi", in_mirror, in_upstream)
    pulled = ok(daemon, "pull", "busybox")
    assert "latest: Pulling from library/busybox" in pulled, pulled
    assert inspect(daemon, "busybox")["Id"] == mirrored
    assert inspect(daemon, "busybox")["RepoTags"] == ["busybox:latest"]
    status, _ = upstream.get("/v2/library/busybox/manifests/latest")
    assert status == 404  # so the mirror served it
    pulled = ok(daemon, "pull", "onlyupstream")  # the mirror misses: the upstream has it
    assert "Downloaded newer image for onlyupstream:latest" in pulled, pulled
    assert "not found" in failed(daemon, "pull", "nowhere")


# -- verification and crash safety ----------------------------------------------------------


def test_corrupted_blob_is_refused(daemon: Daemon, busybox_tar: Path,
                                   start_registry: Callable[..., Registry]):
    registry = start_registry()
    name = f"{registry.address}/bb:1"
    import_image(daemon, busybox_tar, name)
    pushed = ok(daemon, "push", name)
    ok(daemon, "rmi", name)
    manifest_digest = pushed.split("digest: ")[1].split()[0]
    _, manifest = registry.get(f"/v2/bb/manifests/{manifest_digest}")
    blob = json.loads(manifest)["layers"][0]["digest"]
    path = registry.blob_path(blob)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    message = failed(daemon, "pull", name)
    assert f"filesystem layer verification failed for digest {blob}" in message
    assert ok(daemon, "images", "-q") == ""
    assert leftovers(daemon) == ([], [])


def _start_pull(daemon: Daemon, name: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["docker", "-H", f"unix://{daemon.socket}", "pull", name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "DOCKER_CONFIG": str(daemon.workdir)})


def _wait_for_bytes(relay: SlowRelay, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while relay.relayed < count:
        assert time.monotonic() < deadline, "the pull did not start"
        time.sleep(0.05)


def pushed_away(daemon: Daemon, workdir: Path, registry: Registry, layers: list[bytes]
                ) -> str:
    """``REGISTRY/big:1`` of ``layers`` pushed, then removed here; its image ID."""
    image_id = load(daemon, workdir, f"{registry.address}/big:1", layers)
    ok(daemon, "push", f"{registry.address}/big:1")
    ok(daemon, "rmi", f"{registry.address}/big:1")
    assert leftovers(daemon) == ([], [])
    return image_id


def test_kill_during_pull_leaves_nothing(daemon: Daemon, workdir: Path,
                                         start_registry: Callable[..., Registry],
                                         start_relay: Callable[..., SlowRelay]):
    registry = start_registry()
    pushed_away(daemon, workdir, registry, [layer("a", b"a"),
                                            layer("big.bin", os.urandom(6 << 20))])
    relay = start_relay(registry.port, bytes_per_second=1 << 20)
    name = f"127.0.0.1:{relay.port}/big:1"
    pulling = _start_pull(daemon, name)
    _wait_for_bytes(relay, 2 << 20)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=10)
    pulling.wait(timeout=10)
    assert list((daemon.root / "image" / "layers" / "tmp").iterdir())  # it was mid-way
    daemon.start()
    assert ok(daemon, "images", "-qa") == ""
    assert leftovers(daemon) == ([], [])
    relay.bytes_per_second = 0
    assert "Pull complete" in ok(daemon, "pull", name)


def test_client_gone_mid_pull_leaves_nothing(daemon: Daemon, workdir: Path,
                                             start_registry: Callable[..., Registry],
                                             start_relay: Callable[..., SlowRelay]):
    registry = start_registry()
    pushed_away(daemon, workdir, registry, [layer("big.bin", os.urandom(4 << 20))])
    relay = start_relay(registry.port, bytes_per_second=1 << 20)
    pulling = _start_pull(daemon, f"127.0.0.1:{relay.port}/big:1")
    _wait_for_bytes(relay, 1 << 20)
    pulling.send_signal(signal.SIGKILL)
    pulling.wait(timeout=10)
    deadline = time.monotonic() + 20
    while leftovers(daemon) != ([], []) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(daemon) == ([], [])
    assert ok(daemon, "images", "-qa") == ""
    assert "Traceback" not in daemon.output()


def test_a_download_cut_short_is_retried(daemon: Daemon, workdir: Path,
                                         start_registry: Callable[..., Registry],
                                         start_relay: Callable[..., SlowRelay]):
    registry = start_registry()
    image_id = pushed_away(daemon, workdir, registry, [layer("big.bin", os.urandom(3 << 20))])
    relay = start_relay(registry.port, cut_after=1 << 20)
    name = f"127.0.0.1:{relay.port}/big:1"
    pulled = ok(daemon, "pull", name)
    assert relay.cuts == 1 and "Retrying in 1 second" in pulled, pulled
    assert inspect(daemon, name)["Id"] == image_id
    assert leftovers(daemon)[1] == []


def test_run_pulls_a_missing_image(running_daemon: Daemon,
                                   start_registry: Callable[..., Registry]):
    registry = start_registry()
    name = f"{registry.address}/bb:run"
    ok(running_daemon, "tag", "bb:1", name)
    ok(running_daemon, "push", name)
    ok(running_daemon, "rmi", name)
    ran = docker("-H", f"unix://{running_daemon.socket}", "run", "--rm", name, "echo", "hi",
                 timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert f"Unable to find image '{name}' locally" in ran.stderr and ran.stdout == "hi\n"


def test_concurrent_pulls_share_one_download(daemon: Daemon, workdir: Path,
                                             start_registry: Callable[..., Registry],
                                             start_relay: Callable[..., SlowRelay]):
    registry = start_registry()
    pushed_away(daemon, workdir, registry, [layer("big.bin", os.urandom(2 << 20))])
    relay = start_relay(registry.port, bytes_per_second=2 << 20)
    name = f"127.0.0.1:{relay.port}/big:1"
    first, second = _start_pull(daemon, name), _start_pull(daemon, name)
    outputs = [first.communicate(timeout=60)[0], second.communicate(timeout=60)[0]]
    assert first.returncode == second.returncode == 0, outputs
    _, manifest = registry.get("/v2/big/manifests/1", {"Accept": MANIFEST})
    blob = json.loads(manifest)["layers"][0]["digest"]
    assert relay.count(f"GET /v2/big/blobs/{blob}") == 1, relay.requests

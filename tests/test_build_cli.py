"""``docker build`` with Docker's classic builder (``DOCKER_BUILDKIT=0``), the real CLI
against a real daemon: every instruction, stages, the cache, failures, cancelling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from dockertw.runtime.mounts import mounts_under
from tests.cli import import_image, inspect, ok
from tests.support import Daemon, default_signals, docker

pytestmark = pytest.mark.integration

LEGACY = {"DOCKER_BUILDKIT": "0"}


@pytest.fixture(scope="module")
def builder(busybox_daemon: Daemon) -> Daemon:
    return busybox_daemon


def build(daemon: Daemon, context: Path, *args: str, stdin: str | None = None
          ) -> subprocess.CompletedProcess[str]:
    command = ["-H", f"unix://{daemon.socket}", "build", *args, str(context)]
    if stdin is None:
        return docker(*command, env_extra=LEGACY, timeout=120)
    return _docker_with_input(command, stdin)


def _docker_with_input(command: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(LEGACY, DOCKER_CONFIG=str(Path("/tmp")))
    return subprocess.run(["docker", *command], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def built(daemon: Daemon, context: Path, *args: str) -> str:
    done = build(daemon, context, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


def run(daemon: Daemon, image: str, *command: str) -> str:
    return ok(daemon, "run", "--rm", image, *command)


def created_by(daemon: Daemon, image: str) -> list[str]:
    return ok(daemon, "history", "--no-trunc", "--format", "{{.CreatedBy}}",
              image).splitlines()


def test_every_instruction_makes_the_image_the_dockerfile_says(builder: Daemon,
                                                                 tmp_path: Path) -> None:
    context = write(tmp_path, {
        "Dockerfile": """\
FROM bb:1
MAINTAINER someone <a@b.c>
ARG GREETING=hi
ENV WHO=world PLACE="the ${WHO:-x}"
LABEL purpose="test ${GREETING}" other=${UNSET:+no}
WORKDIR /app
COPY *.txt ./
COPY dir /app/dir
COPY --chown=nobody:nogroup owned.txt /owned.txt
ADD archive.tar /unpacked/
RUN echo "$GREETING $WHO" > /greeting && echo err >&2
RUN ["sh", "-c", "echo exec form > /exec"]
SHELL ["/bin/sh", "-ec"]
RUN echo shell $0 > /shell
USER nobody
EXPOSE 80 53/udp
VOLUME /data
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD true
ONBUILD RUN echo child
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /greeting"]
""",
        "a.txt": "a\n", "b.txt": "b\n", "dir/inner/file": "deep\n", "owned.txt": "o\n",
        "ignored.txt": "must not be copied\n",
        ".dockerignore": "ignored.txt\n*.log\n!keep.log\n", "x.log": "no\n", "keep.log": "k\n",
    })
    with tarfile.open(tmp_path / "archive.tar", "w") as tar:
        tar.add(tmp_path / "a.txt", arcname="from-archive.txt")
    output = built(builder, context, "-t", "every:1", "--build-arg", "GREETING=hello")
    assert "Step 1/22 : FROM bb:1" in output
    assert " ---> Running in " in output and "Removing intermediate container" in output
    assert "Successfully tagged every:1" in output
    shown = inspect(builder, "every:1")
    config = shown["Config"]
    assert shown["Author"] == "someone <a@b.c>"
    # one ENV substitutes what was set before it (WHO is not yet)
    assert config["Env"][-2:] == ["WHO=world", "PLACE=the x"]
    assert config["Labels"] == {"purpose": "test hello", "other": ""}
    assert config["WorkingDir"] == "/app" and config["User"] == "nobody"
    assert config["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGUSR1"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"],
                                     "Interval": 5_000_000_000, "Retries": 2}
    assert config["OnBuild"] == ["RUN echo child"] and config["Shell"] == ["/bin/sh", "-ec"]
    assert config["Entrypoint"] == ["/bin/sh", "-c"] and config["Cmd"] == ["cat /greeting"]
    assert ok(builder, "run", "--rm", "every:1").strip() == "hello world"
    files = ok(builder, "run", "--rm", "--entrypoint", "sh", "every:1", "-c",
               "cd /app && find . -type f | sort && cat /exec /shell /unpacked/from-archive.txt"
               " && stat -c '%U:%G' /owned.txt /app/a.txt")
    assert files.split() == [
        "./a.txt", "./b.txt", "./dir/inner/file", "./owned.txt", "exec", "form", "shell",
        "/bin/sh", "a", "nobody:nogroup", "root:root"]
    history = created_by(builder, "every:1")
    assert history[0] == '/bin/sh -ec #(nop)  CMD ["cat /greeting"]'
    assert "|1 GREETING=hello /bin/sh -c echo \"$GREETING $WHO\" > /greeting && echo err >&2" \
        in history
    assert any(line.startswith("/bin/sh -c #(nop) COPY multi:") and line.endswith(" in ./ ")
               for line in history)


def test_stages_target_build_args_and_triggers(builder: Daemon, tmp_path: Path) -> None:
    context = write(tmp_path, {"Dockerfile": """\
ARG BASE=bb:1
FROM $BASE AS first
ARG VALUE=default
RUN echo "first $VALUE" > /made
FROM scratch AS second
COPY --from=first /made /from-first
COPY --from=0 /bin/busybox /bin/busybox
COPY --from=bb:1 /etc/passwd /etc/passwd
"""})
    built(builder, context, "-t", "stages:1", "--build-arg", "VALUE=given")
    assert ok(builder, "run", "--rm", "stages:1", "/bin/busybox", "cat",
              "/from-first").strip() == "first given"
    built(builder, context, "-t", "stages:first", "--target", "first")
    assert "first given" not in ok(builder, "run", "--rm", "stages:first", "cat", "/made")
    assert inspect(builder, "stages:first")["Parent"] != ""
    failed = build(builder, context, "--target", "nosuch")
    assert failed.returncode != 0
    assert "failed to reach build target nosuch in Dockerfile" in failed.stderr
    parent = write(tmp_path / "parent", {"Dockerfile": "FROM bb:1\nONBUILD RUN echo trig > /t\n"})
    built(builder, parent, "-t", "parent:1")
    child = write(tmp_path / "child", {"Dockerfile": "FROM parent:1\n"})
    output = built(builder, child, "-t", "child:1")
    assert "# Executing 1 build trigger" in output
    assert ok(builder, "run", "--rm", "child:1", "cat", "/t").strip() == "trig"
    assert inspect(builder, "child:1")["Config"]["OnBuild"] is None


def test_dockerfile_from_another_path_and_from_stdin(builder: Daemon, tmp_path: Path) -> None:
    context = write(tmp_path, {"file": "content\n",
                               "sub/Other.dockerfile": "FROM bb:1\nCOPY file /f\n"})
    built(builder, context, "-t", "other:1", "-f", str(context / "sub" / "Other.dockerfile"))
    assert run(builder, "other:1", "cat", "/f") == "content\n"
    done = build(builder, context, "-t", "stdin:1", "-f", "-",
                 stdin="FROM bb:1\nCOPY file /from-stdin\n")
    assert done.returncode == 0, done.stderr
    assert run(builder, "stdin:1", "cat", "/from-stdin") == "content\n"
    command = ["-H", f"unix://{builder.socket}", "build", "-t", "nocontext:1", "-"]
    done = _docker_with_input(command, "FROM bb:1\nRUN echo made > /m\n")
    assert done.returncode == 0, done.stderr
    assert run(builder, "nocontext:1", "cat", "/m") == "made\n"


def test_a_rebuild_uses_the_cache_until_a_copied_file_changes(builder: Daemon,
                                                              tmp_path: Path) -> None:
    context = write(tmp_path, {"Dockerfile": "FROM bb:1\nRUN echo one > /one\nCOPY f /f\n"
                               "RUN cat /f > /g\nLABEL l=1\n", "f": "first\n"})
    first = built(builder, context, "-q", "-t", "cached:1").strip()
    output = built(builder, context, "-t", "cached:1")
    assert output.count("Using cache") == 4
    assert f"Successfully built {first.removeprefix('sha256:')[:12]}" in output
    (context / "f").write_text("second\n")
    output = built(builder, context, "-t", "cached:2")
    assert output.count("Using cache") == 1  # the RUN before the COPY only
    assert run(builder, "cached:2", "cat", "/g") == "second\n"
    os.utime(context / "f", (1, 1))  # a time alone does not change the content hash
    assert built(builder, context, "-t", "cached:3").count("Using cache") == 4
    assert "Using cache" not in built(builder, context, "--no-cache", "-t", "cached:4")
    assert inspect(builder, "cached:4")["Id"] != inspect(builder, "cached:3")["Id"]


def _stopped_build_containers(daemon: Daemon) -> list[str]:
    return ok(daemon, "ps", "-aq", "--filter", "status=exited").split()


def test_a_failing_run_stops_the_build_with_its_code(builder: Daemon, tmp_path: Path) -> None:
    context = write(tmp_path, {"Dockerfile": "FROM bb:1\nRUN echo before\nRUN exit 3\n"})
    kept = set(_stopped_build_containers(builder))
    failed = build(builder, context, "-t", "fails:1")
    assert failed.returncode == 3  # the step's exit code
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in failed.stderr
    left = set(_stopped_build_containers(builder)) - kept
    assert len(left) == 1  # rm keeps a failed step's container, as Docker does
    assert ok(builder, "ps", "-q") == ""
    assert mounts_under(builder.root / "containers") == []
    ok(builder, "rm", *left)
    failed = build(builder, context, "--force-rm", "--no-cache")
    assert failed.returncode == 3  # the step's exit code
    assert set(_stopped_build_containers(builder)) == kept
    missing = write(tmp_path / "m", {"Dockerfile": "FROM bb:1\nCOPY nosuch /x\n"})
    failed = build(builder, missing)
    assert ("COPY failed: file not found in build context or excluded by .dockerignore: "
            "stat nosuch: file does not exist") in failed.stderr
    unknown = write(tmp_path / "u", {"Dockerfile": "FROM bb:1\nFOOBAR x\n"})
    assert "dockerfile parse error line 2: unknown instruction: FOOBAR" in \
        build(builder, unknown).stderr


def test_a_client_that_goes_away_cancels_the_build(builder: Daemon, tmp_path: Path) -> None:
    context = write(tmp_path, {"Dockerfile": "FROM bb:1\nRUN sleep 60\n"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    client = subprocess.Popen(["docker", "-H", f"unix://{builder.socket}", "build",
                               "--no-cache", str(context)], env={**env, **LEGACY},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              preexec_fn=default_signals)
    try:
        assert client.stdout is not None
        for line in client.stdout:
            if "Running in" in line:
                break
        client.send_signal(signal.SIGINT)
        client.wait(timeout=20)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    deadline = time.monotonic() + 15
    while "sleep 60" in ok(builder, "ps", "-a", "--no-trunc") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "sleep 60" not in ok(builder, "ps", "-a", "--no-trunc")  # killed and removed
    assert ok(builder, "ps", "-q") == ""
    assert mounts_under(builder.root / "containers") == []


def test_scratch_images_the_layer_order_and_the_build_cache(builder: Daemon,
                                                            tmp_path: Path) -> None:
    context = write(tmp_path, {"Dockerfile": "FROM scratch\nCOPY f /f\nCOPY g /f\n",
                               "f": "old\n", "g": "new\n"})
    built(builder, context, "-t", "scratch:1")
    shown = inspect(builder, "scratch:1")
    assert len(shown["RootFS"]["Layers"]) == 2 and shown["Architecture"]
    container = ok(builder, "create", "scratch:1", "x").strip()
    copied = docker("-H", f"unix://{builder.socket}", "cp", f"{container}:/f",
                    str(tmp_path / "out"))
    ok(builder, "rm", container)
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "out").read_text() == "new\n"  # the top layer's file
    usage = json.loads(ok(builder, "system", "df", "--format", "{{json .}}").splitlines()[-1])
    assert usage["Type"] == "Build Cache" and int(usage["TotalCount"]) >= 1
    dangling = write(tmp_path / "d", {"Dockerfile": "FROM bb:1\nRUN echo x > /x\nRUN exit 1\n"})
    build(builder, dangling, "--force-rm")
    pruned = ok(builder, "builder", "prune", "-f")
    assert "Total reclaimed space" in pruned
    assert "echo x > /x" not in ok(builder, "system", "df", "-v")
    assert inspect(builder, "scratch:1")["Id"]  # what a tag needs stays


def test_a_missing_base_image_is_pulled_from_its_registry(daemon: Daemon, busybox_tar: Path,
                                                          start_registry: Any,
                                                          tmp_path: Path) -> None:
    registry = start_registry()
    name = f"{registry.address}/base:1"
    import_image(daemon, busybox_tar, name)
    ok(daemon, "push", name)
    ok(daemon, "rmi", name)
    context = write(tmp_path, {"Dockerfile": f"FROM {name}\nRUN echo on-pulled > /p\n"})
    output = built(daemon, context, "-t", "onpulled:1")
    assert "Pull complete" in output and f"Status: Downloaded newer image for {name}" in output
    assert run(daemon, "onpulled:1", "cat", "/p") == "on-pulled\n"
    again = built(daemon, context, "--pull", "-t", "onpulled:2")
    assert f"Status: Image is up to date for {name}" in again

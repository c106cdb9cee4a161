"""Acceptance: Docker's confinement of containers, with the real CLI and kernel.

Seccomp (Docker's default profile, ``unconfined``, a profile file, ``--privileged``),
``no-new-privileges``, AppArmor and SELinux options on a host without them.  A tiny
static program (built here with ``gcc -static``) makes the syscalls busybox cannot.
"""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pytest

from tests.cli import cli, inspect, ok
from tests.support import Daemon

pytestmark = pytest.mark.integration

_PROBE_SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *name, long result) {
    if (result < 0) printf("%s errno=%d\n", name, errno);
    else printf("%s ok\n", name);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *name = argv[i];
        errno = 0;
        if (!strcmp(name, "keyctl")) report(name, syscall(SYS_keyctl, 0, -3, 1));
        else if (!strcmp(name, "unshare")) report(name, syscall(SYS_unshare, CLONE_NEWUSER));
        else if (!strcmp(name, "personality")) report(name, syscall(SYS_personality, 6));
        else if (!strcmp(name, "vsock")) report(name, syscall(SYS_socket, 40, SOCK_STREAM, 0));
        else if (!strcmp(name, "clone3")) report(name, syscall(SYS_clone3, NULL, 0));
        else if (!strcmp(name, "getpid")) report(name, syscall(SYS_getpid));
        else printf("%s unknown\n", name);
    }
    return 0;
}
"""
_CALLS = ("keyctl", "unshare", "personality", "vsock", "clone3", "getpid")


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``probe``: makes each syscall named and prints its result."""
    directory = tmp_path_factory.mktemp("probe")
    source = directory / "probe.c"
    source.write_text(_PROBE_SOURCE)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(directory / "probe"), str(source)],
                   check=True, capture_output=True)
    source.unlink()
    return directory


def _probe(daemon: Daemon, probe_dir: Path, *options: str) -> dict[str, str]:
    """``{syscall: "ok" | "errno=N"}`` from a container run with ``options``."""
    out = ok(daemon, "run", "--rm", "-v", f"{probe_dir}:/probe:ro", *options, "bb:1",
             "/probe/probe", *_CALLS)
    return dict(line.split(" ", 1) for line in out.splitlines())


def _status(daemon: Daemon, field: str, *options: str) -> str:
    out = ok(daemon, "run", "--rm", *options, "bb:1", "grep", f"^{field}:",
             "/proc/self/status")
    return out.split(":", 1)[1].strip()


def test_default_profile_filters_syscalls(running_daemon: Daemon, probe_dir: Path):
    daemon = running_daemon
    assert _status(daemon, "Seccomp") == "2"
    denied = f"errno={errno.EPERM}"
    results = _probe(daemon, probe_dir)
    assert results == {"keyctl": denied, "unshare": denied, "personality": denied,
                       "vsock": denied, "clone3": f"errno={errno.ENOSYS}", "getpid": "ok"}
    refused = cli(daemon, "run", "--rm", "bb:1", "unshare", "-U", "true")
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
    # a capability opens what the profile grants with it: CAP_SYS_ADMIN, unshare and clone3
    admin = _probe(daemon, probe_dir, "--cap-add", "SYS_ADMIN")
    assert admin["unshare"] == "ok" and admin["clone3"] != f"errno={errno.ENOSYS}"
    assert admin["keyctl"] == denied
    # exec'd processes get the container's filter
    ok(daemon, "run", "-d", "--name", "sc", "bb:1", "sleep", "100")
    assert "Seccomp:\t2" in ok(daemon, "exec", "sc", "cat", "/proc/self/status")
    ok(daemon, "rm", "-f", "sc")


@pytest.mark.parametrize("options", [("--security-opt", "seccomp=unconfined"),
                                     ("--privileged",)])
def test_unconfined_and_privileged_lift_the_filter(running_daemon: Daemon, probe_dir: Path,
                                                   options: tuple[str, ...]):
    daemon = running_daemon
    assert _status(daemon, "Seccomp", *options) == "0"
    results = _probe(daemon, probe_dir, *options)
    assert all(results[call] != f"errno={errno.EPERM}" for call in ("keyctl", "personality"))
    assert results["clone3"] != f"errno={errno.ENOSYS}"


def test_profile_file_replaces_the_default(running_daemon: Daemon, workdir: Path):
    daemon = running_daemon
    profile = workdir / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    option = f"seccomp={profile}"
    refused = cli(daemon, "run", "--rm", "--security-opt", option, "bb:1", "mkdir", "/x")
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
    assert ok(daemon, "run", "--rm", "--security-opt", option, "bb:1", "sh", "-c",
              "touch /y && echo made") == "made\n"
    # the profile applies to a privileged container too, as Docker's does
    refused = cli(daemon, "run", "--rm", "--privileged", "--security-opt", option, "bb:1",
                  "mkdir", "/x")
    assert refused.returncode != 0 and "Operation not permitted" in refused.stderr
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}')
    broken = cli(daemon, "create", "--security-opt", option, "bb:1", "true")
    assert broken.returncode != 0
    assert "Decoding seccomp profile failed" in broken.stderr


def test_security_options_as_docker_reads_them(running_daemon: Daemon):
    daemon = running_daemon
    assert _status(daemon, "NoNewPrivs") == "0"
    assert _status(daemon, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"
    assert _status(daemon, "NoNewPrivs", "--security-opt", "no-new-privileges=false") == "0"
    # no AppArmor or SELinux here: their options are recorded and change nothing
    ok(daemon, "create", "--name", "aa", "--security-opt", "apparmor=my-profile",
       "--security-opt", "label=level:s0:c100", "--security-opt", "label=disable",
       "bb:1", "true")
    shown = inspect(daemon, "aa")
    assert shown["AppArmorProfile"] == "my-profile"
    assert (shown["ProcessLabel"], shown["MountLabel"]) == ("", "")
    ok(daemon, "start", "aa")
    assert ok(daemon, "wait", "aa").strip() == "0"
    bad = cli(daemon, "create", "--security-opt", "bogus=1", "bb:1", "true")
    assert bad.returncode != 0 and 'invalid --security-opt 2: "bogus=1"' in bad.stderr
    bad = cli(daemon, "create", "--security-opt", "no-new-privileges=maybe", "bb:1", "true")
    assert 'invalid --security-opt 2: "no-new-privileges=maybe"' in bad.stderr
    info = json.loads(ok(daemon, "info", "--format", "{{json .SecurityOptions}}"))
    assert "name=seccomp,profile=default" in info

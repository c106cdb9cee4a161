"""Spotting a chroot, where docker exec would reach the host's root (issue 19)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dockertw.runtime.rootcheck import chrooted
from tests.support import REPO

_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_PROBE = "from dockertw.runtime.rootcheck import chrooted; print(chrooted())"


def test_the_test_machine_is_not_chrooted():
    assert chrooted() is False


def test_a_chroot_onto_a_bind_of_the_whole_root_is_spotted(tmp_path: Path):
    """A private mount namespace binds / onto a directory and chroots there: the same
    files, another root than the namespace's.  Everything goes with the namespace."""
    (tmp_path / "root").mkdir()
    script = (f'mount --rbind / "{tmp_path}/root" && '
              f'exec chroot "{tmp_path}/root" "{sys.executable}" -c "{_PROBE}"')
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           script], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": _PATH},
                          check=False)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr

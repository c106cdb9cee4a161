"""A tiny root filesystem made from Debian's busybox-static, for real containers."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def make_busybox_rootfs(root: Path) -> Path:
    """``root`` with /bin/busybox, one link per applet, and the usual empty directories."""
    if not BUSYBOX.exists():
        raise RuntimeError("busybox-static is not installed: run ./bootstrap.sh install")
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":  # a link named busybox would replace the binary itself
            os.symlink("busybox", root / "bin" / applet)
    for directory in ("proc", "sys", "dev", "etc", "tmp", "root"):
        (root / directory).mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return root


def make_busybox_tar(directory: Path) -> Path:
    """``directory/busybox.tar``: a busybox-static root filesystem, for ``docker
    import`` (the unpacked tree is removed)."""
    root = make_busybox_rootfs(directory / "rootfs")
    archive = directory / "busybox.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(root, arcname=".")
    shutil.rmtree(root)
    return archive


def remove_cgroup(relative: str) -> None:
    """Remove an (empty) cgroup directory from every hierarchy, deepest first."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        directory = hierarchy / relative.strip("/")
        if directory.is_dir():
            for child in sorted(directory.rglob("*"), reverse=True):
                if child.is_dir():
                    child.rmdir()
            directory.rmdir()

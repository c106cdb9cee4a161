"""The bundle helpers: users from the image's account files, read without following links."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockertw.daemon.containers.running.bundle import read_root_file, resolve_user
from dockertw.errdefs import InvalidParameter
from dockertw.runtime.spec import ProcessUser


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "app:x:1000:1001:app:/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    return root


def test_users_by_name_number_and_group(rootfs: Path):
    assert resolve_user(rootfs, "") == ProcessUser(0, 0, home="/root")
    assert resolve_user(rootfs, "app") == ProcessUser(1000, 1001, home="/home/app")
    assert resolve_user(rootfs, "1000") == ProcessUser(1000, 1001, home="/home/app")
    assert resolve_user(rootfs, "app:staff") == ProcessUser(1000, 50, home="/home/app")
    assert resolve_user(rootfs, "4242:7") == ProcessUser(4242, 7, home="/")
    with pytest.raises(InvalidParameter, match="unable to find user nobody"):
        resolve_user(rootfs, "nobody")
    with pytest.raises(InvalidParameter, match="unable to find group nogroup"):
        resolve_user(rootfs, "app:nogroup")


def test_links_out_of_the_root_are_not_followed(rootfs: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:0:0::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to(outside / "passwd")
    assert read_root_file(rootfs, "/etc/passwd") is None
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "group").unlink()
    (rootfs / "etc").rmdir()
    (rootfs / "etc").symlink_to(outside)
    assert read_root_file(rootfs, "/etc/passwd") is None
    with pytest.raises(InvalidParameter):
        resolve_user(rootfs, "evil")

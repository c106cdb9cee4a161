"""The layer tar of a container's upper directory (``docker commit``), no daemon."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from dockertw.daemon.containers.files.uppertar import write_upper_tar


def _names(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {member.name: member for member in tar.getmembers()}


@pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are device nodes: root only")
def test_whiteouts_opaque_directories_and_links(tmp_path: Path):
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "file").write_text("new")
    os.link(upper / "etc" / "file", upper / "etc" / "again")
    os.symlink("/etc/file", upper / "etc" / "link")
    os.mknod(upper / "etc" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    (upper / "opaque").mkdir()
    os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
    out = io.BytesIO()
    assert write_upper_tar(upper, out) == 7
    members = _names(out.getvalue())
    assert sorted(members) == ["etc", "etc/.wh.gone", "etc/again", "etc/file", "etc/link",
                               "opaque", "opaque/.wh..wh..opq"]
    assert members["etc/file"].islnk() and members["etc/file"].linkname == "etc/again"
    assert members["etc/link"].issym() and members["etc/link"].linkname == "/etc/file"
    assert members["etc/again"].size == 3 and members["etc/.wh.gone"].size == 0


def test_an_untouched_container_has_no_entries(tmp_path: Path):
    out = io.BytesIO()
    assert write_upper_tar(tmp_path / "missing", out) == 0
    (tmp_path / "empty").mkdir()
    assert write_upper_tar(tmp_path / "empty", io.BytesIO()) == 0

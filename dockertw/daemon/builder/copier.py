"""``COPY`` and ``ADD`` into a build container's root filesystem.

Every source entry is read through the fds of its tree and created through the
``docker cp`` extraction (:func:`~dockertw.daemon.containers.files.archive.
extract_entry`): paths resolved inside the container's root, relative links leaving
the destination refused, what is in the way replaced.  As moby's classic builder: a
directory's contents are copied into the destination; a file lands at the
destination, or inside it when it ends with ``/`` or is a directory; ``ADD`` unpacks a
local tar archive (compressed or not) with its own owners; entries get ``--chown``'s
owner, root's, or (``COPY --from`` without ``--chown``) their own; contents are
copied in the kernel.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import attrs

from dockertw.daemon.builder.sources import CopyInfo, walk
from dockertw.daemon.containers.files import archive, inroot
from dockertw.daemon.containers.running.bundle import account_entries, read_root_file
from dockertw.daemon.tarreader import TarReader, open_source

__all__ = ["CopyRequest", "perform_copy", "chown_pair", "normalize_dest"]

Owner = tuple[int, int]
_CHUNK = 8 << 20


@attrs.frozen
class CopyRequest:
    """Where the sources go (absolute, a trailing ``/`` kept), the owner of what is
    copied (``None``: the sources' own) and whether archives are unpacked (``ADD``)."""

    dest: str
    owner: Owner | None
    decompress: bool = False


def normalize_dest(workdir: str, dest: str) -> str:
    """A relative destination is under the working directory; its ``/`` stays."""
    if dest.startswith("/"):
        return dest
    joined = posixpath.normpath(posixpath.join("/", workdir, dest))
    return "/" + joined.lstrip("/") + ("/" if dest.endswith("/") and joined != "/" else "")


def _lookup(data: bytes | None, name: str, what: str) -> int:
    if name.isdigit():
        return int(name)
    for entry in account_entries(data):
        if len(entry) >= 3 and entry[0] == name and entry[2].isdigit():
            return int(entry[2])
    raise ValueError(f"can't find {'uid' if what == 'user' else 'gid'} for {what} "
                     f"{name}: no such {what}: {name}")


def chown_pair(root: Path, chown: str) -> Owner:
    """``--chown=user[:group]`` against the destination's ``/etc/passwd`` and
    ``/etc/group`` (a lone user is also the group's name, as moby reads it)."""
    parts = chown.split(":")
    if len(parts) > 2:
        raise ValueError(f"invalid chown string format: {chown}")
    user, group = parts[0], parts[-1]
    return (_lookup(read_root_file(root, "/etc/passwd"), user, "user"),
            _lookup(read_root_file(root, "/etc/group"), group, "group"))


class _FileContents:
    """A regular file's contents, copied into the new file by the kernel."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._size = fd, size

    def write_contents(self, fd: int) -> None:
        copied = 0
        with contextlib.suppress(OSError):
            copied = _copy_range(self._fd, fd, self._size)
        os.lseek(self._fd, copied, os.SEEK_SET)
        os.lseek(fd, copied, os.SEEK_SET)
        while copied < self._size:  # a filesystem the kernel cannot copy between
            data = os.read(self._fd, min(_CHUNK, self._size - copied))
            if not data:
                break
            os.write(fd, data)
            copied += len(data)


def _copy_range(source: int, target: int, size: int) -> int:
    copied = 0
    while copied < size:
        try:
            done = os.copy_file_range(source, target, size - copied)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            done = os.sendfile(target, source, None, size - copied)
        if not done:
            break
        copied += done
    return copied


def _make_dirs(view: inroot.RootView, path: str, owner: Owner | None) -> str:
    """Create the missing directories of ``path`` (0755, ``owner``'s when given);
    answers where it is, links resolved."""
    done = "/"
    for part in [p for p in path.split("/") if p]:
        place = view.resolve(posixpath.join(done, part), follow_last=True, must_exist=False,
                             make_dirs=True)
        try:
            if place.name and not _exists(place):
                os.mkdir(place.name, 0o755, dir_fd=place.parent)
                if owner is not None:
                    os.chown(place.name, *owner, dir_fd=place.parent, follow_symlinks=False)
            done = place.path
        finally:
            os.close(place.parent)
    return done


def _exists(place: inroot.Resolved) -> bool:
    try:
        os.stat(place.name, dir_fd=place.parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _dest_state(view: inroot.RootView, dest: str) -> tuple[str, bool]:
    """The destination with links resolved, and whether it is an existing directory
    (where it would be, when its parents are missing)."""
    try:
        place = view.resolve(dest, follow_last=True, must_exist=False, make_dirs=False)
    except (FileNotFoundError, NotADirectoryError):
        return "/" + posixpath.normpath(dest).lstrip("/"), False
    try:
        info = os.stat(place.name or ".", dir_fd=place.parent, follow_symlinks=False)
    except FileNotFoundError:
        return place.path, False
    finally:
        os.close(place.parent)
    return place.path, stat.S_ISDIR(info.st_mode)


@contextlib.contextmanager
def _source(info: CopyInfo) -> Iterator[tuple[inroot.Resolved, os.stat_result]]:
    found = inroot.resolve(info.tree.fd, info.path or ".", follow_last=True)
    try:
        yield found, inroot.lstat(found)
    finally:
        os.close(found.parent)


def _copy_entry(view: inroot.RootView, dest_dir: str, target: str, parent: int, name: str,
                info: os.stat_result, owner: Owner | None) -> tarfile.TarInfo:
    header = archive.entry_header(parent, name, posixpath.basename(target), info)
    options = archive.ExtractOptions(owner=owner, confine_links=False)
    if not header.isreg():
        archive.extract_entry(view, dest_dir, target, header, _FileContents(-1, 0), options)
        return header
    with archive.open_regular(parent, name, info) as fd:
        header.size = os.fstat(fd).st_size
        archive.extract_entry(view, dest_dir, target, header, _FileContents(fd, header.size),
                              options)
    return header


def _copy_tree(view: inroot.RootView, info: CopyInfo, source_path: str, dest: str,
               owner: Owner | None) -> None:
    """The contents of the source directory into ``dest`` (created when missing)."""
    existed = _dest_state(view, dest)[1]
    dest = _make_dirs(view, dest, None)
    if not existed and owner is not None:
        _chown(view, dest, owner)
    directories: list[tuple[str, tarfile.TarInfo]] = []
    first_links: dict[tuple[int, int], str] = {}
    for entry, status in walk(info.tree.fd, source_path):
        relative = entry[len(source_path):].lstrip("/") if source_path else entry
        if not relative or stat.S_ISSOCK(status.st_mode):
            continue  # sockets are never copied, as moby's tar leaves them out
        target = posixpath.join(dest, relative)
        if _hard_link(view, dest, target, status, relative, first_links, owner):
            continue
        parent, name = _opened_parent(info.tree.fd, entry)
        try:
            header = _copy_entry(view, dest, target, parent, name, status, owner)
        finally:
            os.close(parent)
        if header.isdir():
            directories.append((target, header))
    for target, header in reversed(directories):
        archive.set_entry_times(view, target, header)


def _opened_parent(root: int, entry: str) -> tuple[int, str]:
    found = inroot.resolve(root, entry)
    return found.parent, found.name


def _hard_link(view: inroot.RootView, dest: str, target: str, status: os.stat_result,
               relative: str, first: dict[tuple[int, int], str], owner: Owner | None) -> bool:
    """A second name of a file already copied becomes a hard link to the copy."""
    if not stat.S_ISREG(status.st_mode) or status.st_nlink < 2:
        return False
    key = (status.st_dev, status.st_ino)
    if key not in first:
        first[key] = relative
        return False
    header = tarfile.TarInfo(posixpath.basename(target))
    header.type, header.linkname = tarfile.LNKTYPE, first[key]
    header.mode, header.uid, header.gid = stat.S_IMODE(status.st_mode), status.st_uid, \
        status.st_gid
    header.mtime = status.st_mtime
    archive.extract_entry(view, dest, target, header, _FileContents(-1, 0),
                          archive.ExtractOptions(owner=owner, confine_links=False))
    return True


def _chown(view: inroot.RootView, path: str, owner: Owner) -> None:
    place = view.resolve(path)
    try:
        os.chown(place.name or ".", *owner, dir_fd=place.parent, follow_symlinks=False)
    finally:
        os.close(place.parent)


def _is_archive(found: inroot.Resolved, status: os.stat_result) -> bool:
    """moby's ``isArchivePath``: a (compressed) tar whose first header reads."""
    if not stat.S_ISREG(status.st_mode):
        return False
    with archive.open_regular(found.parent, found.name, status) as fd, \
            os.fdopen(os.dup(fd), "rb") as file:
        try:
            return next(iter(TarReader(open_source(file))), None) is not None
        except (tarfile.TarError, OSError, EOFError, ValueError):
            return False


def _unpack(view: inroot.RootView, found: inroot.Resolved, status: os.stat_result,
            dest: str) -> None:
    dest = _make_dirs(view, dest, (0, 0))
    with archive.open_regular(found.parent, found.name, status) as fd, \
            os.fdopen(os.dup(fd), "rb") as file:
        archive.extract(view, dest, file, archive.ExtractOptions(confine_links=False))


def _copy_one(view: inroot.RootView, info: CopyInfo, request: CopyRequest) -> None:
    with _source(info) as (found, status):
        if stat.S_ISDIR(status.st_mode):
            _copy_tree(view, info, found.path.lstrip("/"), request.dest, request.owner)
            return
        if request.decompress and not info.no_decompress and _is_archive(found, status):
            _unpack(view, found, status, request.dest)
            return
        resolved, is_dir = _dest_state(view, request.dest)
        target = request.dest
        if request.dest.endswith("/") or is_dir:
            target = posixpath.join(resolved, posixpath.basename(info.path.rstrip("/")))
        parent_dir = _make_dirs(view, posixpath.dirname(target.rstrip("/")) or "/",
                                request.owner)
        target = posixpath.join(parent_dir, posixpath.basename(target.rstrip("/")))
        _copy_entry(view, parent_dir, target, found.parent, found.name, status,
                    request.owner)


def perform_copy(view: inroot.RootView, infos: list[CopyInfo], request: CopyRequest) -> None:
    """Copy every source of one instruction into the container's root ``view``."""
    for info in infos:
        _copy_one(view, info, request)

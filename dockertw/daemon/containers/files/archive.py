"""``docker cp``: stat, archive and extract paths inside a container's root filesystem.

Everything works on a directory fd of a merged root (see :mod:`.copyroot`) through
:mod:`.inroot`: no path of the container is ever turned into a host path and opened,
every file is opened relative to its parent's fd with ``O_NOFOLLOW``.  Tars are read
with :mod:`dockertw.daemon.tarreader` and written here, headers by :mod:`tarfile`;
nothing of the container is executed.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import datetime
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Protocol

import attrs

from dockertw.daemon.containers.files import inroot
from dockertw.daemon.tarreader import ChunkSource, TarReader, open_source
from dockertw.errdefs import InvalidParameter, NotFound, from_os_error

__all__ = ["abs_path", "path_stat", "write_archive", "write_tree", "archive_name",
           "ExtractOptions", "Contents", "entry_header", "extract_entry", "set_entry_times",
           "open_regular", "extract", "destination", "stat_json", "not_found",
           "as_docker_errors", "Encoder"]

# Go's os.FileMode type bits, as the CLI reads the stat header
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
_GO_SOCKET, _GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = (
    1 << 24, 1 << 23, 1 << 22, 1 << 21, 1 << 20)
_READ_CHUNK = 1 << 20
READONLY_VOLUME = "mounted volume is marked read-only"
_SMALL_CONTENTS = 64 << 10  # smaller reads join the pending headers
_ZIP_LEVEL = 1  # invisible to clients; a local socket gains little from more effort


@contextmanager
def as_docker_errors() -> Iterator[None]:
    """A system error (``ELOOP``, ``EXDEV``...) or a broken archive as the API's
    errors: a 500 or a 400 with the message, not an unexpected failure."""
    try:
        yield
    except tarfile.TarError as error:
        raise InvalidParameter(f"invalid tar archive: {error}") from None
    except OSError as error:
        raise from_os_error(error) from None


def not_found(path: str, container: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container}")


def abs_path(path: str) -> str:
    """``path`` made absolute and clean, a trailing ``/`` or ``/.`` kept (they ask
    for the last component's link to be followed), as moby's ``ResolvePath``."""
    cleaned = "/" + posixpath.normpath("/" + path).lstrip("/")  # normpath keeps "//"
    if path == "." or path.endswith("/."):
        return cleaned.rstrip("/") + "/."
    if path.endswith("/") and not cleaned.endswith("/"):
        return cleaned + "/"
    return cleaned


def _follows_last(absolute: str) -> bool:
    return absolute == "/" or absolute.endswith("/") or absolute.endswith("/.")


def _go_base(absolute: str) -> str:
    """Go's ``filepath.Base``: the last element, trailing slashes dropped."""
    stripped = absolute.rstrip("/")
    return posixpath.basename(stripped) if stripped else "/"


def _go_mode(mode: int) -> int:
    bits = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    bits |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFIFO: _GO_PIPE,
             stat.S_IFSOCK: _GO_SOCKET, stat.S_IFBLK: _GO_DEVICE,
             stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV}.get(kind, 0)
    for flag, go in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID),
                     (stat.S_ISVTX, _GO_STICKY)):
        if mode & flag:
            bits |= go
    return bits


def _rfc3339(ns: int) -> str:
    """Go's RFC3339Nano in UTC (trailing zeros of the fraction dropped)."""
    seconds, fraction = divmod(ns, 10**9)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def stat_json(name: str, info: os.stat_result, link_target: str) -> dict[str, Any]:
    """A ``ContainerPathStat``."""
    return {"name": name, "size": info.st_size, "mode": _go_mode(info.st_mode),
            "mtime": _rfc3339(info.st_mtime_ns), "linkTarget": link_target}


def _resolve_existing(view: inroot.RootView, absolute: str, shown: str,
                      container: str) -> inroot.Resolved:
    try:
        return view.resolve(absolute, follow_last=_follows_last(absolute))
    except (FileNotFoundError, NotADirectoryError):
        raise not_found(shown, container) from None


def path_stat(view: inroot.RootView, path: str, container: str
              ) -> tuple[dict[str, Any], inroot.Resolved]:
    """The ``ContainerPathStat`` of ``path`` and where it is (the caller closes the
    resolved parent fd); 404 when missing."""
    absolute = abs_path(path)
    resolved = _resolve_existing(view, absolute, path, container)
    try:
        info = inroot.lstat(resolved)
        link = ""
        if stat.S_ISLNK(info.st_mode):
            link = _link_target(view, resolved)
        return stat_json(_go_base(absolute), info, link), resolved
    except BaseException:
        os.close(resolved.parent)
        raise


def _link_target(view: inroot.RootView, link: inroot.Resolved) -> str:
    """Where the link leads, resolved inside the root; where it would lead, lexically,
    when something on the way is missing (as moby's ``FollowSymlinkInScope``)."""
    try:
        target = view.resolve(link.path, follow_last=True, must_exist=False)
    except OSError:
        text = os.readlink(link.name, dir_fd=link.parent)
        return "/" + posixpath.normpath(
            posixpath.join(posixpath.dirname(link.path), text)).lstrip("/")
    os.close(target.parent)
    return target.path


# ---------------------------------------------------------------- archiving


class _TarWriter:
    """Adds entries read through directory fds to a streaming tar."""

    def __init__(self, tar: _TarStream, mounts: Mapping[str, int]) -> None:
        self._tar = tar
        self._mounts = mounts
        self._links: dict[tuple[int, int], str] = {}

    def add(self, parent: int, name: str, arcname: str, path: str) -> None:
        """The entry ``name`` in the directory ``parent``, which is ``path`` in the
        container: a mount's directory there, if one is mounted at ``path``."""
        mounted = self._mounts.get(path)
        if mounted is not None:
            parent, name = mounted, "."
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISSOCK(info.st_mode):
            return  # skipped, as moby's archive does
        header = self._linked(info, arcname) or entry_header(parent, name, arcname, info)
        if header.isreg():
            with open_regular(parent, name, info) as content:
                header.size = os.fstat(content).st_size
                self._tar.add(header, content)
            return
        self._tar.add(header)
        if header.isdir():
            self._add_children(parent, name, arcname, path)

    def _add_children(self, parent: int, name: str, arcname: str, path: str) -> None:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            for child in sorted(os.listdir(fd)):
                self.add(fd, child, f"{arcname}/{child}", posixpath.join(path, child))
        finally:
            os.close(fd)

    def _linked(self, info: os.stat_result, arcname: str) -> tarfile.TarInfo | None:
        """A hard link to the entry already archived as the same file, if any."""
        if not stat.S_ISREG(info.st_mode) or info.st_nlink < 2:
            return None
        first = self._links.setdefault((info.st_dev, info.st_ino), arcname)
        if first == arcname:
            return None
        header = _basic_header(arcname, info)
        header.type, header.linkname = tarfile.LNKTYPE, first
        return header


def _basic_header(arcname: str, info: os.stat_result) -> tarfile.TarInfo:
    header = tarfile.TarInfo(arcname)
    header.mode = stat.S_IMODE(info.st_mode)
    header.uid, header.gid = info.st_uid, info.st_gid
    header.mtime = info.st_mtime
    return header


def entry_header(parent: int, name: str, arcname: str,
                 info: os.stat_result) -> tarfile.TarInfo:
    """The tar header of the entry ``name`` in the directory ``parent`` (its status
    ``info``), named ``arcname``; a regular file's size is left for its reader."""
    header = _basic_header(arcname, info)
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFDIR:
        header.type = tarfile.DIRTYPE
    elif kind == stat.S_IFLNK:
        header.type, header.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=parent)
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        header.type = tarfile.CHRTYPE if kind == stat.S_IFCHR else tarfile.BLKTYPE
        header.devmajor, header.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
    elif kind == stat.S_IFIFO:
        header.type = tarfile.FIFOTYPE
    return header


@contextmanager
def open_regular(parent: int, name: str, seen: os.stat_result) -> Iterator[int]:
    """The regular file ``seen`` open for reading.  Opened by ``O_PATH`` first and
    checked, so an entry swapped meanwhile (a device node, a FIFO) is never opened."""
    path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    try:
        now = os.fstat(path_fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
                seen.st_dev, seen.st_ino):
            raise OSError(f"{name}: changed while being archived")
        fd = os.open(f"/proc/self/fd/{path_fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(path_fd)
    try:
        yield fd
    finally:
        os.close(fd)


class _TarStream:
    """A tar stream handed to ``push``: headers gathered into blocks of about
    ``_READ_CHUNK``, large file contents passed on as read, never copied again."""

    def __init__(self, push: Callable[[bytes], None]) -> None:
        self._push = push
        self._pending = bytearray()

    def add(self, header: tarfile.TarInfo, content: int | None = None) -> None:
        """An entry; a regular file's ``header.size`` bytes are read from ``content``
        (zeros if it shrank meanwhile: the header is written already)."""
        self._pending += header.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if content is not None:
            self._add_contents(content, header.size)
        if len(self._pending) >= _READ_CHUNK:
            self._flush()

    def close(self) -> None:
        """The end-of-archive blocks, and everything still held."""
        self._pending += bytes(2 * tarfile.BLOCKSIZE)
        self._flush()

    def _add_contents(self, fd: int, size: int) -> None:
        left = size
        while left:
            data = os.read(fd, min(left, _READ_CHUNK)) or bytes(min(left, _READ_CHUNK))
            left -= len(data)
            if len(data) < _SMALL_CONTENTS:
                self._pending += data
                continue
            self._flush()
            self._push(data)
        self._pending += bytes(-size % tarfile.BLOCKSIZE)

    def _flush(self) -> None:
        if self._pending:
            self._push(bytes(self._pending))
            self._pending.clear()


def write_archive(resolved: inroot.Resolved, arcname: str,
                  push: Callable[[bytes], None],
                  mounts: Mapping[str, int] = inroot.NO_MOUNTS) -> None:
    """Stream the entry ``resolved`` names (a directory with everything in it, the
    ``mounts`` inside it included) as a tar through ``push``, its entries named from
    ``arcname``."""
    tar = _TarStream(push)
    # the root, a mount, or a directory reached by "..", has no name of its own
    _TarWriter(tar, mounts).add(resolved.parent, resolved.name or ".", arcname,
                                resolved.path)
    tar.close()


def write_tree(root: int, push: Callable[[bytes], None]) -> None:
    """Stream everything under the directory ``root`` as a tar through ``push``, named
    relative to it and without an entry for the root itself (as ``docker export``)."""
    tar = _TarStream(push)
    writer = _TarWriter(tar, inroot.NO_MOUNTS)
    with inroot.open_dir(inroot.Resolved(root, "", "/")) as directory:
        names = sorted(os.listdir(directory))
    for name in names:
        writer.add(root, name, name, "/" + name)
    tar.close()


class Encoder:
    """``push`` behind a ``gzip`` or (raw, as Go's ``compress/flate``) ``deflate``
    compressor; ``""`` passes the bytes through.  Runs in the worker thread."""

    def __init__(self, push: Callable[[bytes], None], encoding: str) -> None:
        self._push = push
        wbits = {"gzip": 31, "deflate": -15}.get(encoding)
        self._zip = None if wbits is None else zlib.compressobj(_ZIP_LEVEL, wbits=wbits)

    def push(self, chunk: bytes) -> None:
        data = chunk if self._zip is None else self._zip.compress(chunk)
        if data:
            self._push(data)

    def close(self) -> None:
        if self._zip is not None:
            self._push(self._zip.flush())


def archive_name(stat_name: str) -> str:
    """The name of the archive's top entry (moby rebases on the requested name)."""
    return "." if stat_name in ("/", ".") else stat_name


# ---------------------------------------------------------------- extracting


@attrs.frozen
class ExtractOptions:
    no_overwrite_dir_non_dir: bool = False
    #: the owner of every entry (``copyUIDGID``); ``None`` keeps the archive's
    owner: tuple[int, int] | None = None
    #: refuse relative links leading out of the destination (``docker cp``, as
    #: moby's untar); a build's COPY keeps them, as moby's untar in a chroot does
    #: (links are resolved inside the root whatever they say)
    confine_links: bool = True


class Contents(Protocol):
    """Where a regular file's contents come from (a :class:`TarReader` at its
    member, or a file being copied)."""

    def write_contents(self, fd: int) -> None: ...


#: What a member's contents are written through, given its path under the destination
#: and the reader (a build's context hashes them on the way); asked for every member.
ContentsOf = Callable[[str, TarReader], Contents]


def extract(view: inroot.RootView, dest: str, source: ChunkSource | IO[bytes],
            options: ExtractOptions, contents_of: ContentsOf | None = None) -> None:
    """Unpack the tar ``source`` (gzip, bzip2 or xz compressed or not) into the
    directory ``dest`` (resolved in the root, links followed there).  Members named
    outside ``dest`` (``..``) and links whose target leaves it are refused; everything
    a member's path passes through is resolved inside the root, so a link in the
    archive or in the container can only lead somewhere else inside it."""
    directories: list[tuple[str, tarfile.TarInfo]] = []
    tar = TarReader(open_source(source))
    for member in tar:
        relative = _member_path(member.name)
        if relative is None:
            continue  # the destination itself
        target = posixpath.join(dest, relative)
        contents = contents_of(relative, tar) if contents_of else tar
        extract_entry(view, dest, target, member, contents, options)
        if member.isdir():
            directories.append((target, member))
    for target, member in reversed(directories):  # children first changed their mtime
        set_entry_times(view, target, member)


def _member_path(name: str) -> str | None:
    """The member's path under the destination (absolute names rebased); refuses
    one leaving it."""
    cleaned = posixpath.normpath(name)
    if cleaned == ".." or cleaned.startswith("../"):
        raise InvalidParameter(f"{name!r} is outside of the destination directory")
    cleaned = posixpath.normpath("/" + cleaned).lstrip("/")
    return None if cleaned in ("", ".") else cleaned


def _check_link(dest: str, target: str, member: tarfile.TarInfo) -> None:
    """Refuse links whose target, read lexically, leaves the destination (moby's
    check); a hardlink's target is named from the destination."""
    if member.issym():
        base = posixpath.dirname(target)
    elif member.islnk():
        base = dest
    else:
        return
    joined = posixpath.normpath(posixpath.join(base, member.linkname.lstrip("/")
                                               if member.islnk() else member.linkname))
    if member.issym() and member.linkname.startswith("/"):
        return  # absolute: resolved inside the root when used
    inside = dest.rstrip("/") + "/"
    if joined != dest and not joined.startswith(inside):
        raise InvalidParameter(
            f"invalid link {member.name!r} -> {member.linkname!r}: outside of the "
            "destination directory")


def extract_entry(view: inroot.RootView, dest: str, target: str, member: tarfile.TarInfo,
                  tar: Contents, options: ExtractOptions) -> None:
    """Create the entry ``member`` describes at ``target`` (resolved in the root, under
    the extraction directory ``dest``), replacing what is in the way; a regular file's
    contents come from ``tar``.  A directory's times are left to
    :func:`set_entry_times`, once its children are in."""
    if options.confine_links:
        _check_link(dest, target, member)
    place = view.resolve(target, must_exist=False, make_dirs=True)
    try:
        if not place.name:
            raise InvalidParameter(f"{member.name!r} names a directory above it")
        if view.is_readonly(place.path):
            raise InvalidParameter(READONLY_VOLUME)
        if _make_room(place, member, options):
            _create(view, dest, place, member, tar)
        _set_owner_mode(place, member, options)
        if not member.isdir():
            _set_times_at(place, member)
    finally:
        os.close(place.parent)


def _make_room(place: inroot.Resolved, member: tarfile.TarInfo,
               options: ExtractOptions) -> bool:
    """Remove what is in the way; ``False`` when an existing directory stays."""
    try:
        existing = os.stat(place.name, dir_fd=place.parent, follow_symlinks=False)
    except FileNotFoundError:
        return True
    is_dir = stat.S_ISDIR(existing.st_mode)
    if options.no_overwrite_dir_non_dir and is_dir != member.isdir():
        what = ("directory", "non-directory") if is_dir else ("non-directory", "directory")
        raise InvalidParameter(f"cannot overwrite {what[0]} {place.path!r} with "
                               f"{what[1]} {member.name!r}")
    if is_dir and member.isdir():
        return False
    if is_dir:
        shutil.rmtree(place.name, dir_fd=place.parent)  # with dir_fd: never follows a link
    else:
        os.unlink(place.name, dir_fd=place.parent)
    return True


def _create(view: inroot.RootView, dest: str, place: inroot.Resolved,
            member: tarfile.TarInfo, tar: Contents) -> None:
    name, parent = place.name, place.parent
    if member.isreg():
        _write_file(place, tar)
    elif member.isdir():
        os.mkdir(name, 0o700, dir_fd=parent)
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=parent)
    elif member.islnk():
        source = view.resolve(posixpath.join(dest, member.linkname.lstrip("/")))
        try:
            os.link(source.name, name, src_dir_fd=source.parent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(source.parent)
    elif member.ischr() or member.isblk() or member.isfifo():
        kind = (stat.S_IFCHR if member.ischr() else
                stat.S_IFBLK if member.isblk() else stat.S_IFIFO)
        os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor),
                 dir_fd=parent)
    else:
        raise InvalidParameter(f"{member.name!r}: unsupported tar entry type")


def _write_file(place: inroot.Resolved, tar: Contents) -> None:
    fd = os.open(place.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | os.O_CLOEXEC, 0o600, dir_fd=place.parent)
    try:
        tar.write_contents(fd)
    finally:
        os.close(fd)


def _set_owner_mode(place: inroot.Resolved, member: tarfile.TarInfo,
                    options: ExtractOptions) -> None:
    uid, gid = options.owner or (member.uid, member.gid)
    os.chown(place.name, uid, gid, dir_fd=place.parent, follow_symlinks=False)
    if member.issym():
        return  # a link has no mode of its own
    fd = os.open(place.name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=place.parent)
    try:  # chmod through /proc: fchmod refuses O_PATH fds, fchmodat cannot not follow
        os.chmod(f"/proc/self/fd/{fd}", member.mode & 0o7777)
    finally:
        os.close(fd)


def _set_times_at(place: inroot.Resolved, member: tarfile.TarInfo) -> None:
    mtime = int(member.mtime * 10**9)
    os.utime(place.name, ns=(mtime, mtime), dir_fd=place.parent, follow_symlinks=False)


def set_entry_times(view: inroot.RootView, target: str, member: tarfile.TarInfo) -> None:
    place = view.resolve(target)
    try:
        _set_times_at(place, member)
    finally:
        os.close(place.parent)


def destination(view: inroot.RootView, path: str, container: str) -> str:
    """Where ``PUT .../archive`` unpacks: ``path`` with every link followed inside the
    root; 404 when missing, 400 when not a directory or in a read-only mount."""
    resolved = _resolve_existing(view, abs_path(path).rstrip("/") + "/.", path, container)
    try:
        if not stat.S_ISDIR(inroot.lstat(resolved).st_mode):
            raise InvalidParameter("extraction point is not a directory")
        if view.is_readonly(resolved.path):
            raise InvalidParameter(READONLY_VOLUME)
        return resolved.path
    finally:
        os.close(resolved.parent)

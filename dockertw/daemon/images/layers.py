"""Layer tars: diff IDs, chain IDs and safe extraction.

A layer's *diff ID* is the sha256 of its uncompressed tar stream, every byte of it
(trailing padding included); gzip, bzip2 and xz input is recognised by its magic
bytes.  A *chain ID* names a layer together with everything below it::

    chainID(1) = diffID(1)
    chainID(n) = sha256(chainID(n-1) + " " + diffID(n))

:func:`extract_layer` unpacks a tar stream into a directory without ever writing
outside it.  Every path is resolved component by component from a descriptor on the
root with ``O_NOFOLLOW``, so a symbolic link planted by an earlier entry cannot
redirect a later one; entries that try (``..`` paths, links pointing out, writes
through a symlink) are refused with :class:`~dockertw.errdefs.InvalidParameter`.
Absolute entry names are taken relative to the root, as Docker does.  Whiteouts
(``.wh.NAME``, ``.wh..wh..opq``) are applied, or with ``overlay_whiteouts=True``
converted to overlayfs form: a 0/0 character device and ``trusted.overlay.opaque=y``.
"""

from __future__ import annotations

import bz2
import contextlib
import decimal
import errno
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import attrs
from isal import igzip  # ISA-L: gzip read twice as fast as with zlib
from isal.igzip_lib import IsalError

from dockertw.daemon.images.tarsplit import Recorder
from dockertw.daemon.tarreader import Chunk, ChunkSource, FileChunks, TarReader, peek
from dockertw.errdefs import InvalidParameter, System

__all__ = [
    "Digesting",
    "LayerResult",
    "chain_id",
    "chain_ids",
    "diff_id",
    "extract_layer",
    "leaves_root",
    "open_uncompressed",
    "tar_members",
]

_CHUNK = 1 << 20
_ISAL_ERROR = cast(type[Exception], IsalError)  # its stubs call it an instance
_WHITEOUT_PREFIX = ".wh."
_WHITEOUT_META_PREFIX = ".wh..wh."
_OPAQUE_MARKER = ".wh..wh..opq"
_OVERLAY_OPAQUE = "trusted.overlay.opaque"
_XATTR_PREFIX = "SCHILY.xattr."
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_USER_ERRNOS = frozenset({errno.ENOTDIR, errno.EEXIST, errno.ELOOP, errno.EISDIR,
                          errno.ENOENT, errno.ENAMETOOLONG})
_IGNORED_XATTR_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP})
_COMPRESSED: tuple[tuple[bytes, str, Any], ...] = (
    (b"\x1f\x8b", "gzip", lambda raw: igzip.IGzipFile(fileobj=raw, mode="rb")),
    (b"BZh", "bzip2", bz2.BZ2File), (b"\xfd7zXZ\x00", "xz", lzma.LZMAFile))


@attrs.frozen
class LayerResult:
    """What extracting a layer found: its diff ID and Docker's size figure for it."""

    diff_id: str
    size: int


def chain_id(parent: str | None, diff_id: str) -> str:
    """The chain ID of a layer ``diff_id`` on top of the chain ``parent`` (``None``: base)."""
    if not parent:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of every layer of a ``rootfs.diff_ids`` list, bottom first."""
    chain: list[str] = []
    for layer in diff_ids:
        chain.append(chain_id(chain[-1] if chain else None, layer))
    return chain


# -- streams -------------------------------------------------------------------------


class _Decompressed(FileChunks):
    """A decompressing reader's chunks; its format errors are ``InvalidParameter``."""

    def __init__(self, stream: IO[bytes], kind: str) -> None:
        super().__init__(stream)
        self._kind = kind

    def read_chunks(self, limit: int) -> list[Chunk]:
        try:
            return super().read_chunks(limit)
        except (EOFError, OSError, zlib.error, _ISAL_ERROR, lzma.LZMAError) as error:
            raise InvalidParameter(f"invalid {self._kind} layer data: {error}") from None


class Digesting:
    """A chunk source that hashes (sha256) and counts every byte taken through it, and
    shows it to a tar-split recorder if given one."""

    def __init__(self, source: ChunkSource, recorder: Recorder | None = None) -> None:
        self._source = source
        self._recorder = recorder
        self.hash = hashlib.sha256()
        self.size = 0

    def read_chunks(self, limit: int) -> list[Chunk]:
        chunks = self._source.read_chunks(limit)
        for chunk in chunks:
            self.hash.update(chunk)
            self.size += len(chunk)
            if self._recorder is not None:
                self._recorder.feed(chunk)
        return chunks

    def drain(self) -> None:
        while self.read_chunks(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def open_uncompressed(stream: ChunkSource | IO[bytes]) -> ChunkSource:
    """``stream`` (a chunk source or a file) as the chunks of an uncompressed tar:
    gzip, bzip2 and xz are sniffed and undone, plain input passes through as it is."""
    head, source = peek(stream, 6)
    for magic, kind, opener in _COMPRESSED:
        if head.startswith(magic):
            return _Decompressed(opener(source), kind)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidParameter("zstd-compressed layers are not supported")
    return source


def diff_id(stream: ChunkSource | IO[bytes]) -> str:
    """The diff ID of a (possibly compressed) layer tar, without unpacking it."""
    digesting = Digesting(open_uncompressed(stream))
    digesting.drain()
    return digesting.digest


# -- paths ---------------------------------------------------------------------------


class _BadEntry(Exception):
    """An entry refused; the message says why and is prefixed with the entry's name."""


def leaves_root(cleaned: str) -> bool:
    """True if the cleaned relative path ``cleaned`` climbs above its root."""
    return cleaned == ".." or cleaned.startswith("../")


def _relative_parts(name: str, what: str) -> tuple[str, ...]:
    """Clean ``name`` lexically (as Go's ``filepath.Clean``) into root-relative parts."""
    if "\0" in name:
        raise _BadEntry(f"{what} contains a NUL byte")
    cleaned = posixpath.normpath(name) if name else "."
    if leaves_root(cleaned):
        raise _BadEntry(f"{what} escapes the layer root")
    cleaned = cleaned.lstrip("/")
    return tuple(cleaned.split("/")) if cleaned not in ("", ".") else ()


def _check_symlink_target(parts: tuple[str, ...], target: str) -> None:
    """Refuse a relative symlink that leads above the root (absolute ones stay inside)."""
    if "\0" in target or not target:
        raise _BadEntry(f'invalid symlink target "{target}"')
    if target.startswith("/"):
        return
    if leaves_root(posixpath.normpath(posixpath.join("/".join(parts[:-1]), target))):
        raise _BadEntry(f'symlink target "{target}" escapes the layer root')


def _open_child_dir(parent: int, name: str, create: bool) -> int | None:
    """Open directory ``name`` under ``parent`` without following a symlink."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            return None
    os.mkdir(name, 0o755, dir_fd=parent)
    descriptor = os.open(name, _DIR_FLAGS, dir_fd=parent)
    os.fchmod(descriptor, 0o755)
    return descriptor


def _walk_refusal(parent: int, name: str, shown: str) -> _BadEntry:
    try:
        mode = os.lstat(name, dir_fd=parent).st_mode
    except OSError:
        mode = 0
    if stat.S_ISLNK(mode):
        return _BadEntry(f'"{shown}" is a symbolic link; refusing to write through it')
    return _BadEntry(f'"{shown}" is not a directory')


def _walk(root: int, parts: tuple[str, ...], create: bool) -> int | None:
    """A new descriptor on the directory ``parts`` under ``root``; ``None`` if missing."""
    current = os.open(".", _DIR_FLAGS, dir_fd=root)
    for index, part in enumerate(parts):
        try:
            child = _open_child_dir(current, part, create)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                os.close(current)
                raise
            refusal = _walk_refusal(current, part, "/".join(parts[:index + 1]))
            os.close(current)
            raise refusal from None
        os.close(current)
        if child is None:
            return None
        current = child
    return current


def _remove(parent: int, name: str) -> bool:
    """Remove ``name`` (any kind, a directory with its contents) from ``parent``."""
    try:
        mode = os.lstat(name, dir_fd=parent).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)
    return True


# -- metadata ------------------------------------------------------------------------


def _pax_time_ns(member: tarfile.TarInfo, key: str) -> int | None:
    text = member.pax_headers.get(key)
    if text is None:
        return None
    try:
        return int(decimal.Decimal(text) * 1_000_000_000)
    except decimal.InvalidOperation:
        return None


def _times_ns(member: tarfile.TarInfo) -> tuple[int, int]:
    """``(atime, mtime)`` in nanoseconds; Docker never sets an atime before the mtime."""
    mtime = _pax_time_ns(member, "mtime")
    if mtime is None:
        mtime = int(member.mtime) * 1_000_000_000
    atime = _pax_time_ns(member, "atime")
    return (mtime if atime is None or atime < mtime else atime), mtime


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    """PAX ``SCHILY.xattr.*`` records, minus overlayfs' own ``trusted.overlay.*``."""
    found = []
    for key, value in member.pax_headers.items():
        if key.startswith(_XATTR_PREFIX):
            name = key[len(_XATTR_PREFIX):]
            if name and not name.startswith("trusted.overlay."):
                found.append((name, value.encode("utf-8", "surrogateescape")))
    return found


def _set_xattrs(target: int | str, member: tarfile.TarInfo) -> None:
    """Set the entry's xattrs on a descriptor, or on a path without following it."""
    for name, value in _xattrs(member):
        try:
            if isinstance(target, int):
                os.setxattr(target, name, value)
            else:
                os.setxattr(target, name, value, follow_symlinks=False)
        except OSError as error:
            if error.errno not in _IGNORED_XATTR_ERRNOS:
                raise


def _proc_path(parent: int, name: str) -> str:
    """A path to ``name`` in the directory ``parent`` that does not follow ``name``."""
    return f"/proc/self/fd/{parent}/{name}"


# -- extraction ----------------------------------------------------------------------


class _Extractor:
    """Applies tar entries one by one under the directory descriptor ``root``."""

    def __init__(self, root: int, overlay: bool, recorder: Recorder | None = None) -> None:
        self._root = root
        self._overlay = overlay
        self._recorder = recorder
        self._privileged = os.geteuid() == 0
        self._unpacked: set[tuple[str, ...]] = set()
        self._directory_times: list[tuple[tuple[str, ...], tuple[int, int]]] = []
        self._cached: tuple[tuple[str, ...], int] | None = None
        self.size = 0

    # directories

    def _directory(self, parts: tuple[str, ...], create: bool) -> int | None:
        """A borrowed descriptor on ``parts`` (cached: entries come grouped by directory)."""
        if self._cached is not None and self._cached[0] == parts:
            return self._cached[1]
        descriptor = _walk(self._root, parts, create)
        if descriptor is not None:
            self.close()
            self._cached = (parts, descriptor)
        return descriptor

    def _removed(self, parts: tuple[str, ...]) -> None:
        """Forget the cached directory if ``parts`` was it or one of its ancestors."""
        if self._cached is not None and self._cached[0][:len(parts)] == parts:
            self.close()

    def _remove(self, parent: int, parent_parts: tuple[str, ...], name: str) -> None:
        self._removed(parent_parts + (name,))
        _remove(parent, name)

    def close(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    # entries

    def apply(self, archive: TarReader, member: tarfile.TarInfo) -> None:
        """Apply one entry; a refusal raises ``InvalidParameter`` naming the entry."""
        try:
            self._apply(archive, member)
        except _BadEntry as error:
            raise InvalidParameter(f'invalid tar entry "{member.name}": {error}') from None
        except ValueError as error:
            raise InvalidParameter(f'invalid tar entry "{member.name}": {error}') from None
        except tarfile.TarError as error:
            raise InvalidParameter(f"invalid tar stream: {error}") from None
        except OSError as error:
            kind = InvalidParameter if error.errno in _USER_ERRNOS else System
            raise kind(f'failed to extract tar entry "{member.name}": '
                       f"{error.strerror or error}") from None

    def _apply(self, archive: TarReader, member: tarfile.TarInfo) -> None:
        parts = _relative_parts(member.name, "path")
        if not parts:
            if not member.isdir():
                raise _BadEntry("the layer root must be a directory")
            return
        base = parts[-1]
        if parts[0].startswith(_WHITEOUT_META_PREFIX) and parts != (_OPAQUE_MARKER,):
            return  # AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the tree
        if base.startswith(_WHITEOUT_PREFIX):
            self._whiteout(parts)
        else:
            self._create(archive, member, parts)

    # whiteouts

    def _whiteout(self, parts: tuple[str, ...]) -> None:
        parent_parts, base = parts[:-1], parts[-1]
        if base == _OPAQUE_MARKER:
            self._opaque(parent_parts)
            return
        name = base[len(_WHITEOUT_PREFIX):]
        if name in ("", ".", ".."):
            raise _BadEntry("whiteout names no file")
        parent = self._directory(parent_parts, create=self._overlay)
        if parent is None:
            return
        self._remove(parent, parent_parts, name)
        if self._overlay:
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)

    def _opaque(self, parts: tuple[str, ...]) -> None:
        directory = self._directory(parts, create=True)
        assert directory is not None
        if self._overlay:
            os.setxattr(directory, _OVERLAY_OPAQUE, b"y")
        else:
            self._clear_lower(directory, parts)

    def _clear_lower(self, directory: int, parts: tuple[str, ...]) -> None:
        """Remove what this layer did not unpack from ``directory`` (an opaque dir)."""
        for name in os.listdir(directory):
            child = parts + (name,)
            if child not in self._unpacked:
                self._remove(directory, parts, name)
                continue
            if not stat.S_ISDIR(os.lstat(name, dir_fd=directory).st_mode):
                continue
            descriptor = os.open(name, _DIR_FLAGS, dir_fd=directory)
            try:
                self._clear_lower(descriptor, child)
            finally:
                os.close(descriptor)

    # creation

    def _create(self, archive: TarReader, member: tarfile.TarInfo,
                parts: tuple[str, ...]) -> None:
        parent = self._directory(parts[:-1], create=True)
        assert parent is not None
        name = parts[-1]
        if member.issym():
            _check_symlink_target(parts, member.linkname)
        link_parts = _relative_parts(member.linkname, "hardlink target") if member.islnk() else ()
        self._clear_for(parent, parts, member)
        if member.isreg():
            self._record_contents(member, parts)
            self._write_file(archive, member, parent, name)
        elif member.isdir():
            self._make_directory(member, parent, parts)
        elif member.issym():
            self._make_symlink(member, parent, name)
        elif member.islnk():
            self._make_hardlink(link_parts, parent, name)
        elif not self._make_special(member, parent, name):
            return
        if not self._overlay:  # only opaque directories in apply mode need to know
            self._unpacked.update(parts[:end] for end in range(1, len(parts) + 1))

    def _clear_for(self, parent: int, parts: tuple[str, ...], member: tarfile.TarInfo) -> None:
        """Remove what is at the entry's path unless both it and the entry are directories."""
        try:
            mode = os.lstat(parts[-1], dir_fd=parent).st_mode
        except FileNotFoundError:
            return
        if not (stat.S_ISDIR(mode) and member.isdir()):
            self._remove(parent, parts[:-1], parts[-1])

    def _record_contents(self, member: tarfile.TarInfo, parts: tuple[str, ...]) -> None:
        """Tell the recorder these contents will be on disk at ``parts`` (not sparse)."""
        if self._recorder is not None and member.sparse is None and member.size:
            self._recorder.file(member.offset_data, member.size, "/".join(parts))

    def _write_file(self, archive: TarReader, member: tarfile.TarInfo, parent: int,
                    name: str) -> None:
        descriptor = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent)
        try:
            archive.write_contents(descriptor)
            self.size += member.size
            self._finish(descriptor, member)
            os.utime(descriptor, ns=_times_ns(member))
        finally:
            os.close(descriptor)

    def _make_directory(self, member: tarfile.TarInfo, parent: int,
                        parts: tuple[str, ...]) -> None:
        with contextlib.suppress(FileExistsError):  # an earlier entry made it
            os.mkdir(parts[-1], 0o700, dir_fd=parent)
        descriptor = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        try:
            self._finish(descriptor, member)
        finally:
            os.close(descriptor)
        self._directory_times.append((parts, _times_ns(member)))

    def _make_symlink(self, member: tarfile.TarInfo, parent: int, name: str) -> None:
        os.symlink(member.linkname, name, dir_fd=parent)
        self.size += len(os.fsencode(member.linkname))
        if self._privileged:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        _set_xattrs(_proc_path(parent, name), member)
        os.utime(name, ns=_times_ns(member), dir_fd=parent, follow_symlinks=False)

    def _make_hardlink(self, target: tuple[str, ...], parent: int, name: str) -> None:
        if not target:
            raise _BadEntry("hardlink to the layer root")
        source = _walk(self._root, target[:-1], create=False)
        shown = "/".join(target)
        if source is None:
            raise _BadEntry(f'hardlink target "{shown}" does not exist')
        try:
            self._link(source, target[-1], parent, name, shown)
        finally:
            os.close(source)

    @staticmethod
    def _link(source: int, source_name: str, parent: int, name: str, shown: str) -> None:
        try:
            mode = os.lstat(source_name, dir_fd=source).st_mode
        except FileNotFoundError:
            raise _BadEntry(f'hardlink target "{shown}" does not exist') from None
        if stat.S_ISDIR(mode):
            raise _BadEntry(f'hardlink target "{shown}" is a directory')
        os.link(source_name, name, src_dir_fd=source, dst_dir_fd=parent, follow_symlinks=False)

    def _make_special(self, member: tarfile.TarInfo, parent: int, name: str) -> bool:
        """Devices (root only; skipped otherwise, as rootless Docker does) and FIFOs."""
        if member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent)
        elif member.ischr() or member.isblk():
            if not self._privileged:
                return False
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            os.mknod(name, kind | 0o600, device, dir_fd=parent)
        else:
            raise _BadEntry(f"unsupported tar entry type {member.type!r}")
        self._finish_special(member, parent, name)
        return True

    def _finish_special(self, member: tarfile.TarInfo, parent: int, name: str) -> None:
        if self._privileged:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        _set_xattrs(_proc_path(parent, name), member)
        os.chmod(name, member.mode & 0o7777, dir_fd=parent)
        os.utime(name, ns=_times_ns(member), dir_fd=parent, follow_symlinks=False)

    def _finish(self, descriptor: int, member: tarfile.TarInfo) -> None:
        """Ownership, then xattrs, then mode: chown clears set-id bits and capabilities."""
        if self._privileged:
            os.fchown(descriptor, member.uid, member.gid)
        _set_xattrs(descriptor, member)
        os.fchmod(descriptor, member.mode & 0o7777)

    def settle(self, position: int) -> None:
        """Entries before ``position`` are done (the recorder may write them out)."""
        if self._recorder is not None:
            self._recorder.settle(position)

    def finish(self) -> None:
        """Set directory times last: creating entries inside changes them."""
        self.close()
        for parts, times in self._directory_times:
            try:
                descriptor = _walk(self._root, parts, create=False)
            except (_BadEntry, OSError):
                continue  # replaced or removed by a later entry
            if descriptor is not None:
                os.utime(descriptor, ns=times)
                os.close(descriptor)


def tar_members(archive: TarReader, what: str) -> Iterator[tarfile.TarInfo]:
    """The members of ``archive``; a malformed stream is refused as ``invalid {what}``."""
    members = iter(archive)
    while True:
        try:
            member = next(members, None)
        except tarfile.TarError as error:
            raise InvalidParameter(f"invalid {what}: {error}") from None
        if member is None:
            return
        yield member


def _extract_all(archive: TarReader, extractor: _Extractor) -> None:
    for member in tar_members(archive, "tar stream"):
        extractor.apply(archive, member)
        extractor.settle(archive.member_end)


def extract_layer(stream: ChunkSource | IO[bytes], target: Path, *,
                  overlay_whiteouts: bool = False,
                  record: IO[bytes] | None = None) -> LayerResult:
    """Unpack the layer tar ``stream`` (plain or compressed) into the directory ``target``.

    ``stream`` is a chunk source (a streamed request body) or a binary file.  Returns
    the diff ID (every byte of the uncompressed stream is hashed) and the layer size
    (regular-file bytes plus symlink target lengths, as Docker counts).
    With ``record`` (a binary file), the tar-split record of the stream is written
    there (see :mod:`~dockertw.daemon.images.tarsplit`).
    """
    recorder = Recorder(record) if record is not None else None
    digesting = Digesting(open_uncompressed(stream), recorder)
    root = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    extractor = _Extractor(root, overlay_whiteouts, recorder)
    try:
        _extract_all(TarReader(digesting, sparse=True), extractor)
        extractor.finish()
        digesting.drain()  # what follows the end of the archive is part of the diff ID
    finally:
        extractor.close()
        os.close(root)
    if recorder is not None:
        recorder.close()
    return LayerResult(diff_id=digesting.digest, size=extractor.size)

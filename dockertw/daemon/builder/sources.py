"""What ``COPY`` and ``ADD`` copy: the sources found in a tree (the context, another
image's files, a download), and their content hashes for the build cache.

As moby's ``copier``: a source is cleaned of a leading ``/`` and ``./``; wildcards
(Go's ``filepath.Match``) select every entry of the tree whose path matches; links
are followed inside the tree.  A file's hash covers its name, mode, owner, size, link
target and contents (not its times, so a context re-made with new times still hits
the cache): ``file:<sha256>``; a directory's covers every entry under it:
``dir:<sha256>``.  Blocking: call it from a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import attrs

from dockertw.daemon.builder.patterns import BadPattern, go_match, has_wildcards
from dockertw.daemon.containers.files import archive, inroot

__all__ = ["SourceTree", "CopyInfo", "SourceError", "copy_infos", "source_hash",
           "multi_hash"]

_READ = 1 << 20


class SourceError(Exception):
    """A source that cannot be copied (Docker's message)."""


@attrs.define(eq=False)
class SourceTree:
    """An open directory to copy from; ``in_context`` for the build context (its
    missing files get Docker's "excluded by .dockerignore" message); ``download``
    holds one downloaded file, never unpacked by ``ADD``."""

    fd: int
    in_context: bool = True
    download: str = ""
    hashes: dict[str, str] = attrs.field(factory=dict)
    #: contents' sha256 already known (taken while the context was unpacked)
    digests: dict[str, str] = attrs.field(factory=dict)

    def hash(self, path: str) -> str:
        """The content hash of ``path`` (links followed; cached)."""
        found = self.hashes.get(path)
        if found is None:
            found = self.hashes[path] = _entry_hash(self.fd, path, self.digests)
        return found

    def hash_all(self, paths: list[str]) -> list[str]:
        """The hashes of ``paths``, computed two at a time (sha256 lets go of the GIL:
        a large context hashes in about half the time on two cores)."""
        missing = [path for path in paths if path not in self.hashes]
        if len(missing) > 1:
            with ThreadPoolExecutor(2, thread_name_prefix="dockertw-hash") as pool:
                for path, found in zip(missing, pool.map(
                        lambda path: _entry_hash(self.fd, path, self.digests), missing),
                        strict=True):
                    self.hashes[path] = found
        return [self.hash(path) for path in paths]


@attrs.frozen
class CopyInfo:
    """One source: its tree, its path there and its hash."""

    tree: SourceTree
    path: str
    hash: str
    no_decompress: bool = False


def _entry_hash(root: int, path: str, digests: dict[str, str]) -> str:
    """sha256 of the entry's header fields and of its contents' own sha256."""
    try:
        found = inroot.resolve(root, path, follow_last=True)
    except OSError:
        return path  # as moby: a broken link hashes as its name
    try:
        info = inroot.lstat(found)
        name = found.path.lstrip("/")
        digest = hashlib.sha256(_header_key(name, info, found).encode())
        if stat.S_ISREG(info.st_mode) and info.st_size:
            digest.update((digests.get(name) or _contents_digest(found, info)).encode())
        return digest.hexdigest()
    finally:
        os.close(found.parent)


def _contents_digest(found: inroot.Resolved, info: os.stat_result) -> str:
    digest = hashlib.sha256()
    with archive.open_regular(found.parent, found.name, info) as fd:
        _feed(digest, fd)
    return digest.hexdigest()


def _header_key(name: str, info: os.stat_result, found: inroot.Resolved) -> str:
    link = os.readlink(found.name, dir_fd=found.parent) if stat.S_ISLNK(info.st_mode) else ""
    size = info.st_size if stat.S_ISREG(info.st_mode) else 0
    return (f"name{name}\0mode{info.st_mode:o}\0uid{info.st_uid}\0gid{info.st_gid}\0"
            f"size{size}\0link{link}\0rdev{info.st_rdev}\0")


def _feed(digest: hashlib._Hash, fd: int) -> None:
    while True:
        data = os.read(fd, _READ)
        if not data:
            return
        digest.update(data)


def multi_hash(prefix: str, hashes: list[str]) -> str:
    """moby's ``hashStringSlice``: ``prefix:`` and the sha256 of the joined hashes."""
    return f"{prefix}:" + hashlib.sha256(",".join(hashes).encode()).hexdigest()


def source_hash(infos: list[CopyInfo]) -> str:
    """The hash a step's cache key names: one source's own, else all of them."""
    if len(infos) == 1:
        return infos[0].hash
    return multi_hash("multi", [info.hash for info in infos])


def walk(root: int, directory: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under ``directory`` (relative, links not followed), in lexical
    order as Go's ``filepath.WalkDir``, with its status; ``directory`` first."""
    found = inroot.resolve(root, directory or ".", follow_last=True)
    try:
        with inroot.open_dir(found) as fd:
            yield directory, os.fstat(fd)
            yield from _children(fd, directory)
    finally:
        os.close(found.parent)


def _children(fd: int, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
    for name in sorted(os.listdir(fd)):
        path = f"{prefix}/{name}" if prefix else name
        info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        yield path, info
        if stat.S_ISDIR(info.st_mode):
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                            | os.O_CLOEXEC, dir_fd=fd)
            try:
                yield from _children(child, path)
            finally:
                os.close(child)


def _clean(path: str) -> str:
    """moby's trimming: one leading ``/``, then one leading ``./``; ``.`` is the root."""
    path = path.removeprefix("/").removeprefix("./")
    return "" if path == "." else path


def _missing(tree: SourceTree, path: str) -> SourceError:
    message = f"stat {path}: file does not exist"
    if tree.in_context:
        message = "file not found in build context or excluded by .dockerignore: " + message
    return SourceError(message)


def _info(tree: SourceTree, path: str) -> CopyInfo:
    """One source path, no wildcards: a file's or a directory's hash."""
    try:
        found = inroot.resolve(tree.fd, path or ".", follow_last=True)
    except (FileNotFoundError, NotADirectoryError):
        raise _missing(tree, path) from None
    try:
        is_dir = stat.S_ISDIR(inroot.lstat(found).st_mode)
        resolved = found.path.lstrip("/")
    finally:
        os.close(found.parent)
    if not is_dir:
        return CopyInfo(tree, path, "file:" + tree.hash(resolved), bool(tree.download))
    hashes = tree.hash_all([entry for entry, _ in walk(tree.fd, resolved) if entry])
    return CopyInfo(tree, path, multi_hash("dir", sorted(hashes)))


def _matching(tree: SourceTree, pattern: str) -> list[CopyInfo]:
    try:
        go_match(pattern, ".")
    except BadPattern as error:
        raise SourceError(str(error)) from None
    return [_info(tree, entry) for entry, _ in walk(tree.fd, "")
            if entry and go_match(pattern, entry)]


def copy_infos(tree: SourceTree, sources: list[str]) -> list[CopyInfo]:
    """The sources of one instruction found in ``tree``; :class:`SourceError` when
    one is missing or none matched."""
    infos: list[CopyInfo] = []
    for source in sources or [tree.download]:
        path = _clean(source)
        infos += _matching(tree, path) if has_wildcards(path) else [_info(tree, path)]
    if not infos:
        raise SourceError("no source files were specified")
    return infos

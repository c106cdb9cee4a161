"""The build context: the request's tar, a remote tarball or a git repository,
unpacked into a private directory, and the Dockerfile read from it.

As moby's ``remotecontext``: a tar body (plain, gzip, bzip2 or xz) is unpacked with
the ``docker cp`` extraction (members and links leaving the directory refused); a
``remote`` git URL (``git://``, ``git@``, ``github.com/``, or an http(s) URL ending in
``.git``, with ``#ref:subdir``) is fetched with ``git``; another http(s) URL is a
tarball context, or a plain-text Dockerfile without a context.  The Dockerfile and
``.dockerignore`` are removed from the context when ``.dockerignore`` names them; the
rest of ``.dockerignore`` is the client's business, as with Docker.  Blocking: call
it from a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from dockertw.daemon.builder.patterns import ignore_matcher, read_dockerignore
from dockertw.daemon.containers.files import archive, inroot
from dockertw.daemon.tarreader import TarReader, peek, write_all
from dockertw.errdefs import Forbidden, InvalidParameter, NotFound, System

__all__ = ["BuildContext", "Progress", "open_context", "is_git_url", "is_url",
           "http_get", "DEFAULT_DOCKERFILE"]

DEFAULT_DOCKERFILE = "Dockerfile"
_ROOT_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_GIT_FRAGMENT = re.compile(r"\.git(?:#.+)?$")
_ACCEPTABLE_MIME = re.compile(r"(?:application/(?:(?:x-)?tar|octet-stream|(?:(?:x-)?"
                              r"(?:gzip|bzip2?|xz)))|(?:text/plain))")
_PREAMBLE = 100
_CHUNK = 1 << 20

#: ``(current, total)`` bytes of a download so far (called in the worker thread).
Progress = Callable[[int, int], None]


@attrs.define
class BuildContext:
    """The files of a build (``root``: ``None`` for a Dockerfile without context) and
    the Dockerfile's text; :meth:`close` removes the directory."""

    directory: Path
    root: Path | None
    dockerfile: str
    dockerfile_name: str
    #: the sha256 of each file's contents, taken as the tar was unpacked
    digests: dict[str, str] = attrs.field(factory=dict)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    @contextlib.contextmanager
    def root_fd(self) -> Iterator[int]:
        """The context directory, open (the caller resolves paths inside it)."""
        if self.root is None:
            raise System("missing build context")
        fd = os.open(self.root, _ROOT_FLAGS)
        try:
            yield fd
        finally:
            os.close(fd)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def is_git_url(text: str) -> bool:
    """moby's ``urlutil.IsGitURL``."""
    if is_url(text) and _GIT_FRAGMENT.search(text):
        return True
    return text.startswith(("git://", "github.com/", "git@"))


def open_context(directory: Path, body: IO[bytes], remote: str, dockerfile_name: str,
                 progress: Progress) -> BuildContext:
    """The context of a build in ``directory`` (created; removed again on failure)."""
    directory.mkdir(mode=0o700)
    try:
        return _open(directory, body, remote, dockerfile_name or DEFAULT_DOCKERFILE,
                     progress)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def _open(directory: Path, body: IO[bytes], remote: str, name: str,
          progress: Progress) -> BuildContext:
    root = directory / "context"
    digests: dict[str, str] = {}
    if not remote:
        _unpack(body, root, digests)
    elif is_git_url(remote):
        root = _clone(remote, directory / "git")
    elif is_url(remote):
        text = _download_context(remote, root, progress, digests)
        if text is not None:
            return BuildContext(directory, None, text, name)
    else:
        raise System(f"remoteURL ({remote}) could not be recognized as URL")
    return BuildContext(directory, root, _take_dockerfile(root, name), name, digests)


class _Digesting:
    """A member's contents written to its file and hashed on the way (one pass over
    the context, as moby's tarsum while it unpacks)."""

    def __init__(self, tar: TarReader, digests: dict[str, str], path: str) -> None:
        self._tar, self._digests, self._path = tar, digests, path
        digests.pop(path, None)  # a later member of the same name replaces the file

    def write_contents(self, fd: int) -> None:
        digest = hashlib.sha256()
        for chunks in self._tar.contents():
            for chunk in chunks:
                digest.update(chunk)
            write_all(fd, chunks)
        self._digests[self._path] = digest.hexdigest()


def _unpack(source: Any, root: Path, digests: dict[str, str]) -> None:
    root.mkdir(mode=0o755)
    fd = os.open(root, _ROOT_FLAGS)
    try:
        with archive.as_docker_errors():
            archive.extract(inroot.RootView(fd), "/", source, archive.ExtractOptions(),
                            lambda path, tar: _Digesting(tar, digests, path))
    finally:
        os.close(fd)


# -- the Dockerfile -------------------------------------------------------------------


def _read_inside(root: Path, path: str) -> bytes | None:
    """The file ``path`` (links followed inside ``root``); ``None`` when missing."""
    fd = os.open(root, _ROOT_FLAGS)
    try:
        found = inroot.resolve(fd, path, follow_last=True)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(fd)
    try:
        file = os.open(found.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                       dir_fd=found.parent)
    except (FileNotFoundError, IsADirectoryError):
        return None
    finally:
        os.close(found.parent)
    with os.fdopen(file, "rb") as opened:
        return opened.read()


def _take_dockerfile(root: Path, name: str) -> str:
    data = _read_inside(root, name)
    if data is None and name == DEFAULT_DOCKERFILE:
        data = _read_inside(root, name.lower())
    if data is None:
        raise System(f"Cannot locate specified Dockerfile: {name}")
    _remove_ignored(root, name)
    return data.decode("utf-8", "replace")


def _remove_ignored(root: Path, dockerfile_name: str) -> None:
    """The Dockerfile and ``.dockerignore`` leave the context if it names them."""
    ignore = _read_inside(root, ".dockerignore")
    if ignore is None:
        return
    try:
        excluded = ignore_matcher(read_dockerignore(ignore.decode("utf-8", "replace")))
    except ValueError as error:
        raise InvalidParameter(str(error)) from None
    for name in (".dockerignore", dockerfile_name):
        if excluded(name):
            _remove_inside(root, name)


def _remove_inside(root: Path, path: str) -> None:
    fd = os.open(root, _ROOT_FLAGS)
    try:
        found = inroot.resolve(fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return
    finally:
        os.close(fd)
    try:
        if found.name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(found.name, dir_fd=found.parent)
    except IsADirectoryError:
        shutil.rmtree(found.name, dir_fd=found.parent)
    finally:
        os.close(found.parent)


# -- remote contexts ------------------------------------------------------------------


def _opener(url: str) -> urllib.request.OpenerDirector:
    """Proxies from the environment, never for a loopback host (as Go's)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.startswith("127.") or host == "::1":
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def http_get(url: str) -> Any:
    """moby's ``GetWithStatusError``: a response, or an error of the status's kind."""
    try:
        response = _opener(url).open(url, timeout=60)
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace").strip()
        message = f"failed to GET {url} with status {error.code} {error.reason}: {body}"
        kind = {404: NotFound, 400: InvalidParameter, 403: Forbidden}.get(error.code, System)
        raise kind(message) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise System(f"Get {url!r}: {reason}") from None
    return response


def _sniffed_type(preamble: bytes) -> str:
    """What Go's ``http.DetectContentType`` says of a context's first bytes."""
    if preamble.startswith(b"\x1f\x8b\x08"):
        return "application/x-gzip"
    if any(byte < 0x20 and byte not in b"\t\n\x0c\r\x1b" for byte in preamble):
        return "application/octet-stream"
    return "text/plain"


def _content_type(declared: str, preamble: bytes, url: str) -> str:
    content_type = declared
    if not declared or declared == "application/octet-stream":
        content_type = _sniffed_type(preamble)
    found = _ACCEPTABLE_MIME.search(content_type)
    if found is None:
        raise System(f"error detecting content type for remote {url}: unsupported "
                     f'Content-Type "{declared}"')
    return found.group(0)


class _Counted:
    """A response body read as a file, reporting progress."""

    def __init__(self, source: Any, total: int, progress: Progress) -> None:
        self._source, self._total, self._progress = source, total, progress
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._source.read(size if size >= 0 else _CHUNK)
        self._read += len(data)
        self._progress(self._read, self._total)
        return data


def _download_context(url: str, root: Path, progress: Progress,
                      digests: dict[str, str]) -> str | None:
    """Unpack a remote tarball into ``root``; a plain-text remote is the Dockerfile
    (answered, nothing unpacked)."""
    try:
        response = http_get(url)
    except (NotFound, InvalidParameter, Forbidden, System) as error:
        raise type(error)(f"error downloading remote context {url}: {error}") from None
    with response:
        preamble, replayed = peek(response, _PREAMBLE)
        if not preamble:
            raise System(f"error detecting content type for remote {url}: empty response")
        content_type = _content_type(response.headers.get_content_type()
                                     if response.headers.get("Content-Type") else "",
                                     preamble, url)
        if content_type == "text/plain":
            return replayed.read().decode("utf-8", "replace")
        total = int(response.headers.get("Content-Length") or -1)
        _unpack(_Counted(replayed, total, progress), root, digests)
    return None


def _git_ref(remote: str) -> tuple[str, str, str]:
    """The fetch URL, ref (``master`` by default) and subdirectory of a git remote."""
    if not remote.startswith("git@") and urllib.parse.urlsplit(remote).scheme not in (
            "git", "http", "https", "ssh"):
        remote = "https://" + remote
    url, _, fragment = remote.partition("#")
    ref, _, subdir = fragment.partition(":")
    ref = ref or "master"
    if ref.startswith("-"):
        raise InvalidParameter(f"invalid refspec: {ref}")
    return url, ref, subdir


def _git(directory: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "GIT_PROTOCOL_FROM_USER": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": "/dev/null", "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", "-c", "protocol.file.allow=never", *args],
                          cwd=directory, env=env, capture_output=True, check=False,
                          timeout=600)


def _git_checked(directory: Path, message: str, *args: str) -> None:
    done = _git(directory, *args)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode("utf-8", "replace")
        raise System(f"{message}: {output}")


def _clone(remote: str, checkout: Path) -> Path:
    url, ref, subdir = _git_ref(remote)
    checkout.mkdir(mode=0o700)
    _git_checked(checkout, f"failed to init repo at {checkout}", "init", "-q")
    _git_checked(checkout, f"failed add origin repo at {url}", "remote", "add", "origin", url)
    depth = ("--depth", "1") if urllib.parse.urlsplit(url).scheme in ("git", "ssh") \
        or url.startswith("git@") else ()
    _git_checked(checkout, "error fetching", "fetch", *depth, "origin", "--", ref)
    if _git(checkout, "checkout", "-q", ref).returncode != 0:
        _git_checked(checkout, f"error checking out {ref}", "checkout", "-q", "FETCH_HEAD")
    _git_checked(checkout, "error initializing submodules", "submodule", "update",
                 "--init", "--recursive", "--depth=1")
    return _subdirectory(checkout, subdir)


def _subdirectory(checkout: Path, subdir: str) -> Path:
    if not subdir:
        return checkout
    fd = os.open(checkout, _ROOT_FLAGS)
    try:
        found = inroot.resolve(fd, subdir, follow_last=True)
        os.close(found.parent)
    except OSError as error:
        raise System(f"error setting git context, {subdir!r} not within git root: "
                     f"{error}") from None
    finally:
        os.close(fd)
    target = checkout / found.path.lstrip("/")
    if not target.is_dir() or target.is_symlink():
        raise System(f"error setting git context, not a directory: {target}")
    return target

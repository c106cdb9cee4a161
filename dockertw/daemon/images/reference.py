"""Docker image references: parsing, normalisation and the familiar form.

The grammar and the error messages are those of ``docker/distribution/reference``
as Docker Engine 20.10 uses it::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]
    tag        := [\\w][\\w.-]{0,127}
    digest     := algorithm ":" hex

``busybox`` normalises to ``docker.io/library/busybox`` and ``busybox:latest`` is its
familiar string.  Every parse failure raises :class:`~dockertw.errdefs.InvalidParameter`
with Docker's message.
"""

from __future__ import annotations

import re

import attrs

from dockertw.errdefs import InvalidParameter

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "NAME_TOTAL_LENGTH_MAX",
    "Reference",
    "parse",
    "parse_normalized",
    "parse_any",
    "validate_tag",
    "validate_digest",
    "is_image_id",
    "is_id_prefix",
    "image_id_hex",
    "short_id",
]

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")(?::[0-9]+)?"
# The separator is `[-]+` rather than the documented `[-]*`: the same language, but
# without the ambiguity that makes a backtracking engine explode on long bad input.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN + r"/)?" + _REMOTE_NAME
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(
    r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII
)
_ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

_INVALID_FORMAT = "invalid reference format"
_UPPERCASE = "invalid reference format: repository name must be lowercase"
_NAME_EMPTY = "repository name must have at least one component"
_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"


@attrs.frozen
class Reference:
    """A parsed reference: ``domain/path[:tag][@digest]``; digest-only when ``path`` is empty."""

    domain: str = ""
    path: str = ""
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The full repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def repository(self) -> str:
        """The familiar repository name, e.g. ``busybox`` or ``localhost:5000/a/b``."""
        domain, path = self.domain, self.path
        if domain == DEFAULT_DOMAIN:
            remainder = path.removeprefix(_OFFICIAL_PREFIX)
            return remainder if "/" not in remainder else path
        return f"{domain}/{path}" if domain else path

    @property
    def is_named(self) -> bool:
        return bool(self.path)

    @property
    def is_name_only(self) -> bool:
        """True for a bare repository name: no tag and no digest."""
        return bool(self.path) and not self.tag and not self.digest

    def __str__(self) -> str:
        return self._render(self.name)

    def familiar(self) -> str:
        """The familiar string Docker shows: ``busybox:latest``, ``a/b@sha256:...``."""
        return self._render(self.repository)

    def _render(self, name: str) -> str:
        text = name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text = f"{text}@{self.digest}" if text else self.digest
        return text

    def with_default_tag(self) -> Reference:
        """``TagNameOnly``: add ``latest`` to a bare name."""
        return attrs.evolve(self, tag=DEFAULT_TAG) if self.is_name_only else self

    def trimmed(self) -> Reference:
        """The repository name alone, without tag or digest."""
        return Reference(self.domain, self.path)

    def with_tag(self, tag: str) -> Reference:
        """The same name with ``tag``; an invalid tag is ``invalid tag format``."""
        validate_tag(tag)
        return attrs.evolve(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """The same name with ``digest`` (validated as Docker validates digests)."""
        validate_digest(digest)
        return attrs.evolve(self, digest=digest)


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it matches ``[\\w][\\w.-]{0,127}``, else ``invalid tag format``."""
    if not _TAG_RE.fullmatch(tag):
        raise InvalidParameter("invalid tag format")
    return tag


def validate_digest(digest: str) -> str:
    """Validate ``algorithm:hex`` with go-digest's rules and messages; return it."""
    algorithm, sep, encoded = digest.partition(":")
    if not algorithm or not sep or not encoded:
        raise InvalidParameter("invalid checksum digest format")
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        if not _GO_DIGEST_RE.fullmatch(digest):
            raise InvalidParameter("invalid checksum digest format")
        raise InvalidParameter("unsupported digest algorithm")
    if len(encoded) != length:
        raise InvalidParameter("invalid checksum digest length")
    if not re.fullmatch(r"[a-f0-9]+", encoded):
        raise InvalidParameter("invalid checksum digest format")
    return digest


def parse(text: str) -> Reference:
    """Parse ``text`` with the plain grammar, without normalising (distribution's ``Parse``)."""
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        if not text:
            raise InvalidParameter(_NAME_EMPTY)
        if _REFERENCE_RE.fullmatch(text.lower()):
            raise InvalidParameter(_UPPERCASE)
        raise InvalidParameter(_INVALID_FORMAT)
    name, tag, digest = match.group(1), match.group(2) or "", match.group(3) or ""
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(_NAME_TOO_LONG)
    if digest:
        validate_digest(digest)
    domain, path = _split_name(name)
    return Reference(domain, path, tag, digest)


def _split_name(name: str) -> tuple[str, str]:
    match = _ANCHORED_NAME_RE.fullmatch(name)
    if match is None:  # pragma: no cover - the reference pattern already matched
        return "", name
    return match.group(1) or "", match.group(2)


def _split_docker_domain(text: str) -> tuple[str, str]:
    """Docker 20.10's ``splitDockerDomain``: a first element is a domain if it has
    a ``.`` or ``:`` or is ``localhost``; Docker Hub names gain ``library/``."""
    first, slash, rest = text.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, text
    else:
        domain, remainder = first, rest
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_PREFIX + remainder
    return domain, remainder


def parse_normalized(text: str) -> Reference:
    """Parse a familiar or full name into a normalised named reference
    (``ParseNormalizedNamed``): ``busybox`` is ``docker.io/library/busybox``."""
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidParameter(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidParameter(_UPPERCASE)
    reference = parse(f"{domain}/{remainder}")
    if not reference.is_named:  # pragma: no cover - a domain was always prefixed
        raise InvalidParameter(f"reference {reference} has no name")
    return reference


def parse_any(text: str) -> Reference:
    """An image ID, a full digest, or a familiar name (``ParseAnyReference``).

    A bare 64-hex identifier becomes the digest-only reference ``sha256:<hex>``.
    """
    if _IDENTIFIER_RE.fullmatch(text):
        return Reference(digest="sha256:" + text)
    if ":" in text and "/" not in text:
        try:
            return Reference(digest=validate_digest(text))
        except InvalidParameter:
            pass
    return parse_normalized(text)


def is_image_id(text: str) -> bool:
    """True for a full image ID: ``sha256:<64 hex>`` or the bare 64 hex digits."""
    return _IDENTIFIER_RE.fullmatch(text.removeprefix("sha256:")) is not None


def is_id_prefix(text: str) -> bool:
    """True if ``text`` could be (a prefix of) an image ID, with or without ``sha256:``."""
    return _ID_PREFIX_RE.fullmatch(text) is not None


def image_id_hex(image_id: str) -> str:
    """The hex digits of an image ID, without ``sha256:``."""
    return image_id.removeprefix("sha256:")


def short_id(image_id: str) -> str:
    """The 12-character short form Docker prints (``TruncateID``)."""
    return image_id_hex(image_id)[:12]

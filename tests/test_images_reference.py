"""Docker references: grammar, normalisation, familiar form and error messages."""

from __future__ import annotations

import time

import pytest

from dockertw.daemon.images.reference import (
    Reference,
    image_id_hex,
    is_id_prefix,
    is_image_id,
    parse,
    parse_any,
    parse_normalized,
    short_id,
    validate_digest,
    validate_tag,
)
from dockertw.errdefs import InvalidParameter

HEX = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
DIGEST = "sha256:" + HEX

# input, full name, familiar repository, tag, digest
NORMALISED = [
    ("busybox", "docker.io/library/busybox", "busybox", "", ""),
    ("busybox:latest", "docker.io/library/busybox", "busybox", "latest", ""),
    ("busybox:1.36.1-uclibc", "docker.io/library/busybox", "busybox", "1.36.1-uclibc", ""),
    ("library/busybox", "docker.io/library/busybox", "busybox", "", ""),
    ("docker.io/busybox", "docker.io/library/busybox", "busybox", "", ""),
    ("docker.io/library/busybox", "docker.io/library/busybox", "busybox", "", ""),
    ("index.docker.io/busybox", "docker.io/library/busybox", "busybox", "", ""),
    ("index.docker.io/library/busybox:1", "docker.io/library/busybox", "busybox", "1", ""),
    ("dmcgowan/myapp", "docker.io/dmcgowan/myapp", "dmcgowan/myapp", "", ""),
    ("library/foo/bar", "docker.io/library/foo/bar", "library/foo/bar", "", ""),
    ("store/foo/bar", "docker.io/store/foo/bar", "store/foo/bar", "", ""),
    ("other/library", "docker.io/other/library", "other/library", "", ""),
    ("localhost/foo", "localhost/foo", "localhost/foo", "", ""),
    ("localhost", "docker.io/library/localhost", "localhost", "", ""),
    ("localhost:5000/a/b:tag", "localhost:5000/a/b", "localhost:5000/a/b", "tag", ""),
    ("127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase",
     "127.0.0.1:8000/private/moonbase", "", ""),
    ("example.com/privatebase", "example.com/privatebase", "example.com/privatebase", "", ""),
    ("Example.com/foo", "Example.com/foo", "Example.com/foo", "", ""),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo", "", ""),
    ("[::1]:5000/foo:v1", "[::1]:5000/foo", "[::1]:5000/foo", "v1", ""),
    ("[2001:db8::1]/x", "[2001:db8::1]/x", "[2001:db8::1]/x", "", ""),
    ("test_com/foo", "docker.io/test_com/foo", "test_com/foo", "", ""),
    ("test.com:5000", "docker.io/library/test.com", "test.com", "5000", ""),
    ("foo_bar.com:8080", "docker.io/library/foo_bar.com", "foo_bar.com", "8080", ""),
    ("docker---rules/docker", "docker.io/docker---rules/docker", "docker---rules/docker", "", ""),
    ("dock__er/docker", "docker.io/dock__er/docker", "dock__er/docker", "", ""),
    ("d/docker", "docker.io/d/docker", "d/docker", "", ""),
    ("jess/t", "docker.io/jess/t", "jess/t", "", ""),
    # a dotted first element is taken as a domain, even one the grammar then rejects
    ("a.b_c-d/e", "a.b_c-d/e", "a.b_c-d/e", "", ""),
    ("busybox:TAG_5", "docker.io/library/busybox", "busybox", "TAG_5", ""),
    ("busybox:_under", "docker.io/library/busybox", "busybox", "_under", ""),
    ("redis@" + DIGEST, "docker.io/library/redis", "redis", "", DIGEST),
    ("busybox:latest@" + DIGEST, "docker.io/library/busybox", "busybox", "latest", DIGEST),
    ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io/test.example.com/my-app",
     "b.gcr.io/test.example.com/my-app", "test.example.com", ""),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "", ""),
    ("docker.io/" + HEX, "docker.io/library/" + HEX, HEX, "", ""),
    ("x:" + "t" * 128, "docker.io/library/x", "x", "t" * 128, ""),
]

LOWERCASE = "invalid reference format: repository name must be lowercase"
FORMAT = "invalid reference format"

INVALID = [
    ("", FORMAT),
    ("Busybox", LOWERCASE),
    ("BUSYBOX:latest", LOWERCASE),
    ("docker/Docker", LOWERCASE),
    ("docker.io/docker/Docker", LOWERCASE),
    ("localhost:5000/Upper", LOWERCASE),
    ("-docker", FORMAT),
    ("-docker/docker", FORMAT),
    ("docker-/docker", FORMAT),
    ("-docker.io/docker/docker", FORMAT),
    ("docker///docker", FORMAT),
    ("docker.io/docker///docker", FORMAT),
    ("____/____", FORMAT),
    ("_docker/_docker", FORMAT),
    ("dock..er/docker", FORMAT),
    ("dock_.er/docker", FORMAT),
    ("dock-.er/docker", FORMAT),
    ("docker/", FORMAT),
    ("https://github.com/docker/docker", FORMAT),
    ("aa/asdf$$^/aa", FORMAT),
    ("bad name", FORMAT),
    ("busybox:", FORMAT),
    ("busybox:-tag", FORMAT),
    ("busybox:.tag", FORMAT),
    ("busybox:a:b", FORMAT),
    ("busybox:" + "t" * 129, FORMAT),
    ("busybox@", FORMAT),
    ("busybox@sha256:abc", FORMAT),
    ("busybox@sha256:" + HEX.upper(), "invalid checksum digest format"),
    ("busybox@sha256:" + HEX + "00", "invalid checksum digest length"),
    ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
    (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ("a/" * 123 + "a", "repository name must not be more than 255 characters"),
    ("caf\u00e9", FORMAT),
]


@pytest.mark.parametrize(("text", "name", "repository", "tag", "digest"), NORMALISED)
def test_normalisation(text: str, name: str, repository: str, tag: str, digest: str):
    reference = parse_normalized(text)
    assert (reference.name, reference.repository) == (name, repository)
    assert (reference.tag, reference.digest) == (tag, digest)
    suffix = (":" + tag if tag else "") + ("@" + digest if digest else "")
    assert str(reference) == name + suffix
    assert reference.familiar() == repository + suffix
    assert parse_normalized(str(reference)) == reference
    if reference.familiar() != HEX:  # Docker's familiar form of docker.io/<64 hex> won't parse
        assert parse_normalized(reference.familiar()) == reference


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_references_have_dockers_messages(text: str, message: str):
    with pytest.raises(InvalidParameter) as caught:
        parse_normalized(text)
    assert str(caught.value) == message


def test_the_length_limit_counts_the_full_name():
    parse_normalized("a/" * 122 + "a")  # 245 characters + "docker.io/" = 255
    with pytest.raises(InvalidParameter, match="must not be more than 255"):
        parse_normalized("a/" * 122 + "ab")


def test_default_tag_and_familiar_forms():
    bare = parse_normalized("busybox")
    assert bare.is_name_only and bare.is_named
    tagged = bare.with_default_tag()
    assert tagged.tag == "latest" and tagged.familiar() == "busybox:latest"
    assert str(tagged) == "docker.io/library/busybox:latest"
    assert parse_normalized("busybox:1").with_default_tag().tag == "1"
    digested = parse_normalized("busybox@" + DIGEST)
    assert digested.with_default_tag() == digested and not digested.is_name_only


def test_with_tag_trim_and_with_digest():
    reference = parse_normalized("localhost:5000/a/b:old")
    assert reference.trimmed() == Reference("localhost:5000", "a/b")
    assert reference.trimmed().with_tag("new").familiar() == "localhost:5000/a/b:new"
    assert reference.with_digest(DIGEST).familiar() == f"localhost:5000/a/b:old@{DIGEST}"
    with pytest.raises(InvalidParameter, match="^invalid tag format$"):
        reference.with_tag("no/slash")
    with pytest.raises(InvalidParameter, match="invalid checksum digest format"):
        reference.with_digest("foo")


@pytest.mark.parametrize(("tag", "valid"), [
    ("latest", True), ("v1.0", True), ("1", True), ("_x", True), ("A-b.c_D", True),
    ("x" * 128, True), ("x" * 129, False), ("", False), ("-x", False), (".x", False),
    ("a:b", False), ("a b", False), ("caf\u00e9", False), ("a/b", False),
])
def test_tag_rule(tag: str, valid: bool):
    if valid:
        assert validate_tag(tag) == tag
    else:
        with pytest.raises(InvalidParameter, match="^invalid tag format$"):
            validate_tag(tag)


@pytest.mark.parametrize(("digest", "message"), [
    (DIGEST, None),
    ("sha384:" + "a" * 96, None),
    ("sha512:" + "b" * 128, None),
    ("sha256", "invalid checksum digest format"),
    (":" + HEX, "invalid checksum digest format"),
    ("sha256:", "invalid checksum digest format"),
    ("sha256:" + HEX[:-1], "invalid checksum digest length"),
    ("sha256:" + HEX[:-1] + "g", "invalid checksum digest format"),
    ("md5:" + "a" * 32, "unsupported digest algorithm"),
    ("Bad!:" + "a" * 32, "invalid checksum digest format"),
])
def test_digest_rules(digest: str, message: str | None):
    if message is None:
        assert validate_digest(digest) == digest
    else:
        with pytest.raises(InvalidParameter, match=f"^{message}$"):
            validate_digest(digest)


@pytest.mark.parametrize(("text", "domain", "path", "tag", "digest"), [
    ("test_com", "", "test_com", "", ""),
    ("test.com:tag", "", "test.com", "tag", ""),
    ("test.com:5000", "", "test.com", "5000", ""),
    ("test.com/repo:tag", "test.com", "repo", "tag", ""),
    ("test:5000/repo", "test:5000", "repo", "", ""),
    ("test:5000/repo:tag@" + DIGEST, "test:5000", "repo", "tag", DIGEST),
    ("foo/foo_bar.com:8080", "foo", "foo_bar.com", "8080", ""),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", "", ""),
    ("a/" * 127 + "a:tag-puts-this-over-max", "a", "a/" * 126 + "a",
     "tag-puts-this-over-max", ""),
])
def test_plain_grammar(text: str, domain: str, path: str, tag: str, digest: str):
    assert parse(text) == Reference(domain, path, tag, digest)
    assert str(parse(text)) == text


@pytest.mark.parametrize(("text", "message"), [
    ("", "repository name must have at least one component"),
    (":justtag", FORMAT),
    ("@" + DIGEST, FORMAT),
    ("a/" * 128 + "a:tag", "repository name must not be more than 255 characters"),
    ("Uppercase:tag", "invalid reference format: repository name must be lowercase"),
])
def test_plain_grammar_errors(text: str, message: str):
    with pytest.raises(InvalidParameter) as caught:
        parse(text)
    assert str(caught.value) == message


def test_parse_any_accepts_ids_digests_and_names():
    by_id = parse_any(HEX)
    assert by_id == Reference(digest=DIGEST) and not by_id.is_named
    assert by_id.familiar() == str(by_id) == DIGEST
    assert parse_any(DIGEST) == by_id
    assert parse_any("sha512:" + "c" * 128).digest == "sha512:" + "c" * 128
    assert parse_any(HEX[:-1]).name == "docker.io/library/" + HEX[:-1]
    assert parse_any("dbcc1c").familiar() == "dbcc1c"
    assert parse_any("busybox:1").familiar() == "busybox:1"
    with pytest.raises(InvalidParameter, match=LOWERCASE):
        parse_any("Busybox")


def test_image_id_helpers():
    assert is_image_id(HEX) and is_image_id(DIGEST)
    assert not is_image_id(HEX[:12]) and not is_image_id("sha512:" + HEX)
    assert not is_image_id(HEX.upper())
    assert is_id_prefix("dbcc1c") and is_id_prefix("sha256:db") and is_id_prefix(HEX)
    assert not is_id_prefix("busybox") and not is_id_prefix("") and not is_id_prefix(HEX + "0")
    assert short_id(DIGEST) == short_id(HEX) == HEX[:12]
    assert image_id_hex(DIGEST) == HEX


def test_long_bad_input_fails_fast():
    started = time.monotonic()
    for text in ["a" * 100_000 + "!", "a-" * 50_000 + "!", ("a." * 30_000) + "/" + "B",
                 "a/" * 50_000 + "!", "a:" + "b" * 100_000]:
        with pytest.raises(InvalidParameter):
            parse_normalized(text)
    assert time.monotonic() - started < 2

"""The distribution engine's pure parts: credentials, challenges, tokens, manifests,
platforms, registry settings and error messages (the real registry tests are in
test_distribution_cli.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dockertw.daemon.distribution.auth import (
    AuthConfig,
    Challenge,
    TokenCache,
    decode_auth_header,
    parse_challenges,
    parse_token,
    token_request,
)
from dockertw.daemon.distribution.client import is_fallback, registry_error
from dockertw.daemon.distribution.config import Endpoint, RegistryConfig, registry_host_of
from dockertw.daemon.distribution.manifests import (
    ImageManifest,
    ManifestList,
    Platform,
    decode_manifest,
    digest_of,
    image_manifest,
    parse_platform,
)
from dockertw.daemon.distribution.pull import translate_pull_error
from dockertw.daemon.distribution.service import pull_reference
from dockertw.daemon.images.reference import parse_normalized
from dockertw.errdefs import InvalidParameter, NotFound
from dockertw.streams.jsonmessage import format_aux, format_layer, format_progress

LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


# -- credentials and challenges -------------------------------------------------------


def test_registry_auth_header_is_base64url_json_padded_or_not():
    document = {"username": "a", "password": "p?>~", "serveraddress": "r:5000"}
    encoded = base64.urlsafe_b64encode(json.dumps(document).encode()).decode()
    for value in (encoded, encoded.rstrip("=")):
        auth = decode_auth_header(value)
        assert (auth.username, auth.password, auth.server_address) == ("a", "p?>~", "r:5000")
    assert decode_auth_header("").empty
    identity = base64.urlsafe_b64encode(b'{"identitytoken":"tok"}').decode()
    assert decode_auth_header(identity).identity_token == "tok"
    with pytest.raises(InvalidParameter):
        decode_auth_header("!!not base64!!")


def test_challenges_with_quoted_commas_and_several_schemes():
    found = parse_challenges([
        'Bearer realm="https://auth.example/token",service="registry",'
        'scope="repository:a/b:pull,push"', 'Basic realm="x"'])
    assert [c.scheme for c in found] == ["bearer", "basic"]
    assert found[0].parameters == {"realm": "https://auth.example/token",
                                   "service": "registry", "scope": "repository:a/b:pull,push"}
    assert found[1].parameters == {"realm": "x"}


def test_token_requests_as_docker_makes_them():
    challenge = Challenge("bearer", {"realm": "http://t/token", "service": "svc"})
    anonymous = token_request(challenge, ["repository:a:pull"], AuthConfig())
    assert (anonymous.method, anonymous.headers) == ("GET", {})
    assert anonymous.url == "http://t/token?service=svc&scope=repository%3Aa%3Apull"
    user = token_request(challenge, ["repository:a:pull"], AuthConfig("u", "p"))
    assert user.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert user.url.endswith("&account=u")
    login = token_request(challenge, [], AuthConfig("u", "p"), offline=True)
    assert login.method == "POST" and login.form is not None
    assert login.form["grant_type"] == "password" and login.form["access_type"] == "offline"
    refresh = token_request(challenge, ["s"], AuthConfig(identity_token="r"))
    assert refresh.form is not None and refresh.form["grant_type"] == "refresh_token"
    assert refresh.form["refresh_token"] == "r" and refresh.form["client_id"] == "docker"
    with pytest.raises(InvalidParameter):
        token_request(Challenge("bearer", {"realm": "file:///etc"}), [], AuthConfig())


def test_tokens_are_cached_until_they_expire():
    now = [1000.0]
    cache = TokenCache(now=lambda: now[0])
    token = parse_token(b'{"access_token": "A", "token": "B", "expires_in": 300}',
                        now=lambda: now[0])
    assert token.value == "A" and token.expires == 1300
    key = cache.key(Challenge("bearer", {"realm": "r"}), ["s"], AuthConfig("u", "p"))
    cache.put(key, token)
    assert cache.get(key) == "A"
    now[0] = 1296
    assert cache.get(key) is None
    with pytest.raises(InvalidParameter):
        parse_token(b'{"expires_in": 3}')


# -- manifests and platforms ------------------------------------------------------------


def _manifest_list(kind: str) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": kind, "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "digest": D1, "size": 10, "platform": {"os": "linux", "architecture": "arm",
                                                 "variant": "v7"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "digest": D2, "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode()


@pytest.mark.parametrize("kind", [LIST, OCI_INDEX])
def test_lists_select_the_platform(kind: str):
    decoded = decode_manifest(_manifest_list(kind), "", "x")
    assert isinstance(decoded, ManifestList)
    assert decoded.select(Platform("linux", "amd64"), "x").digest == D2
    assert decoded.select(Platform("linux", "arm", "v7"), "x").digest == D1
    assert decoded.select(Platform("linux", "arm"), "x").digest == D1
    with pytest.raises(NotFound, match="no matching manifest for linux/arm64"):
        decoded.select(Platform("linux", "arm64"), "x")


def test_schema1_and_unknown_types_are_refused():
    with pytest.raises(InvalidParameter, match="schema 1 has been removed. Suggest the "
                                               "author of busybox:1 to upgrade"):
        decode_manifest(b'{"schemaVersion": 1, "name": "busybox"}',
                        "application/vnd.docker.distribution.manifest.v1+prettyjws",
                        "busybox:1")
    with pytest.raises(InvalidParameter, match="unsupported manifest media type"):
        decode_manifest(b'{"schemaVersion": 2, "mediaType": "text/plain"}', "", "x")


def test_push_manifest_and_an_oci_manifest_without_media_type():
    config = b'{"rootfs": {"diff_ids": []}}'
    written = image_manifest(config, [(D1, 5)])
    decoded = decode_manifest(written, "", "x")
    assert isinstance(decoded, ImageManifest)
    assert decoded.config.digest == digest_of(config) and decoded.config.size == len(config)
    assert [(layer.digest, layer.size) for layer in decoded.layers] == [(D1, 5)]
    oci = json.dumps({"schemaVersion": 2, "config": {"mediaType": "c", "digest": D1,
                                                     "size": 1}, "layers": []}).encode()
    assert decode_manifest(oci, "application/vnd.oci.image.manifest.v1+json", "x") \
        .media_type == "application/vnd.oci.image.manifest.v1+json"


def test_platform_arguments():
    default = Platform("linux", "amd64")
    assert parse_platform("", default) == default
    assert parse_platform("linux/arm64", default) == Platform("linux", "arm64")
    assert parse_platform("linux/arm/v7", default) == Platform("linux", "arm", "v7")
    assert parse_platform("aarch64", default) == Platform("linux", "arm64")
    with pytest.raises(InvalidParameter, match="operating system is not supported"):
        parse_platform("windows/amd64", default)
    with pytest.raises(InvalidParameter, match='"foobar": unknown operating system'):
        parse_platform("foobar", default)
    assert Platform("linux", "arm64", "v8").matches(Platform("linux", "arm64"))
    assert not Platform("linux", "arm", "v6").matches(Platform("linux", "arm", "v7"))


# -- registries and references ----------------------------------------------------------


def test_endpoints_in_dockers_order(tmp_path: Path):
    config = RegistryConfig.build(["http://127.0.0.1:5001"], ["myreg:5000", "10.1.0.0/16"],
                                  tmp_path, "http://127.0.0.1:5002")
    hub = config.endpoints("docker.io")
    assert [(e.url, e.mirror) for e in hub] == [("http://127.0.0.1:5001", True),
                                                ("http://127.0.0.1:5002", False)]
    assert [e.url for e in config.endpoints("127.0.0.1:5000")] == [
        "https://127.0.0.1:5000", "http://127.0.0.1:5000"]
    assert [e.url for e in config.endpoints("myreg:5000")] == [
        "https://myreg:5000", "http://myreg:5000"]
    assert [e.url for e in config.endpoints("10.1.2.3:443")][-1] == "http://10.1.2.3:443"
    secure = config.endpoints("registry.example:5000")
    assert [e.url for e in secure] == ["https://registry.example:5000"]
    assert secure[0].tls is not None and secure[0].tls.verify
    assert [e.url for e in config.login_endpoints("docker.io")] == ["http://127.0.0.1:5002"]
    assert RegistryConfig().endpoints("docker.io")[0].url == "https://registry-1.docker.io"


def test_certs_directory_layout(tmp_path: Path):
    host = tmp_path / "0.0.0.0:5000"
    host.mkdir()
    (host / "ca.crt").write_text("x")
    (host / "client.cert").write_text("x")
    (host / "client.key").write_text("x")
    tls = RegistryConfig(certs_dir=tmp_path).tls_for("0.0.0.0:5000")
    assert (tls.ca, tls.cert, tls.key) == (host / "ca.crt", host / "client.cert",
                                           host / "client.key")
    (host / "client.key").unlink()
    with pytest.raises(InvalidParameter, match="missing key client.key"):
        RegistryConfig(certs_dir=tmp_path).tls_for("0.0.0.0:5000")


def test_bad_registry_options_are_refused():
    with pytest.raises(InvalidParameter):
        RegistryConfig.build(["ftp://mirror"])
    with pytest.raises(InvalidParameter):
        RegistryConfig.build(["http://mirror/path"])
    with pytest.raises(InvalidParameter, match="should not contain '://'"):
        RegistryConfig.build(insecure=["http://x:5000"])


def test_login_server_addresses():
    assert registry_host_of("https://index.docker.io/v1/") == "docker.io"
    assert registry_host_of("") == "docker.io"
    assert registry_host_of("https://127.0.0.1:5000") == "127.0.0.1:5000"
    assert registry_host_of("myreg:5000/v2/") == "myreg:5000"


def test_pull_references():
    assert str(pull_reference("busybox", "latest")) == "docker.io/library/busybox:latest"
    assert pull_reference("busybox", "").is_name_only
    assert pull_reference("r:5000/a", D1).digest == D1
    with pytest.raises(InvalidParameter):
        pull_reference("r:5000/a", "bad tag!")


def test_registry_errors_in_dockers_words():
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                   "message": "manifest unknown"}]}).encode()
    error = registry_error(404, body)
    assert str(error) == "manifest unknown: manifest unknown"
    reference = parse_normalized("127.0.0.1:5000/a:1")
    assert str(translate_pull_error(error, reference)) == (
        "manifest for 127.0.0.1:5000/a:1 not found: manifest unknown: manifest unknown")
    denied = registry_error(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}')
    assert str(translate_pull_error(denied, parse_normalized("busybox"))) == (
        "pull access denied for busybox, repository does not exist or may require "
        "'docker login': unauthorized: no")
    assert "received unexpected HTTP status: 502" in str(registry_error(502, b"bad gateway"))
    assert is_fallback(error, Endpoint("http://m", mirror=True))
    assert not is_fallback(error, Endpoint("https://r"))
    assert is_fallback(OSError("refused"), Endpoint("https://r"))


def test_progress_messages_as_docker_writes_them():
    assert format_layer("Pulling fs layer", "abc") == \
        b'{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}\r\n'
    line = json.loads(format_progress("Downloading", "abc", 500, 1000))
    assert line["progressDetail"] == {"current": 500, "total": 1000}
    assert line["progress"].startswith("[=========================>")
    assert json.loads(format_aux({"Tag": "1"})) == {"progressDetail": {}, "aux": {"Tag": "1"}}

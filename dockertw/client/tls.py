"""Client TLS settings from Docker's files, as a connection creator per host."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import cast

import attrs
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

__all__ = ["TLSSettings"]


@attrs.frozen
class TLSSettings:
    """A CA to verify the daemon with (or no verification) and an optional client certificate.

    Trust is exclusive: with ``ca`` set, only that CA is trusted, as with the docker CLI
    and ``WithTLSClientConfig`` (the Go library's ``FromEnv`` also trusts system roots).
    ``system_roots`` adds the system CAs to ``ca`` and ``extra_cas`` (as the daemon
    trusts a registry's ``certs.d`` CAs).
    """

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verify: bool = True
    extra_cas: tuple[Path, ...] = ()
    system_roots: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TLSSettings | None:
        """``DOCKER_CERT_PATH`` turns TLS on; ``DOCKER_TLS_VERIFY`` (any value) verifies."""
        directory = env.get("DOCKER_CERT_PATH", "")
        if not directory:
            return None
        base = Path(directory)
        for name in ("cert.pem", "key.pem"):
            if not (base / name).is_file():
                raise ValueError(
                    f'configure TLS from "DOCKER_CERT_PATH={directory}": could not load '
                    f"X509 key pair: open {base / name}: no such file or directory")
        verify = bool(env.get("DOCKER_TLS_VERIFY", ""))
        return cls(ca=base / "ca.pem" if verify else None, cert=base / "cert.pem",
                   key=base / "key.pem", verify=verify)

    def _client_certificate(self) -> ssl.PrivateCertificate | None:
        if self.cert is None or self.key is None:
            return None
        return ssl.PrivateCertificate.loadPEM(self.key.read_bytes() + self.cert.read_bytes())

    def creator_for(self, hostname: str) -> IOpenSSLClientConnectionCreator:
        """What ``wrapClientTLS`` needs to speak TLS to ``hostname`` (a name or an IP)."""
        client = self._client_certificate()
        if not self.verify:
            if client is None:
                return ssl.CertificateOptions(verify=False)
            return ssl.CertificateOptions(
                privateKey=client.privateKey.original, certificate=client.original,
                verify=False)
        trust = self._trust_root()
        return ssl.optionsForClientTLS(hostname.strip("[]").split("%", 1)[0],
                                       trustRoot=trust, clientCertificate=client)


    def _trust_root(self) -> IOpenSSLTrustRoot:
        if self.ca is None:
            return ssl.platformTrust()
        if not self.system_roots:
            return cast(IOpenSSLTrustRoot, ssl.Certificate.loadPEM(self.ca.read_bytes()))
        return _SystemRootsAnd((self.ca, *self.extra_cas))


@implementer(IOpenSSLTrustRoot)
class _SystemRootsAnd:
    """The platform's CAs plus the certificates in ``files``."""

    def __init__(self, files: tuple[Path, ...]) -> None:
        self._files = files

    def _addCACertsToContext(self, context: SSL.Context) -> None:  # noqa: N802 - Twisted's
        context.set_default_verify_paths()
        store = context.get_cert_store()
        assert store is not None
        for path in self._files:
            store.add_cert(crypto.load_certificate(crypto.FILETYPE_PEM, path.read_bytes()))

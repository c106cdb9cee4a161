"""TLS on the daemon's listeners, set as dockerd sets it, and refusals logged.

As Docker's ``tlsconfig.Server``: TLS 1.2 at least, TLS 1.2 cipher suites limited to
ECDHE with AES-GCM or ChaCha20-Poly1305, and with ``--tlsverify`` a client
certificate required and verified against the given CA alone.  OpenSSL checks a
client certificate's purpose as Go does: one whose extended key usage leaves out
``clientAuth`` is refused.  Every handshake refused (no certificate, an unknown CA,
an expired certificate, a wrong usage, an old TLS version, plain HTTP) is logged
with the peer's address and the reason.
"""

from __future__ import annotations

from typing import Any

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IProtocolFactory

from dockertw.loglevel import Logger
from dockertw.tlshalfclose import HalfClosingTLS, HalfClosingTLSFactory

__all__ = ["server_options", "RefusalLoggingTLSFactory"]

_log = Logger()
_DOCKER_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
))
# OpenSSL's X509_V_ERR_* codes (x509_vfy.h) and their texts.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    7: "certificate signature failure",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    23: "certificate revoked",
    26: "unsupported certificate purpose",
}


def server_options(key_and_cert: bytes, authority: bytes | None) -> ssl.CertificateOptions:
    """Options for a listener serving the PEM key and certificate ``key_and_cert``;
    with an ``authority`` (PEM), clients must show a certificate it signed."""
    server = ssl.PrivateCertificate.loadPEM(key_and_cert)
    authorities = [] if authority is None else [ssl.Certificate.loadPEM(authority).original]
    options = ssl.CertificateOptions(
        privateKey=server.privateKey.original, certificate=server.original,
        verify=bool(authorities), caCerts=authorities or None,
        requireCertificate=bool(authorities),
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(_DOCKER_CIPHERS))
    if authorities:
        context = options.getContext()  # the one every connection is made from
        context.set_verify(context.get_verify_mode(), _note_verify_error)
    return options


def _note_verify_error(connection: SSL.Connection, certificate: Any, error: int,
                       depth: int, ok: int) -> bool:
    """OpenSSL's verdict, unchanged; a failure is noted on the connection's protocol."""
    protocol = connection.get_app_data()
    if not ok and isinstance(protocol, _RefusalLoggingTLS) and protocol.verify_error is None:
        text = _VERIFY_ERRORS.get(error, f"certificate verify error {error}")
        subject = certificate.get_subject().commonName
        which = "client certificate" if depth == 0 else "its issuer"
        protocol.verify_error = f"{text} ({which} CN={subject})"
    return bool(ok)


class _RefusalLoggingTLS(HalfClosingTLS):
    """Logs a failed handshake with the peer's address."""

    verify_error: str | None = None

    def makeConnection(self, transport: Any) -> None:
        super().makeConnection(transport)
        self.getHandle().set_app_data(self)  # for _note_verify_error, as Twisted uses it

    def handshake_failed(self, error: SSL.Error) -> None:
        transport: Any = self.transport
        peer, host = transport.getPeer(), transport.getHost()
        _log.warn("TLS handshake from {peer} to {host} refused: {reason}",
                  peer=f"{peer.host}:{peer.port}", host=f"{host.host}:{host.port}",
                  reason=self.verify_error or _reasons(error))


def _reasons(error: SSL.Error) -> str:
    """OpenSSL's reasons in ``error`` (``peer did not return a certificate``)."""
    found = [entry[2] for entry in (error.args[0] if error.args else [])
             if isinstance(entry, tuple) and len(entry) == 3 and entry[2]]
    return "; ".join(found) or str(error) or type(error).__name__


class RefusalLoggingTLSFactory(HalfClosingTLSFactory):
    """TLS for a listener: connections half-close (:mod:`dockertw.tlshalfclose`) and
    refused handshakes are logged."""

    protocol = _RefusalLoggingTLS

    def __init__(self, options: IOpenSSLServerConnectionCreator,
                 factory: IProtocolFactory) -> None:
        super().__init__(options, False, factory)

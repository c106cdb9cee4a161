"""Who is at the other end of a connection: its client certificate or its UNIX
credentials, as a policy :class:`~dockertw.policy.Identity`."""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from twisted.internet.interfaces import ISSLTransport

from dockertw.policy import ANONYMOUS, Identity, certificate_identity, peer_identity

__all__ = ["identity_of"]

_UCRED = struct.Struct("3i")  # pid, uid, gid


def identity_of(transport: Any) -> Identity:
    """The identity of the peer of ``transport``: a TLS client certificate (the TLS
    listener verified it), the credentials of a UNIX socket peer, or nobody."""
    if ISSLTransport.providedBy(transport):
        certificate: Any = transport.getPeerCertificate()
        return ANONYMOUS if certificate is None else _certified(certificate.to_cryptography())
    sock = getattr(transport, "socket", None)
    if isinstance(sock, socket.socket) and sock.family == socket.AF_UNIX:
        _, uid, gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        return peer_identity(uid, gid)
    return ANONYMOUS


def _certified(certificate: x509.Certificate) -> Identity:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else None
    return certificate_identity(common_name, _alt_names(certificate))


def _alt_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names = extension.value
    addresses = names.get_values_for_type(x509.IPAddress)
    return [*names.get_values_for_type(x509.DNSName),
            *(address.compressed for address in addresses
              if isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)),
            *names.get_values_for_type(x509.RFC822Name),
            *names.get_values_for_type(x509.UniformResourceIdentifier)]

"""Certificate expiry as a health check sees it: read from a TLS handshake or from the kubeconfig.

The API server's serving certificate is read from a handshake with the address in the kubeconfig, and
an etcd endpoint's the same way when it speaks TLS; the kubeadm certificates kobot can reach without
logging in to a master are the ones in its admin kubeconfig (the admin client certificate and the
cluster CA). Only public certificates are read; no request is sent over the connection.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from kobot import defaults

if TYPE_CHECKING:  # loaded where a certificate is read: the scheduler imports this with `kobot serve`
    from cryptography import x509


@dataclass(frozen=True)
class CertificateSeen:
    """One certificate and when it stops being valid."""

    name: str
    """What it is, for chat: `API server serving certificate (127.0.0.1:6443)`."""
    subject: str
    not_after: datetime

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def serving_certificate(
    url: str,
    *,
    name: str,
    client_certificate: tuple[Path, Path] | None = None,
    timeout: float = defaults.HEALTH_TLS_TIMEOUT_SECONDS,
) -> CertificateSeen | None:
    """The certificate the server at `url` presents; None when `url` is not https. OSError when the
    server cannot be reached or does not speak TLS. `client_certificate` (certificate and key files) is
    offered to a server that asks for one, as kubeadm's etcd does."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return None
    host, port = parts.hostname, parts.port or 443
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # only the certificate's dates are read and nothing is sent: an expired or unknown certificate must
    # still be read, since reporting exactly that is the point (the API reads verify it as usual)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if client_certificate is not None:
        context.load_cert_chain(*client_certificate)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        raw.settimeout(timeout)
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    if der is None:
        raise OSError(f"{host}:{port} presented no certificate")
    from cryptography import x509

    return _seen(x509.load_der_x509_certificate(der), f"{name} ({host}:{port})")


def pem_certificates(path: Path | str | None, *, name: str) -> list[CertificateSeen]:
    """The certificates of a PEM file (a kubeconfig's client certificate or CA, written out by the
    Kubernetes client); none when there is no such file."""
    if not path:
        return []
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    from cryptography import x509

    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        return []
    return [_seen(cert, name) for cert in certificates]


def _seen(cert: x509.Certificate, name: str) -> CertificateSeen:
    subject = cert.subject.rfc4514_string() or cert.issuer.rfc4514_string()
    return CertificateSeen(name=name, subject=subject, not_after=cert.not_valid_after_utc)

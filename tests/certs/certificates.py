"""Real X.509 certificates for the certificate tests, made with `cryptography`: a CA and leaf
certificates signed by it, with the validity a test asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KUBEADM_LEAVES = (
    "apiserver.crt",
    "apiserver-kubelet-client.crt",
    "apiserver-etcd-client.crt",
    "front-proxy-client.crt",
    "etcd/server.crt",
    "etcd/peer.crt",
    "etcd/healthcheck-client.crt",
)
"""The leaf certificates kubeadm renews, relative to /etc/kubernetes/pki (the role's cert_renew_files)."""


def certificate_pem(*, common_name: str, not_after: datetime, issuer_cn: str = "kubernetes") -> bytes:
    """A leaf certificate valid until `not_after`, signed by a throwaway CA named `issuer_cn`."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = min(datetime.now(UTC), not_after) - timedelta(days=1)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def write_pki(root: Path, *, expiries: dict[str, datetime]) -> None:
    """kubeadm's leaf certificates under `root` (an /etc/kubernetes/pki), each expiring as given."""
    for name, not_after in expiries.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(certificate_pem(common_name=Path(name).stem, not_after=not_after))

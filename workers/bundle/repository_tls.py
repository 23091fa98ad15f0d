"""TLS of the offline repository host: kobot's repository CA and the server certificate it signs.

The CA is made once; its key is kept encrypted with the other secrets under the repository scope
(`ClusterSecrets`, the store's key derived from kobot's secret key), and never leaves kobot: nodes
and clients get the CA certificate only. The server certificate names the repository host as
`setup repository on <host>` names it (what containerd, skopeo and the file clients connect to), and
is kept with its key the same way, so a second setup finds it still fitting and changes nothing; it
is reissued when it no longer names the host, no longer chains to the CA, or nears its end.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kobot.errors import StepFailedError
from workers.bundle import defaults
from workers.cluster_secrets import ClusterSecrets

CA_KEY_SECRET = "repository-ca-key"  # nosec B105  # a secret's name in the store, not its value
CA_CERTIFICATE_SECRET = "repository-ca-certificate"  # nosec B105  # a secret's name in the store, not its value
SERVER_KEY_SECRET = "repository-tls-key"  # nosec B105  # a secret's name in the store, not its value
SERVER_CERTIFICATE_SECRET = "repository-tls-certificate"  # nosec B105  # a secret's name in the store, not its value

CA_COMMON_NAME = "kobot repository CA"
ORGANIZATION = "kobot"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class RepositoryCa:
    """kobot's repository CA: the certificate every node trusts, and the key that stays in kobot."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class ServerCertificate:
    """The repository host's certificate (public) and its key (only for the host, mode 0600 there)."""

    certificate_pem: str
    key_pem: str = field(repr=False)


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def new_ca(*, now: datetime.datetime | None = None) -> RepositoryCa:
    """A fresh CA (ECDSA P-256), allowed to sign server certificates only (path length 0)."""
    issued = now or _utcnow()
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - datetime.timedelta(seconds=defaults.REPOSITORY_CLOCK_SKEW_SECONDS))
        .not_valid_after(issued + datetime.timedelta(days=defaults.REPOSITORY_CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return RepositoryCa(certificate=certificate, key=key)


def subject_names(names: list[str]) -> list[x509.GeneralName]:
    """The SANs for `names`: an IP address entry for an address, a DNS entry for anything else."""
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name.lower().rstrip(".")))
    return general


def issue_server_certificate(
    ca: RepositoryCa, *, names: list[str], now: datetime.datetime | None = None
) -> ServerCertificate:
    """A new key and a certificate for it, signed by `ca`, naming `names` (the first is its CN)."""
    if not names:
        raise ValueError("a server certificate needs at least one host name or address")
    issued = now or _utcnow()
    key = _new_key()
    not_after = min(
        issued + datetime.timedelta(days=defaults.REPOSITORY_CERT_VALIDITY_DAYS),
        ca.certificate.not_valid_after_utc,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                ]
            )
        )
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(issued - datetime.timedelta(seconds=defaults.REPOSITORY_CLOCK_SKEW_SECONDS))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(subject_names(names)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return ServerCertificate(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem=_key_pem(key)
    )


def certificate_fits(
    server: ServerCertificate, *, ca: RepositoryCa, names: list[str], now: datetime.datetime | None = None
) -> bool:
    """Whether `server` can be served on: signed by `ca`, naming exactly `names`, its key its own,
    and more than the renewal margin left."""
    moment = now or _utcnow()
    try:
        certificate = x509.load_pem_x509_certificate(server.certificate_pem.encode())
        key = serialization.load_pem_private_key(server.key_pem.encode(), password=None)
        certificate.verify_directly_issued_by(ca.certificate)
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    if key.public_key() != certificate.public_key():
        return False
    if set(sans) != set(subject_names(names)):
        return False
    margin = datetime.timedelta(days=defaults.REPOSITORY_CERT_RENEW_BEFORE_DAYS)
    return certificate.not_valid_before_utc <= moment and certificate.not_valid_after_utc - moment > margin


def repository_ca(
    secrets: ClusterSecrets, *, scope: str, now: datetime.datetime | None = None
) -> RepositoryCa:
    """kobot's repository CA from the store, made (and kept) the first time it is asked for."""
    key_pem = secrets.get(cluster=scope, name=CA_KEY_SECRET)
    certificate_pem = secrets.get(cluster=scope, name=CA_CERTIFICATE_SECRET)
    if key_pem is None or certificate_pem is None:
        ca = new_ca(now=now)
        # the certificate first: a certificate whose key is missing is remade next time, never used
        secrets.put(cluster=scope, name=CA_CERTIFICATE_SECRET, value=ca.certificate_pem.encode())
        secrets.put(cluster=scope, name=CA_KEY_SECRET, value=_key_pem(ca.key).encode())
        return ca
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise StepFailedError("the stored repository CA key is not an EC key", task="tls")
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    if certificate.public_key() != key.public_key():
        raise StepFailedError("the stored repository CA certificate does not match its key", task="tls")
    if certificate.not_valid_after_utc <= (now or _utcnow()):
        raise StepFailedError(
            f"kobot's repository CA expired on {certificate.not_valid_after_utc:%Y-%m-%d}: every node trusts "
            "it, so a new one has to reach every cluster; no certificate is issued from it",
            task="tls",
        )
    return RepositoryCa(certificate=certificate, key=key)


def server_certificate(
    secrets: ClusterSecrets,
    *,
    scope: str,
    ca: RepositoryCa,
    names: list[str],
    now: datetime.datetime | None = None,
) -> ServerCertificate:
    """The repository host's certificate: the stored one while it fits (`certificate_fits`), else a new
    one, stored for the next setup."""
    key_pem = secrets.get(cluster=scope, name=SERVER_KEY_SECRET)
    certificate_pem = secrets.get(cluster=scope, name=SERVER_CERTIFICATE_SECRET)
    if key_pem is not None and certificate_pem is not None:
        stored = ServerCertificate(certificate_pem=certificate_pem.decode(), key_pem=key_pem.decode())
        if certificate_fits(stored, ca=ca, names=names, now=now):
            return stored
    issued = issue_server_certificate(ca, names=names, now=now)
    secrets.put(cluster=scope, name=SERVER_KEY_SECRET, value=issued.key_pem.encode())
    secrets.put(cluster=scope, name=SERVER_CERTIFICATE_SECRET, value=issued.certificate_pem.encode())
    return issued

"""A kubeadm-shaped etcd: a REAL etcd serving TLS and asking clients for a certificate, with a serving
certificate the test made to expire in 10 days. The health check reaches it through kobot's etcd
access (etcdctl with the client certificate) and reads its serving certificate from a handshake."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.health.peer import HealthPeer
from tests.support.network import free_port
from tests.support.waiting import wait_for
from workers.etcd import EtcdAccess, endpoint_health
from workers.health_certs import serving_certificate
from workers.health_check import HealthArea, HealthLevel, check_cluster

LOOPBACK_IP = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
START_TIMEOUT_SECONDS = 15.0
"""A single loopback member is healthy in well under a second; this bounds a stuck start."""


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Issued:
    issued = Issued(folder / f"{stem}.crt", folder / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    issued.key.chmod(0o600)
    return issued


def kubeadm_like_pki(folder: Path, *, server_days: int) -> tuple[Issued, Issued, Issued]:
    """(etcd CA, server certificate for 127.0.0.1, client certificate), as kubeadm's etcd/ PKI."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("etcd-ca")).issuer_name(_name("etcd-ca"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    def leaf(
        common_name: str, days: int, usage: x509.ObjectIdentifier
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([LOOPBACK_IP]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        return cert, key

    server, server_key = leaf("etcd-server", server_days, ExtendedKeyUsageOID.SERVER_AUTH)
    client, client_key = leaf("kube-etcd-healthcheck-client", 365, ExtendedKeyUsageOID.CLIENT_AUTH)
    return (
        _write(folder, "ca", ca, ca_key),
        _write(folder, "server", server, server_key),
        _write(folder, "healthcheck-client", client, client_key),
    )


@pytest.fixture
def tls_etcd(tmp_path: Path) -> Iterator[EtcdAccess]:
    pki = tmp_path / "pki"
    pki.mkdir()
    ca, server, client = kubeadm_like_pki(pki, server_days=10)
    url = f"https://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{free_port()}"
    log = (tmp_path / "etcd.log").open("wb")
    process = subprocess.Popen(
        [
            "etcd", "--name=m1", f"--data-dir={tmp_path / 'data'}",
            f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=m1={peer_url}",
            f"--cert-file={server.cert}", f"--key-file={server.key}",
            "--client-cert-auth", f"--trusted-ca-file={ca.cert}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    access = EtcdAccess(endpoints=(url,), cacert=ca.cert, cert=client.cert, key=client.key)
    try:
        wait_for(
            lambda: process.poll() is None and endpoint_health(access=access)[0].healthy,
            timeout=START_TIMEOUT_SECONDS,
            what="etcd with TLS to start",
        )
        yield access
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_tls_etcd_is_healthy_and_its_serving_certificate_is_read_real_etcd(
    tls_etcd: EtcdAccess, tmp_path: Path
) -> None:
    with HealthPeer() as peer:
        peer.add_node("prod-worker-1")
        report = check_cluster(
            kubeconfig=peer.write_kubeconfig(tmp_path / "admin.conf").read_bytes(),
            cluster="prod",
            etcd_access=tls_etcd,
            now=datetime.now(UTC),
        )
    url = tls_etcd.endpoints[0]
    assert [(f.area, f.subject, f.problem, f.level) for f in report.findings] == [
        (
            HealthArea.CERTIFICATES,
            f"etcd serving certificate ({url.removeprefix('https://')})",
            "expires",
            HealthLevel.WARNING,
        )
    ]
    assert "in 10 days" in report.findings[0].detail
    assert report.skipped == (), "etcd answered etcdctl over TLS with the client certificate"


@pytest.mark.parametrize("offered", [True, False])
def test_a_server_that_demands_a_client_certificate_gets_the_etcd_one(tmp_path: Path, offered: bool) -> None:
    """Over TLS 1.2 a server that demands a client certificate ends the handshake without one (TLS 1.3
    finishes first and refuses later, which is why the etcd above cannot tell)."""
    ca, server, client = kubeadm_like_pki(tmp_path, server_days=10)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca.cert)
    context.load_cert_chain(server.cert, server.key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_one() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

        thread = threading.Thread(target=serve_one, daemon=True)
        thread.start()
        url = f"https://127.0.0.1:{port}"
        offer = (client.cert, client.key) if offered else None
        if offered:
            seen = serving_certificate(url, name="etcd serving certificate", client_certificate=offer)
            assert seen is not None and seen.subject == "CN=etcd-server"
        else:
            with pytest.raises(OSError):
                serving_certificate(url, name="etcd serving certificate", client_certificate=offer)
        thread.join(timeout=5)

"""The Kubernetes API peer as a health check sees it: `/readyz?verbose`, node pressure, PVCs, and a
serving certificate of the test's own making (valid for as many days as the test says)."""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.peers.kubernetes import KubernetesApiPeer, _now
from tests.peers.loopback import LOOPBACK

READYZ_CHECKS = ("ping", "log", "etcd", "etcd-readiness", "informer-sync", "shutdown")
"""What a kube-apiserver's `/readyz?verbose` lists (a subset, in its order)."""


def loopback_certificate(*, days: float, name: str = "kube-apiserver") -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM): self-signed for 127.0.0.1, its own CA, valid `days` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(certificate_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as scratch:
        # ssl loads a chain from files only
        cert_file, key_file = Path(scratch) / "tls.crt", Path(scratch) / "tls.key"
        cert_file.write_bytes(certificate_pem)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


class HealthPeer(KubernetesApiPeer):
    """`certificate_days` set: serves HTTPS with a certificate that expires that many days from start."""

    def __init__(self, *, certificate_days: float | None = None) -> None:
        super().__init__()
        self.certificate_days = certificate_days
        self.readyz_failing: set[str] = set()
        """Checks `/readyz?verbose` reports failed, making it answer 500 as the API server does."""

    def tls_context(self) -> ssl.SSLContext | None:
        if self.certificate_days is None:
            return None
        certificate, key = loopback_certificate(days=self.certificate_days)
        self.ca_pem = certificate
        return server_context(certificate, key)

    def set_condition(self, node: str, kind: str, status: bool, *, message: str = "") -> None:
        """A node condition besides Ready (`DiskPressure`, `NetworkUnavailable`) as the kubelet sets it."""
        with self._lock:
            found = self._nodes[node]["status"]["conditions"]
            kept = [c for c in found if c["type"] != kind]
            kept.append({"type": kind, "status": "True" if status else "False", "message": message,
                         "reason": f"Kubelet{'Has' if status else 'HasNo'}{kind}",
                         "lastHeartbeatTime": _now(), "lastTransitionTime": _now()})  # fmt: skip
            self._nodes[node]["status"]["conditions"] = kept

    def add_volume_claim(self, namespace: str, name: str, *, phase: str = "Bound") -> None:
        """A PersistentVolumeClaim; `Pending` is one no volume was found or made for."""
        self._put("persistentvolumeclaims", namespace, name, "PersistentVolumeClaim", "v1", {
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                     "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": phase},
        })  # fmt: skip

    def _list(
        self,
        kind: str,
        api_version: str,
        items: list[dict[str, Any]],
        query: dict[str, list[str]],
        fields: tuple[str, ...],
    ) -> tuple[int, dict[str, Any]]:
        """Pages as the API server does: `limit` objects, and a `continue` token that resumes after them."""
        offset = int((query.get("continue") or ["0"])[0] or 0)
        limit = int((query.get("limit") or ["0"])[0])
        whole = {k: v for k, v in query.items() if k not in ("limit", "continue")}
        status, document = super()._list(kind, api_version, items, whole, fields)
        if status != 200:
            return status, document
        chosen = document["items"][offset:]
        if 0 < limit < len(chosen):
            chosen, document["metadata"]["continue"] = chosen[:limit], str(offset + limit)
        document["items"] = chosen
        return status, document

    def _read(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, dict[str, Any] | str] | None:
        if parts == ["readyz"]:
            lines = [f"[-]{c} failed: reason withheld" if c in self.readyz_failing else f"[+]{c} ok"
                     for c in READYZ_CHECKS]  # fmt: skip
            lines.append("readyz check failed" if self.readyz_failing else "readyz check passed")
            return (500 if self.readyz_failing else 200), "\n".join(lines) + "\n"
        if parts == ["api", "v1", "nodes"]:
            # the node list pages like the others (the base peer answers it whole); under its lock already
            return self._list("NodeList", "v1", list(self._nodes.values()), query, ("metadata.name",))
        return super()._read(parts, query)

"""Expiry of the certificates a renewal read back: copies of each control-plane node's certificates
(public parts only), as `<dir>/<node>/<file>`, parsed with `cryptography`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from kobot.errors import StepFailedError


@dataclass(frozen=True)
class CertificateExpiry:
    """When one certificate of one node stops being valid."""

    node: str
    file: str
    not_after: datetime

    def days_left(self, *, now: datetime) -> int:
        return int((self.not_after - now).total_seconds() // 86400)


def read_expiry(path: Path, *, node: str) -> CertificateExpiry:
    """The expiry of the first certificate in a PEM file; a file that holds none is a clear error."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise StepFailedError(
            f"{path.name} read back from {node} is not a PEM certificate",
            error=f"{node}:{path.name} could not be parsed",
        ) from None
    return CertificateExpiry(node=node, file=path.name, not_after=certificate.not_valid_after_utc)


def read_report(directory: Path) -> list[CertificateExpiry]:
    """Every certificate read back, by node then file; an empty list when nothing was read back."""
    if not directory.is_dir():
        return []
    found = [
        read_expiry(file, node=node_dir.name)
        for node_dir in sorted(p for p in directory.iterdir() if p.is_dir())
        for file in sorted(node_dir.iterdir())
        if file.is_file()
    ]
    return found


def expiry_lines(expiries: list[CertificateExpiry], *, now: datetime | None = None) -> list[str]:
    """One line per node: its earliest expiry, which certificate that is, and the days left."""
    moment = now or datetime.now(UTC)
    earliest: dict[str, CertificateExpiry] = {}
    for item in expiries:
        known = earliest.get(item.node)
        if known is None or item.not_after < known.not_after:
            earliest[item.node] = item
    return [
        f"{node}: earliest {item.file} {item.not_after:%Y-%m-%d} ({item.days_left(now=moment)} days left)"
        for node, item in sorted(earliest.items())
    ]

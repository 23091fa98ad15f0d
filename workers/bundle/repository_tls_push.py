"""Pushing the bundle's images to the repository host over TLS, trusting kobot's repository CA alone.

The push credential goes to whoever answers on the push listener: skopeo verifies the listener's
certificate against the CA kobot made (and nothing else) before it sends the credential.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from workers.bundle.load import PushCredential, push_images

CA_FOLDER = "repository-ca"
"""Folder in the job's private folder that holds the CA skopeo trusts (`--dest-cert-dir`)."""


def write_ca_dir(folder: Path, *, ca_pem: str) -> Path:
    """`folder` holding `ca.crt` and nothing else (skopeo would read a stray `*.key` as a client key)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)
    (folder / "ca.crt").write_text(ca_pem)
    return folder


def push_images_trusting(*, into: Path, registry: str, credential: PushCredential, ca_pem: str) -> list[str]:
    """Push every image of the built bundle in `into` to `registry` (host:port) over TLS verified
    against `ca_pem` only; the names pushed. skopeo reads the credential from a 0600 auth file in the
    job's private folder, removed afterwards with the CA folder."""
    ca_dir = write_ca_dir(credential.private_dir / CA_FOLDER, ca_pem=ca_pem)
    try:
        return push_images(into=into, registry=registry, tls=True, credential=credential, ca_dir=ca_dir)
    finally:
        shutil.rmtree(ca_dir, ignore_errors=True)

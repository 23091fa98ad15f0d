"""Pushing the bundle's images to the repository host over TLS, trusting kobot's repository CA alone.

The push credential goes to whoever answers on the push listener: skopeo verifies the listener's
certificate against the CA kobot made (and nothing else) before it sends the credential.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from workers.bundle.build import verify_built
from workers.bundle.images import push_to_registry, write_authfile, write_policy
from workers.bundle.load import PUSH_USER, PushCredential

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
    built = verify_built(into)
    policy = write_policy(into / "skopeo-policy.json")
    credential.private_dir.mkdir(parents=True, exist_ok=True)
    ca_dir = write_ca_dir(credential.private_dir / CA_FOLDER, ca_pem=ca_pem)
    authfile = write_authfile(
        credential.private_dir / "registry-auth.json",
        registry=registry,
        user=PUSH_USER,
        password=credential.password,
    )
    try:
        return [
            push_to_registry(
                image,
                images_dir=into / "images",
                registry=registry,
                policy=policy,
                tls=True,
                authfile=authfile,
                ca_dir=ca_dir,
            )
            for image in built.images
        ]
    finally:
        authfile.unlink(missing_ok=True)
        shutil.rmtree(ca_dir, ignore_errors=True)

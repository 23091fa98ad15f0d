"""Loading a built bundle into a repository host: the playbook serves files and runs the registry; the
images go in from kobot's machine with skopeo, under the paths the clusters' containerd mirror asks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bcrypt

from kobot.cluster_spec import OfflineRepository
from workers.bundle.build import verify_built
from workers.bundle.images import push_to_registry, write_authfile, write_policy

PUSH_USER = "kobot"
"""The one account of the repository host's push listener (its htpasswd file)."""


@dataclass(frozen=True)
class PushCredential:
    """kobot's push account on the repository host and the job-private folder its auth file goes in."""

    password: str = field(repr=False)
    private_dir: Path


def push_images(
    *,
    into: Path,
    registry: str,
    tls: bool = False,
    credential: PushCredential | None = None,
    ca_dir: Path | None = None,
) -> list[str]:
    """Push every image of the built bundle in `into` to `registry` (host:port); the names pushed.

    With a credential, skopeo reads it from an auth file (0600, in the job's private folder, removed
    afterwards): a password on a command line is readable by every user of the machine. `ca_dir`: the
    folder of the only CA the registry's certificate is verified against."""
    built = verify_built(into)
    policy = write_policy(into / "skopeo-policy.json")
    authfile = None
    if credential is not None:
        credential.private_dir.mkdir(parents=True, exist_ok=True)
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
                tls=tls,
                authfile=authfile,
                ca_dir=ca_dir,
            )
            for image in built.images
        ]
    finally:
        if authfile is not None:
            authfile.unlink(missing_ok=True)


def push_htpasswd_line(password: str) -> str:
    """The push listener's htpasswd line for kobot's account (bcrypt, the only scheme distribution reads)."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    return f"{PUSH_USER}:{hashed}"


def repository_of(
    *, host: str, files_port: int, registry_port: int, file_sha256: dict[str, str] | None = None
) -> OfflineRepository:
    """What a cluster spec names for this repository host (the role's default layout), with the sha256
    the bundle build verified for each file it serves."""
    return OfflineRepository(
        package_repo_url=f"http://{host}:{files_port}/packages",
        image_registry=f"{host}:{registry_port}",
        files_url=f"http://{host}:{files_port}",
        file_sha256=file_sha256 or {},
    )

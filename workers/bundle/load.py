"""Loading a built bundle into a repository host: the playbook serves files and runs the registry; the
images go in from kobot's machine with skopeo, under the paths the clusters' containerd mirror asks."""

from __future__ import annotations

from pathlib import Path

from kobot.cluster_spec import OfflineRepository
from workers.bundle.build import verify_built
from workers.bundle.images import push_to_registry, write_policy


def push_images(*, into: Path, registry: str, tls: bool = False) -> list[str]:
    """Push every image of the built bundle in `into` to `registry` (host:port); the names pushed."""
    built = verify_built(into)
    policy = write_policy(into / "skopeo-policy.json")
    return [
        push_to_registry(image, images_dir=into / "images", registry=registry, policy=policy, tls=tls)
        for image in built.images
    ]


def repository_of(*, host: str, files_port: int, registry_port: int) -> OfflineRepository:
    """What a cluster spec names for this repository host (the role's default layout)."""
    return OfflineRepository(
        package_repo_url=f"http://{host}:{files_port}/packages",
        image_registry=f"{host}:{registry_port}",
        files_url=f"http://{host}:{files_port}",
    )

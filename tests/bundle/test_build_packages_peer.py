"""`bundle build` for the OS packages of the apt families, against the signed local upstream
(tests/bundle/apt_upstream.py) served by the files peer: exactly the dependency closure, a signed apt
repository that apt itself accepts with the bundle's key alone, tampered .debs and bad upstream
signatures refused, resume, and kobot's signing key kept encrypted (the EL families' dnf repositories:
test_build_rpm_packages_peer.py)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from typer.testing import CliRunner

from bot.cli import app
from kobot import keys
from kobot.automation_values import OFFLINE_REPOSITORY_SCOPE
from kobot.errors import StepFailedError
from tests.bundle.apt_upstream import APT_PREFIX, CLOSURE, AptUpstream, sign_releases
from workers.bundle.apt_packages import CACHE_DIR, PrivateApt
from workers.bundle.apt_signing import SIGNING_KEY_SECRET, RepositorySigner, repository_signing_key
from workers.bundle.build import build_bundle, verify_built
from workers.bundle.manifest import BuiltBundle, BundleManifest, PackageSource
from workers.cluster_secrets import ClusterSecrets

GPG_SECONDS = 30.0
"""Upper bound of one gpgv call in a test."""


@dataclass(frozen=True)
class Built:
    folder: Path
    bundle: BuiltBundle
    fetched: list[str]
    """The .deb paths the build asked the upstream for."""


@pytest.fixture(scope="module")
def built(
    apt_upstream: AptUpstream, repository_signer: RepositorySigner, tmp_path_factory: pytest.TempPathFactory
) -> Built:
    """One build of the whole debian12 plan (every source it names); tests that change a bundle copy it."""
    folder = tmp_path_factory.mktemp("packages-bundle") / "bundle"
    before = len(_deb_requests(apt_upstream))
    bundle = build_bundle(
        apt_upstream.manifest, into=folder, signer=repository_signer, progress=lambda _line: None
    )
    return Built(folder=folder, bundle=bundle, fetched=_deb_requests(apt_upstream)[before:])


def _build(apt_upstream: AptUpstream, into: Path, signer: RepositorySigner) -> BuiltBundle:
    return build_bundle(apt_upstream.lean_manifest, into=into, signer=signer, progress=lambda _line: None)


def _copy(built: Built, tmp_path: Path) -> Path:
    shutil.copytree(built.folder, tmp_path / "bundle", symlinks=True)
    return tmp_path / "bundle"


def _deb_requests(apt_upstream: AptUpstream) -> list[str]:
    return [r.path for r in apt_upstream.peer.requests.where(lambda r: r.path.endswith(".deb"))]


def test_build_fetches_exactly_the_closure_into_a_signed_apt_repository_peer(
    apt_upstream: AptUpstream, built: Built, tmp_path: Path
) -> None:
    repo = built.folder / "files" / "packages"
    assert sorted(p.name for p in (repo / "pool" / "bookworm").iterdir()) == sorted(CLOSURE)
    assert sorted(Path(p.path).name for p in built.bundle.packages) == sorted(CLOSURE)
    assert sorted(Path(path).name for path in built.fetched) == sorted(CLOSURE), "nothing outside the closure"
    versions = {p.name: p.version for p in built.bundle.packages}
    assert versions["kubeadm"] == "1.32.8-1.1" and versions["libtiny"] == "2.0-1"  # the pin, the >= 2
    assert versions["ipvsadm"] == "1:1.31-1+b2"
    for package in built.bundle.packages:
        upstream_body = apt_upstream.peer.files[apt_upstream.deb_path(Path(package.path).name)]
        assert (built.folder / "files" / package.path).read_bytes() == upstream_body

    index = (repo / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages").read_bytes()
    assert (
        gzip.decompress((repo / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages.gz").read_bytes())
        == index
    )
    assert all(f"SHA256: {p.sha256}".encode() in index for p in built.bundle.packages)
    assert b"MD5sum" not in index
    keyring = tmp_path / "kobot.gpg"
    keyring.write_bytes(
        subprocess.run(
            ["gpg", "--dearmor"],
            input=(repo / "gpg.key").read_bytes(),
            capture_output=True,
            check=True,
            timeout=GPG_SECONDS,
        ).stdout
    )
    for signed in (["InRelease"], ["Release.gpg", "Release"]):
        subprocess.run(
            [
                "gpgv",
                "--keyring",
                str(keyring),
                *(str(repo / "dists" / "bookworm" / name) for name in signed),
            ],
            capture_output=True,
            check=True,
            timeout=GPG_SECONDS,
        )
    assert b"PRIVATE KEY" not in (repo / "gpg.key").read_bytes()
    key = next(item for item in built.bundle.files if item.path == "packages/gpg.key")
    assert key.sha256 == hashlib.sha256((repo / "gpg.key").read_bytes()).hexdigest(), (
        "the key's sha256 travels with the files' (offline_file_sha256), so base_os can check it"
    )


def test_apt_accepts_the_bundle_repository_with_its_key_alone_and_resolves_from_it(
    built: Built, tmp_path: Path
) -> None:
    """What a node's apt does with `signed-by=` the bundle's gpg.key: update, then resolve kubeadm at the
    pin and chrony's dependency chain from the bundle alone."""
    repo = built.folder / "files" / "packages"
    key = tmp_path / "kobot-offline.asc"
    shutil.copy(repo / "gpg.key", key)
    node = PrivateApt(tmp_path / "node", arch="amd64", archives=tmp_path / "node-archives")
    (tmp_path / "node-archives" / "partial").mkdir(parents=True)
    node.write_sources(
        [
            PackageSource(
                family="debian12",
                uri=f"file://{repo}",
                suite="bookworm",
                components=("main",),
                keyring=str(key),
            )
        ],
        upstream={},
    )
    node.update(family="debian12")
    resolved = node.resolve(["kubeadm=1.32.8-*", "chrony"], family="debian12")
    assert sorted(name for name, _, _ in resolved) == [
        "chrony",
        "cri-tools",
        "kobot-tzdata",
        "kubeadm",
        "kubelet",
        "libtiny",
    ]


def test_second_build_downloads_no_deb_again_and_keeps_the_repository_peer(
    apt_upstream: AptUpstream, repository_signer: RepositorySigner, built: Built, tmp_path: Path
) -> None:
    folder = _copy(built, tmp_path)
    before = len(_deb_requests(apt_upstream))
    again = _build(apt_upstream, folder, repository_signer)
    assert _deb_requests(apt_upstream)[before:] == []
    assert again.packages == built.bundle.packages
    verify_built(folder)


def test_build_resumes_a_partial_download_with_a_range_and_refetches_a_changed_cached_deb_peer(
    apt_upstream: AptUpstream, repository_signer: RepositorySigner, built: Built, tmp_path: Path
) -> None:
    """An interrupted build left half of kubeadm in apt's partial folder: apt continues it with a range
    request. kubectl's cached copy changed since (same size, which apt alone would take as done): kobot
    checks its sha256 first, and it is fetched again."""
    folder = _copy(built, tmp_path)
    cache = folder / CACHE_DIR / "debian12"
    partial = "kubeadm_1.32.8-1.1_amd64.deb"
    partial_body = apt_upstream.peer.files[apt_upstream.deb_path(partial)]
    (cache / partial).unlink()
    (cache / "partial" / partial).write_bytes(partial_body[: len(partial_body) // 2])
    changed = "kubectl_1.32.8-1.1_amd64.deb"
    changed_body = (cache / changed).read_bytes()
    (cache / changed).unlink()  # break the pool's hard link, then change the cache's copy
    (cache / changed).write_bytes(changed_body[:-8] + bytes(8))
    before = {
        name: len(apt_upstream.peer.downloads(apt_upstream.deb_path(name))) for name in (partial, changed)
    }

    again = _build(apt_upstream, folder, repository_signer)

    resumed = apt_upstream.peer.downloads(apt_upstream.deb_path(partial))[before[partial] :]
    assert [r.range for r in resumed] == [f"bytes={len(partial_body) // 2}-"], "apt continued the download"
    assert len(apt_upstream.peer.downloads(apt_upstream.deb_path(changed))) == before[changed] + 1
    paths = {p.name: folder / "files" / p.path for p in again.packages}
    assert paths["kubeadm"].read_bytes() == partial_body
    assert paths["kubectl"].read_bytes() == changed_body


def test_tampered_upstream_deb_is_refused_naming_it_peer(
    apt_upstream: AptUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    name = "libtiny_2.0-1_amd64.deb"
    path = apt_upstream.deb_path(name)
    body = apt_upstream.peer.files[path]
    tampered = body[:-8] + bytes(8)  # same size: only the hash can tell

    with apt_upstream.served_instead(path, tampered), pytest.raises(StepFailedError) as refused:
        _build(apt_upstream, tmp_path / "bundle", repository_signer)

    assert name in refused.value.user_message and "signed index" in refused.value.user_message
    pool = tmp_path / "bundle" / "files" / "packages" / "pool" / "bookworm"
    assert not (pool / name).exists()
    assert not list((tmp_path / "bundle" / CACHE_DIR / "debian12").rglob("libtiny*"))
    assert not (tmp_path / "bundle" / "bundle.json").exists()


def test_bad_upstream_signature_stops_the_build_peer(
    apt_upstream: AptUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    path = f"{APT_PREFIX}/pkgs.k8s.io/core:/stable:/v1.32/deb/InRelease"
    forged_root = tmp_path / "forged"
    shutil.copytree(apt_upstream.root / "pkgs.k8s.io", forged_root / "pkgs.k8s.io")
    sign_releases(forged_root, keyring=tmp_path / "other-key.gpg")  # a key the plan's keyring lacks
    forged = (forged_root / "pkgs.k8s.io" / "core:" / "stable:" / "v1.32" / "deb" / "InRelease").read_bytes()

    with apt_upstream.served_instead(path, forged), pytest.raises(StepFailedError) as refused:
        _build(apt_upstream, tmp_path / "bundle", repository_signer)

    assert "could not be fetched or verified" in refused.value.user_message
    assert "NO_PUBKEY" in refused.value.user_message or "not signed" in refused.value.user_message
    assert not list((tmp_path / "bundle" / "files" / "packages" / "pool").rglob("*.deb"))


def test_source_without_a_keyring_is_refused_before_any_download_peer(
    apt_upstream: AptUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    sources = tuple(
        s.model_copy(update={"keyring": ""}) if "pkgs.k8s.io" in s.uri else s
        for s in apt_upstream.lean_manifest.package_sources
    )
    manifest = apt_upstream.lean_manifest.model_copy(update={"package_sources": sources})
    before = len(apt_upstream.peer.requests.where(lambda r: True))
    with pytest.raises(StepFailedError) as refused:
        build_bundle(manifest, into=tmp_path / "bundle", signer=repository_signer, progress=lambda _: None)
    assert "--keyring https://pkgs.k8s.io/core:/stable:/v1.32/deb=FILE" in refused.value.user_message
    assert len(apt_upstream.peer.requests.where(lambda r: True)) == before


def test_apt_packages_without_a_signing_key_are_refused(apt_upstream: AptUpstream, tmp_path: Path) -> None:
    with pytest.raises(StepFailedError, match="repository key"):
        build_bundle(apt_upstream.manifest, into=tmp_path / "bundle", progress=lambda _: None)


def test_verify_notices_a_package_changed_after_the_build(built: Built, tmp_path: Path) -> None:
    folder = _copy(built, tmp_path)
    verify_built(folder)
    changed = folder / "files" / built.bundle.packages[0].path
    changed.unlink()
    changed.write_bytes(b"not the package")
    with pytest.raises(StepFailedError, match="changed since the build"):
        verify_built(folder)


def test_signing_key_is_generated_once_and_kept_only_encrypted(redis: Redis) -> None:
    secrets = ClusterSecrets(redis=redis, secret=b"k" * 32)
    first = repository_signing_key(secrets)
    assert b"BEGIN PGP PRIVATE KEY BLOCK" in first
    assert repository_signing_key(secrets) == first
    stored = redis.hget(keys.cluster_secrets(OFFLINE_REPOSITORY_SCOPE), SIGNING_KEY_SECRET)
    assert stored is not None and b"PGP" not in stored
    assert b"PGP" not in b"".join(v for v in redis.hvals(keys.cluster_secrets(OFFLINE_REPOSITORY_SCOPE)))
    assert "PRIVATE" not in repr(RepositorySigner(secret_key=first))


def test_cli_plans_with_a_keyring_and_builds_signed_with_the_stored_key_peer(
    apt_upstream: AptUpstream, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kobot bundle plan --keyring` names the keyring per source; `kobot bundle build` takes kobot's
    signing key from the store (KOBOT_REDIS_URL), generating it the first time."""
    origin = apt_upstream.peer.origin + APT_PREFIX
    manifest = tmp_path / "manifest.json"
    args = ["bundle", "plan", "--version", "1.32.8", "--os", "debian12", "--output", str(manifest)]
    args += ["--upstream", f"http://deb.debian.org={origin}/deb.debian.org"]
    args += ["--upstream", f"https://pkgs.k8s.io={origin}/pkgs.k8s.io"]
    args += ["--keyring", f"https://pkgs.k8s.io={apt_upstream.keyring}"]
    args += ["--keyring", f"http://deb.debian.org={apt_upstream.keyring}"]
    planned = CliRunner().invoke(app, args)
    assert planned.exit_code == 0, planned.output
    assert f"from https://pkgs.k8s.io/core:/stable:/v1.32/deb/ /   [{apt_upstream.keyring}]" in planned.output
    written = BundleManifest.model_validate_json(manifest.read_text())
    assert written.package_sources == apt_upstream.manifest.package_sources
    lean = written.model_copy(
        update={
            "files": (),
            "images": (),
            "charts": (),
            "package_sources": apt_upstream.lean_manifest.package_sources,
        }
    )
    manifest.write_text(lean.model_dump_json())
    monkeypatch.setenv("KOBOT_REDIS_URL", redis_url)
    monkeypatch.setenv("KOBOT_DATA_DIR", str(tmp_path / "data"))

    result = CliRunner().invoke(app, ["bundle", "build", str(manifest), "--into", str(tmp_path / "bundle")])

    assert result.exit_code == 0, result.output
    assert f"{len(CLOSURE)} OS packages" in result.output
    stored = Redis.from_url(redis_url).hget(
        keys.cluster_secrets(OFFLINE_REPOSITORY_SCOPE), SIGNING_KEY_SECRET
    )
    assert stored is not None, "the key was generated into the store"
    assert b"PRIVATE KEY" not in result.output.encode()


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("https://pkgs.k8s.io", "is not URI_PREFIX=FILE"),
        ("https://pkgs.k8s.io=/nonexistent.gpg", "is not a file"),
    ],
)
def test_cli_refuses_a_keyring_that_is_not_prefix_equals_file(given: str, said: str) -> None:
    args = ["bundle", "plan", "--version", "1.32.8", "--os", "debian12", "--keyring", given]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert said in result.output


OPTION_AS_NAME = {"name": "-oAPT::Get::AllowUnauthenticated=true"}
OPTION_IN_VERSION = {"version": "1.0 -oDir::Etc::trusted=/x"}
FIELD_IN_SOURCE = {"suite": "bookworm\nTrusted: yes"}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: {"packages": (m.packages[0].model_copy(update=OPTION_AS_NAME),)},
        lambda m: {"packages": (m.packages[0].model_copy(update=OPTION_IN_VERSION),)},
        lambda m: {"package_sources": (m.package_sources[0].model_copy(update=FIELD_IN_SOURCE),)},
        lambda m: {"upstream": {prefix: f"{url}\nTrusted: yes" for prefix, url in m.upstream.items()}},
    ],
    ids=["option-as-name", "option-in-version", "field-in-source", "field-in-upstream"],
)
def test_manifest_values_apt_would_read_as_options_are_refused_before_any_download_peer(
    apt_upstream: AptUpstream, repository_signer: RepositorySigner, tmp_path: Path, tamper: Any
) -> None:
    manifest = apt_upstream.lean_manifest.model_copy(update=tamper(apt_upstream.lean_manifest))
    before = len(apt_upstream.peer.requests.where(lambda r: True))
    with pytest.raises(StepFailedError, match="plan it again"):
        build_bundle(manifest, into=tmp_path / "bundle", signer=repository_signer, progress=lambda _: None)
    assert len(apt_upstream.peer.requests.where(lambda r: True)) == before


def test_the_hosts_apt_configuration_does_not_reach_the_build_peer(
    apt_upstream: AptUpstream,
    repository_signer: RepositorySigner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a machine's apt configuration (here through APT_CONFIG: a proxy nothing answers on, and trust in
    # unsigned sources) would change what is fetched and how it is checked; the build reads only its own
    hostile = tmp_path / "host-apt.conf"
    hostile.write_text(
        'Acquire::http::Proxy "http://127.0.0.1:9";\nAPT::Get::AllowUnauthenticated "true";\n'
        'Acquire::AllowInsecureRepositories "true";\n'
    )
    monkeypatch.setenv("APT_CONFIG", str(hostile))
    built = build_bundle(
        apt_upstream.lean_manifest,
        into=tmp_path / "bundle",
        signer=repository_signer,
        progress=lambda _: None,
    )
    assert built.packages, "fetched through the upstream itself, not the proxy"

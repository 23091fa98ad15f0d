"""Every install stage after preflight on the SSH test hosts.

What the hosts can do runs for real ("for_real"): the offline repository configured from a signed local
apt repository, kubelet/kubeadm/kubectl/cri-tools installed and held from it, etcdctl and etcdutl
unpacked from the offline files after their checksum; twice, with no change the second time. Then
`cluster_create.yml` runs every stage after preflight in one `--check` run ("check_mode"): kubeadm
init/join, the pod network and addons applied to an API server and the post-install smoke test need a
running cluster, which no test host can have; every task of every host must be reached without a failure.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from kobot.job_records import JobEvent, JobEventType
from tests.hosts.lab import HostLab
from tests.playbooks.local_repository import LocalRepository, build_local_repository
from tests.playbooks.roles_lab import (
    WITHOUT_HOST_FEATURES,
    RolesLab,
    assert_succeeded,
    changed_tasks,
    open_roles_lab,
    tasks_of,
)

NAMES = ("master-1", "master-2", "worker-1")
"""Two masters (the second joins as a control-plane node) and a worker."""
KUBE_VERSION = "v1.32.8"


def _reached(events: list[JobEvent]) -> set[tuple[str, str]]:
    """(host, task) of every task a host got to, whatever its outcome."""
    return {
        (event.host or "", event.task or "")
        for event in events
        if event.host
        and event.type in (JobEventType.TASK_OK, JobEventType.TASK_CHANGED, JobEventType.TASK_SKIPPED)
    }


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> LocalRepository:
    return build_local_repository(tmp_path_factory.mktemp("offline-repo"), kube_version=KUBE_VERSION)


@pytest.fixture(scope="module")
def lab(
    host_lab: HostLab, tmp_path_factory: pytest.TempPathFactory, repository: LocalRepository
) -> Iterator[RolesLab]:
    with open_roles_lab(host_lab, tmp_path_factory.mktemp("install-lab"), names=NAMES) as opened:
        for name in NAMES:
            repository.copy_to(opened.hosts[name])
            # air-gapped as a customer's host: the root's Debian mirror is unreachable from the lab, and
            # apt would retry it on every cache update
            opened.ssh(name, ": > /etc/apt/sources.list")
        yield opened


def test_kube_packages_for_real_on_test_hosts_from_the_local_repository_idempotent(
    lab: RolesLab, repository: LocalRepository
) -> None:
    extravars = {
        **WITHOUT_HOST_FEATURES,
        "kube_version": KUBE_VERSION,
        "offline_repo_url": repository.apt_url,
        "offline_files_url": repository.files_url,
        "kube_packages_preload_images": False,
    }
    base, events = lab.run("base_os.yml", extravars=extravars)
    assert_succeeded(base)
    assert {f"{n}: Add the offline repository (signature checks on)" for n in NAMES} <= changed_tasks(events)

    packages = {**extravars, "kobot_manage_packages": True}
    first, events = lab.run("kubernetes_packages.yml", extravars=packages)
    assert_succeeded(first)
    changed = changed_tasks(events)
    assert {f"{n}: Install kubeadm, kubelet, kubectl and cri-tools (Debian family)" for n in NAMES} <= changed
    assert (
        "master-1: Unpack etcdctl and etcdutl" in changed
        and "worker-1: Unpack etcdctl and etcdutl" not in changed
    )
    for name in NAMES:
        versions = lab.ssh(
            name, "dpkg-query -W -f '${Package} ${Version}\\n' kubelet kubeadm kubectl cri-tools"
        )
        assert sorted(versions.splitlines()) == sorted(
            f"{package} {version}" for package, version in repository.kube_packages
        )
        assert sorted(lab.ssh(name, "apt-mark showhold").split()) == [
            "cri-tools",
            "kubeadm",
            "kubectl",
            "kubelet",
        ]
    assert lab.ssh("master-1", "/usr/local/bin/etcdctl version").startswith("etcdctl version: 3.5.16")
    assert lab.ssh("worker-1", "ls /usr/local/bin/etcdctl 2>/dev/null; true") == ""

    again, again_events = lab.run("kubernetes_packages.yml", extravars=packages)
    assert_succeeded(again)
    assert again.changed == 0, changed_tasks(again_events)


INSTALL_STAGE_TAGS = (
    "base_os", "nvidia_driver", "containerd", "kube_packages", "load_balancer",
    "control_plane", "workers_join", "cni", "addons", "post",
)  # fmt: skip
"""The role tags of every stage of cluster_create.yml after preflight (boilerplate runs always)."""


def test_cluster_create_every_stage_after_preflight_check_mode_on_test_hosts(
    lab: RolesLab, repository: LocalRepository, tmp_path: Path
) -> None:
    """cluster_create.yml in one run, every stage after preflight in check mode: kubeadm init on master-1,
    master-2 joining as a control-plane node, the worker joining, the pod network, addons and the
    post-install smoke test all reached on their hosts, nothing failed and nothing written."""
    result, events = lab.run(
        "cluster_create.yml",
        extravars={
            **WITHOUT_HOST_FEATURES,
            "kube_version": KUBE_VERSION,
            # the offline site: even in check mode, get_url reads the etcd archive's SHA256SUMS
            "offline_repo_url": repository.apt_url,
            "offline_files_url": repository.files_url,
            "kube_packages_preload_images": False,
            "kubeconfig_dest": str(tmp_path / "admin.conf"),
        },
        secrets={"KOBOT_KEEPALIVED_AUTH": secrets.token_hex(8)},
        tags=INSTALL_STAGE_TAGS,
        check_mode=True,
    )

    assert_succeeded(result)
    assert not tasks_of(events, JobEventType.TASK_FAILED)
    reached = _reached(events)
    # kubeadm's and kubectl's commands are reached and skipped (they would run in a real install)
    expected = {
        ("master-1", "Write the containerd config"),
        ("master-1", "Write the haproxy config"),
        ("master-1", "Write the kubeadm configuration"),
        ("master-1", "Run kubeadm init"),
        ("master-2", "Upload the control-plane certificates for this join"),
        ("master-2", "Run kubeadm join"),
        ("worker-1", "Write the join configuration"),
        ("worker-1", "Run kubeadm join"),
        ("master-1", "Apply the pod network"),
        ("master-1", "Apply the addon manifests"),
        ("master-1", "Wait until every node is Ready (smoke test)"),  # run once, on the first master
    }
    assert expected <= reached, expected - reached
    assert ("master-2", "Run kubeadm init") not in reached and ("master-1", "Run kubeadm join") not in reached
    assert ("worker-1", "Upload the control-plane certificates for this join") in tasks_of(
        events, JobEventType.TASK_SKIPPED
    )
    assert not any(task.startswith("Require a supported") for _, task in reached), (
        "preflight is not a stage here"
    )
    for name in NAMES:
        left = lab.ssh(
            name, "ls /etc/kubernetes/kobot-kubeadm-done /etc/containerd/config.toml 2>/dev/null; true"
        )
        assert left == "", "check mode writes nothing"

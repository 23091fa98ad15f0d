"""Every install stage after preflight on the SSH test hosts.

First the whole create as a user runs it, rehearsed on fresh hosts: `create cluster … dry_run=true`
from Slack, through kobot's own worker, preflight for real (chrony runs on the hosts, started by its
init script) and every stage after it in check mode ("check_mode"): kubeadm init/join, the pod network
and addons applied to an API server and the post-install smoke test need a running cluster, which no
test host can have; every task of every host must be reached without a failure, and nothing may be
recorded or written. What the hosts can do runs for real in tests/bundle/test_packages_on_test_hosts.py:
the offline repository configured from a bundle's signed apt repository, kubelet/kubeadm/kubectl/
cri-tools installed and held from it, etcdctl and etcdutl unpacked from the offline files after their
checksum; twice, with no change the second time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import yaml
from redis import Redis

from kobot import keys
from kobot.audit import AuditLog
from kobot.cluster_spec import OfflineRepository
from kobot.clusters import ClusterStore
from kobot.job_records import JobEvent, JobEventType, StepState
from tests.dry_run.slack_kobot import shown, slack_kobot
from tests.hosts.lab import HostLab
from tests.hosts.time_sync import start_time_sync
from tests.playbooks.local_repository import LOCAL_REPOSITORY_ROOT, LocalRepository, build_local_repository
from tests.playbooks.roles_lab import (
    LAB_MIRRORED_REGISTRIES,
    PLAYBOOKS,
    WITHOUT_HOST_FEATURES,
    RolesLab,
    open_roles_lab,
    tasks_of,
)
from tests.support.waiting import wait_for
from workers.bundle.repository_job import RepositoryStore
from workers.events import read_job_events
from workers.job_store import JobStore

NAMES = ("master-1", "master-2", "worker-1")
"""Two masters and a worker for the packages."""
DRY_RUN_HOSTS = ("master-1", "worker-1")
"""kobot's create (1, 3 or 5 masters) rehearsed on two of them, as one master and one worker: init and a
join; a control-plane join in check mode is in test_roles_on_test_hosts. A third host would cost the
suite a third more remote work on the same 2 cores."""
KUBE_VERSION = "v1.32.8"
DRY_RUN_SECONDS = 900.0
"""Upper bound of the dry run here (preflight and nine check-mode stages on three hosts, 2 busy cores)."""
FILES_PORT = 8097
"""The offline repository's HTTP server on each host's own loopback (the hosts reach nothing else)."""
REGISTRY = "registry.lab.test:5000"
"""Written into configs only: check mode pulls nothing."""
CALICO_VERSION = yaml.safe_load((PLAYBOOKS / "roles/cni/defaults/main.yml").read_text())["calico_version"]
CALICO_MANIFEST = f"calico/{CALICO_VERSION}/tigera-operator.yaml"
"""The Tigera operator manifest's path under the files URL (roles/cni), with the sha256 the bundle
build would record for it."""


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
    built = build_local_repository(tmp_path_factory.mktemp("offline-repo"), kube_version=KUBE_VERSION)
    manifest = built.root / "files" / CALICO_MANIFEST
    manifest.parent.mkdir(parents=True)
    manifest.write_text("# the Tigera operator manifest, as the bundle carries it\n")
    return built


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


def _serve_offline_repository(lab: RolesLab, repository: LocalRepository) -> OfflineRepository:
    """Each host serves the local repository to itself over HTTP, as `setup repository` records one."""
    probe = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {FILES_PORT}))'"
    for name in DRY_RUN_HOSTS:
        lab.ssh(
            name,
            f"setsid -f python3 -m http.server {FILES_PORT} --bind 127.0.0.1 "
            f"--directory {LOCAL_REPOSITORY_ROOT} >/dev/null 2>&1 </dev/null",
        )
        wait_for(partial(_succeeds, lab, name, probe), what=f"{name}'s repository server")
    base = f"http://127.0.0.1:{FILES_PORT}"
    manifest = (repository.root / "files" / CALICO_MANIFEST).read_bytes()
    return OfflineRepository(
        package_repo_url=f"{base}/apt",
        image_registry=REGISTRY,
        files_url=f"{base}/files",
        file_sha256={CALICO_MANIFEST: hashlib.sha256(manifest).hexdigest()},
    )


def _succeeds(lab: RolesLab, name: str, command: str) -> bool:
    return lab.ssh(name, f"{command} && echo yes || true").strip() == "yes"


def test_dry_run_create_from_slack_peer_preflight_for_real_every_stage_check_mode_on_test_hosts(
    lab: RolesLab, repository: LocalRepository, redis_url: str, redis: Redis, data_dir: Path
) -> None:
    """`create cluster prod … dry_run=true` said in Slack: queued without approval, run by kobot's own
    worker on the test hosts (chrony running on each, started by its init script): preflight for real,
    then every install stage in check mode, kubeadm init on the master and the worker's join reached;
    the final message says it was a dry run and what a real run would change. Afterwards there is no
    cluster record, no secret, no kubeconfig, and nothing on the hosts."""
    hosts = [lab.hosts[name] for name in DRY_RUN_HOSTS]
    start_time_sync(hosts)
    for name in DRY_RUN_HOSTS:
        assert " [ + ]  chrony" in lab.ssh(name, "service --status-all 2>&1"), "what service_facts reads"
    RepositoryStore(redis).put(_serve_offline_repository(lab, repository))
    site_vars = {
        **WITHOUT_HOST_FEATURES,
        "preflight_extra_supported_os": [{"distribution": "Debian", "versions": ["12"]}],
        "apiserver_loadbalancer_interface": "eth0",
        "kube_packages_preload_images": False,
        "containerd_mirrored_registries": LAB_MIRRORED_REGISTRIES,
    }
    addresses = ",".join(host.address for host in hosts)
    with slack_kobot(
        data_dir=data_dir,
        redis_url=redis_url,
        ssh_user=hosts[0].user,
        ssh_key_file=hosts[0].key_path,
        ansible_extra_vars=site_vars,
    ) as kobot:
        said = kobot.say(
            f"create cluster prod masters=1 workers=1 version={KUBE_VERSION} hosts={addresses} dry_run=true"
        )
        final = kobot.final(said, timeout=DRY_RUN_SECONDS)

    assert "succeeded in" in final, final
    assert "dry run: create cluster prod" in final
    assert "dry run: nothing was changed and nothing recorded" in final
    assert "a real run would change" in final and "Base OS: " in final and "Control plane: " in final
    assert "Would change" in final
    assert not [m for m in kobot.thread(said) if "pprove" in shown(m)], "a dry run asks no approval"

    job_id = "1"  # the store is new: the first job
    record = JobStore(redis).require(job_id)
    assert record.spec.params["dry_run"] is True
    assert {s.name: s.state for s in record.steps} == {s.name: StepState.SUCCEEDED for s in record.steps}
    assert [s.name for s in record.steps][:4] == ["plan", "inventory", "wait_ssh", "preflight"]
    events = read_job_events(redis, job_id, count=100_000)
    by_step: dict[str, list[JobEvent]] = {}
    for event in events:
        by_step.setdefault(event.step or "", []).append(event)
    # preflight ran for real and passed on every host, time sync included (chrony, as `service` lists it)
    preflight = _reached(by_step["preflight"])
    assert {(f"prod-{n}", "Report the problems found") for n in ("master-1", "worker-1")} <= preflight
    assert {(f"prod-{n}", "Require time synchronisation") for n in ("master-1", "worker-1")} <= tasks_of(
        by_step["preflight"], JobEventType.TASK_SKIPPED
    )
    reached = _reached(events)
    expected = {
        ("prod-master-1", "Write the containerd config"),
        ("prod-master-1", "Write the kubeadm configuration"),
        ("prod-master-1", "Run kubeadm init"),
        ("prod-worker-1", "Write the join configuration"),
        ("prod-worker-1", "Run kubeadm join"),
        ("prod-master-1", "Apply the pod network"),
        ("prod-master-1", "Apply the addon manifests"),
        ("prod-master-1", "Wait until every node is Ready (smoke test)"),
    }
    assert expected <= reached, expected - reached
    assert not tasks_of(events, JobEventType.TASK_FAILED)

    assert not redis.keys(keys.cluster_record("prod").rsplit(":", 1)[0] + ":*"), "no record, no secret"
    assert ClusterStore(redis).get("prod") is None
    assert not (data_dir / "jobs" / job_id / "admin.conf").exists()
    [queued] = AuditLog(redis=redis, store_url=redis_url).query(action="job.queued")
    assert queued.cluster == "prod" and queued.detail["args"]["dry_run"] is True
    for name in DRY_RUN_HOSTS:
        left = lab.ssh(
            name, "ls /etc/kubernetes/kobot-kubeadm-done /etc/containerd/config.toml 2>/dev/null; true"
        )
        assert left == "", "check mode writes nothing"

"""The bot -> Ansible contract for create and upgrade, as tests/workers/test_ansible_contract_peer.py
checks it for node_add: the offline settings and the VIP reach every play's inventory, and the VRRP
password reaches the one play that renders keepalived (its length, never its value) and no other.

Real RQ worker and ansible-runner; every entry playbook is a recorder (local connection) because the
real ones install and upgrade machines; upgrade asks the Kubernetes API peer, a real etcd and the
loopback package mirror as in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from kobot.cluster_spec import OfflineRepository
from kobot.clusters import ClusterStore
from kobot.job_records import JobKind, JobState
from kobot.store import secret_key
from tests.peers.kubernetes import KubernetesApiPeer
from tests.peers.package_mirror import PackageMirrorPeer
from tests.workers.jobkit import job_service, run_queue
from tests.workers.recorders import played as recorded
from tests.workers.recorders import recording_settings, write_recorders
from tests.workers.test_day2_jobs_peer import cluster, live_etcd, peer, submit
from tests.workers.test_etcd_real import EtcdProcess
from workers import etcd, playbook_names
from workers.cluster_create import INSTALL_STAGES
from workers.cluster_secrets import KEEPALIVED_SECRET, ClusterSecrets

__all__ = ["live_etcd", "peer"]  # fixtures shared with the Day 2 job tests

OFFLINE_REGISTRY = "registry.demo.test:5000"
CREATE_PLAYBOOKS = (playbook_names.PREFLIGHT, *(playbook for _, _, playbook in INSTALL_STAGES))
HOSTS = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.11"]
VIP = "192.0.2.10"  # never dialled: the recorders connect nowhere


@pytest.fixture
def mirror() -> Iterator[PackageMirrorPeer]:
    with PackageMirrorPeer() as server:
        yield server


def test_create_gives_each_stage_offline_settings_and_vip_and_keepalived_alone_the_password_fixture_playbooks(
    redis_url: str, redis: Redis, data_dir: Path, tmp_path: Path, mirror: PackageMirrorPeer
) -> None:
    settings, record_dir = recording_settings(
        redis_url, data_dir, playbooks_dir=write_recorders(tmp_path / "playbooks", CREATE_PLAYBOOKS)
    )
    service = job_service(settings, redis)
    offline = {
        "package_repo_url": mirror.base_url,
        "image_registry": OFFLINE_REGISTRY,
        "files_url": mirror.base_url + "/files",
    }

    job_id = submit(
        service, JobKind.CLUSTER_CREATE, masters=3, workers=1, hosts=HOSTS, api_vip=VIP, offline_repo=offline
    )
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    stored = ClusterSecrets(redis=redis, secret=secret_key(settings)).get(
        cluster="demo", name=KEEPALIVED_SECRET
    )
    assert stored is not None and len(stored.decode()) >= 8
    for playbook in CREATE_PLAYBOOKS:
        played = recorded(record_dir, playbook)
        assert played["offline_registry"] == OFFLINE_REGISTRY, playbook
        assert played["offline_repo_url"] == mirror.base_url, playbook
        assert played["offline_files_url"] == mirror.base_url + "/files", playbook
        assert played["vip"] == VIP, playbook
        assert played["masters"] == ["demo-master-1", "demo-master-2", "demo-master-3"], playbook
        expected = len(stored.decode()) if playbook == playbook_names.LOAD_BALANCER else 0
        assert int(played["vrrp_password_length"]) == expected, playbook


def test_upgrade_hands_its_play_the_offline_settings_and_vip_fixture_playbooks_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    tmp_path: Path,
    peer: KubernetesApiPeer,
    mirror: PackageMirrorPeer,
    live_etcd: EtcdProcess,
) -> None:
    settings, record_dir = recording_settings(
        redis_url,
        data_dir,
        playbooks_dir=write_recorders(
            tmp_path / "playbooks", (playbook_names.CLUSTER_UPGRADE, playbook_names.ETCD_BACKUP)
        ),
    )
    service = job_service(settings, redis)
    cluster(
        redis,
        settings,
        peer,
        [("demo-master-1", "master", "127.0.0.1"), ("demo-worker-1", "worker", "127.0.0.11")],
    )
    store = ClusterStore(redis)
    record = store.require("demo")
    repo = OfflineRepository(
        package_repo_url=mirror.base_url,
        image_registry=OFFLINE_REGISTRY,
        files_url=mirror.base_url + "/files",
    )
    record.spec = record.spec.model_copy(update={"offline_repo": repo, "api_vip": VIP})
    store.save(record)
    mirror.serve_rpm([("kubeadm", "1.31.1")])
    etcd.save_access(redis=redis, cluster="demo", access=live_etcd.access)

    job_id = submit(service, JobKind.CLUSTER_UPGRADE, version="1.31.1")
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    played = recorded(record_dir, playbook_names.CLUSTER_UPGRADE)
    assert played["offline_registry"] == OFFLINE_REGISTRY
    assert played["offline_repo_url"] == mirror.base_url
    assert played["offline_files_url"] == mirror.base_url + "/files"
    assert played["vip"] == VIP
    assert int(played["vrrp_password_length"]) == 0, "upgrade renders no keepalived: no VRRP password"

"""The bot -> Ansible contract: what a job hands its playbook is what the roles need.

A day-2 job through JobService and a real RQ worker, against the local Kubernetes API peer; the entry
playbook is a recorder that writes down, as the roles would read them, the offline settings and the
VIP from the inventory and whether the VRRP password is in the environment (its length, never its
value). The roles' own use of these variables is checked in tests/playbooks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, NodeRecord
from kobot.job_records import JobKind, JobState
from kobot.store import secret_key
from tests.peers.kubernetes import KubernetesApiPeer
from tests.workers.jobkit import job_service, run_queue
from tests.workers.recorders import played as recorded
from tests.workers.recorders import recording_settings, write_recorders
from tests.workers.test_day2_jobs_peer import peer, submit
from workers.cluster_secrets import KEEPALIVED_SECRET, KUBECONFIG_SECRET, ClusterSecrets

__all__ = ["peer"]  # the Kubernetes API peer fixture, shared with the Day 2 job tests

OFFLINE = {
    "package_repo_url": "http://192.0.2.5/repo",
    "image_registry": "192.0.2.5:5000",
    "files_url": "http://192.0.2.5/files",
}
NODES = [
    ("demo-master-1", "master", "127.0.0.1"),
    ("demo-master-2", "master", "127.0.0.2"),
    ("demo-master-3", "master", "127.0.0.3"),
    ("demo-worker-1", "worker", "127.0.0.11"),
]


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    return write_recorders(tmp_path / "playbooks", ["node_add.yml"])


def _cluster(redis: Redis, secret: bytes, peer: KubernetesApiPeer, data_dir: Path) -> ClusterRecord:
    record = ClusterRecord(
        name="demo",
        version="1.31.4",
        state=ClusterState.RUNNING,
        spec={
            "version": "1.31.4",
            "masters": 3,
            "workers": 1,
            "api_vip": "192.0.2.10",
            "offline_repo": OFFLINE,
        },
        nodes=[NodeRecord(name=n, role=r, address=a, state="ready") for n, r, a in NODES],
    )
    ClusterStore(redis).save(record)
    kubeconfig = peer.write_kubeconfig(data_dir / "peer.kubeconfig")
    secrets = ClusterSecrets(redis=redis, secret=secret)
    secrets.put(cluster="demo", name=KUBECONFIG_SECRET, value=kubeconfig.read_bytes())
    kubeconfig.unlink()
    for name, role, _ in NODES:
        peer.add_node(name, role=role)
    return record


def test_node_add_hands_the_offline_settings_vip_and_vrrp_password_to_ansible_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, recorder: Path, peer: KubernetesApiPeer
) -> None:
    settings, record_dir = recording_settings(redis_url, data_dir, playbooks_dir=recorder)
    service = job_service(settings, redis)
    _cluster(redis, secret_key(settings), peer, data_dir)
    peer.add_node("demo-worker-2", role="worker")

    job_id = submit(service, JobKind.NODE_ADD, role="worker", host="127.0.0.12")
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    played = recorded(record_dir, "node_add.yml")
    assert played["offline_registry"] == "192.0.2.5:5000"
    assert played["offline_repo_url"] == "http://192.0.2.5/repo"
    assert played["offline_files_url"] == "http://192.0.2.5/files"
    assert played["vip"] == "192.0.2.10"
    stored = ClusterSecrets(redis=redis, secret=secret_key(settings)).get(
        cluster="demo", name=KEEPALIVED_SECRET
    )
    assert stored is not None
    assert int(played["vrrp_password_length"]) == len(stored.decode()) >= 8


def test_add_master_to_a_cluster_without_a_vip_is_refused_before_any_playbook_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, recorder: Path, peer: KubernetesApiPeer
) -> None:
    settings, record_dir = recording_settings(redis_url, data_dir, playbooks_dir=recorder)
    service = job_service(settings, redis)
    ClusterStore(redis).save(
        ClusterRecord(
            name="demo",
            version="1.31.4",
            state=ClusterState.RUNNING,
            spec={"version": "1.31.4", "masters": 1, "workers": 1},
            nodes=[
                NodeRecord(name="demo-master-1", role="master", address="127.0.0.1", state="ready"),
                NodeRecord(name="demo-worker-1", role="worker", address="127.0.0.11", state="ready"),
            ],
        )
    )

    job_id = submit(service, JobKind.NODE_ADD, role="master", host="127.0.0.2")
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert "masters=3 (which gets a VIP)" in (failed.error or "")
    assert not (record_dir / "node_add.json").exists(), "no playbook ran"
    assert [n.name for n in ClusterStore(redis).require("demo").nodes] == ["demo-master-1", "demo-worker-1"]

"""The upgrade job asks the version rules and the offline mirror again before it touches a node: the
cluster or the mirror may have changed between approval and run (real RQ worker, Kubernetes API peer,
loopback package mirror)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from kobot.cluster_spec import OfflineRepository
from kobot.clusters import ClusterStore
from kobot.job_records import JobKind, JobState, StepState
from tests.peers.kubernetes import KubernetesApiPeer
from tests.peers.package_mirror import PackageMirrorPeer
from tests.workers.jobkit import job_service, run_queue
from tests.workers.test_day2_jobs_peer import cluster, peer, playbooks, runs, settings_for, submit
from workers import etcd
from workers.events import read_job_events
from workers.service import JobService

__all__ = ["peer", "playbooks"]  # fixtures shared with the Day 2 job tests

NODES = [("demo-master-1", "master", "127.0.0.1"), ("demo-worker-1", "worker", "localhost")]


@pytest.fixture
def mirror() -> Iterator[PackageMirrorPeer]:
    with PackageMirrorPeer() as server:
        yield server


def with_mirror(redis: Redis, url: str) -> None:
    store = ClusterStore(redis)
    record = store.require("demo")
    repo = OfflineRepository(package_repo_url=url, image_registry="registry.demo.test:5000", files_url=url)
    record.spec = record.spec.model_copy(update={"offline_repo": repo})
    store.save(record)


def check_step(service: JobService, job_id: str) -> StepState:
    return next(s.state for s in service.records.require(job_id).steps if s.name == "check")


@pytest.mark.parametrize(
    ("version", "why"),
    [("1.32.1", "1.30.2 → 1.31.12 → 1.32.1"), ("1.30.1", "kubeadm does not downgrade")],
)
def test_a_job_the_rules_refuse_fails_before_the_snapshot_and_any_playbook_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    version: str,
    why: str,
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, NODES)

    job_id = submit(service, JobKind.CLUSTER_UPGRADE, version=version)
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED and why in (failed.summary or ""), failed.summary
    assert etcd.list_backups(redis=redis, cluster="demo") == [] and runs(settings, "cluster_upgrade") == []
    assert ClusterStore(redis).require("demo").version == "1.30.2"


def test_a_version_the_mirror_lost_since_approval_fails_the_job_before_any_change_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    mirror: PackageMirrorPeer,
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, NODES)
    with_mirror(redis, mirror.base_url)
    mirror.serve_rpm([("kubeadm", "1.31.0")])

    job_id = submit(service, JobKind.CLUSTER_UPGRADE, version="1.31.1")
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert "kubeadm 1.31.1 not confirmed" in (failed.summary or ""), failed.summary
    assert etcd.list_backups(redis=redis, cluster="demo") == [] and runs(settings, "cluster_upgrade") == []
    assert "/repo/repodata/repomd.xml" in mirror.requests.all()


def test_a_version_the_mirror_holds_passes_the_check_and_says_where_it_asked_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    mirror: PackageMirrorPeer,
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, NODES)
    with_mirror(redis, mirror.base_url)
    mirror.serve_rpm([("kubeadm", "1.31.1")])

    job_id = submit(service, JobKind.CLUSTER_UPGRADE, version="1.31.1")
    run_queue(service)

    assert check_step(service, job_id) is StepState.SUCCEEDED
    said = [e.message for e in read_job_events(redis, job_id) if e.message]
    assert any("offline repository holds kubeadm 1.31.1" in m for m in said), said


def test_a_kubelet_newer_than_the_api_server_fails_the_job_before_any_change_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, NODES)
    peer.set_kubelet_version("demo-worker-1", "v1.31.0")  # installed by hand, ahead of the control plane

    job_id = submit(service, JobKind.CLUSTER_UPGRADE, version="1.31.1")
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert "kubelets newer than the API server (1.30.2): demo-worker-1 (v1.31.0)" in (failed.summary or "")
    assert etcd.list_backups(redis=redis, cluster="demo") == [] and runs(settings, "cluster_upgrade") == []
    assert peer.calls("GET", "/version"), "the API server was asked its version"

"""`add node` end to end through JobService and a real RQ worker: the Kubernetes API is the local peer,
Ansible runs the recording fixture playbooks of tests/workers/test_day2_jobs_peer.py."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from kobot.clusters import ClusterStore
from kobot.job_records import JobKind, JobState
from tests.peers.kubernetes import KubernetesApiPeer
from tests.workers.jobkit import job_service, run_queue
from tests.workers.test_day2_jobs_peer import (
    THREE_WORKERS,
    cluster,
    peer,
    playbooks,
    runs,
    settings_for,
    submit,
)

__all__ = ["peer", "playbooks"]  # fixtures shared with the Day 2 job tests


def test_add_node_joins_the_named_host_and_waits_until_ready_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    peer.add_node("demo-worker-4", role="worker")  # what kubeadm join makes appear in the API

    job_id = submit(service, JobKind.NODE_ADD, role="worker", host="localhost")
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert [s.name for s in done.steps] == ["plan", "machines", "inventory", "wait_ssh", "join", "ready"]
    [played] = runs(settings, "node_add")
    assert played["vars"]["nodes_to_add"] == ["demo-worker-4"]
    record = ClusterStore(redis).require("demo")
    added = next(n for n in record.nodes if n.name == "demo-worker-4")
    assert (added.address, added.role, added.state) == ("localhost", "worker", "ready")


def test_add_node_on_own_machines_without_a_host_says_how_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)

    job_id = submit(service, JobKind.NODE_ADD, role="worker", host=None)
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert "add node demo host=<address>" in (failed.error or "")
    assert runs(settings, "node_add") == []

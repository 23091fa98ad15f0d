"""`replace node` end to end through JobService and a real RQ worker, like the add and scale tests: the
Kubernetes API is the local peer, Ansible runs the recording fixture playbooks of
tests/workers/test_day2_jobs_peer.py. Manual clusters name the new machine (`host=`); IaaS clusters get
one from the pool, created by Terraform's `testhosts` module (standing in for vSphere) on an SSH test
host. A worker's successor joins before the old worker leaves; a master leaves etcd first."""

from __future__ import annotations

from pathlib import Path

from redis import Redis

from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, NodeRecord
from kobot.job_records import JobEventType, JobKind, JobState
from kobot.settings import Settings
from kobot.settings_ip_pools import IpPoolConfig
from kobot.store import secret_key
from tests.hosts.lab import LabHost
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
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.events import read_job_events
from workers.ippool import IpPools

__all__ = ["peer", "playbooks"]  # fixtures shared with the Day 2 job tests

REPO = Path(__file__).resolve().parents[2]
THREE_MASTERS = [
    ("demo-master-1", "master", "127.0.0.1"),
    ("demo-master-2", "master", "127.0.0.2"),
    ("demo-master-3", "master", "127.0.0.3"),
    ("demo-worker-1", "worker", "127.0.0.11"),
]


def _step_order(redis: Redis, job_id: str) -> list[str]:
    return [e.step or "" for e in read_job_events(redis, job_id) if e.type is JobEventType.STEP_STARTED]


def _logs(redis: Redis, job_id: str) -> list[str]:
    return [e.message or "" for e in read_job_events(redis, job_id) if e.type is JobEventType.LOG]


def test_replace_worker_on_own_machines_joins_the_named_host_first_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    peer.add_node("demo-worker-4", role="worker")  # what kubeadm join makes appear in the API

    job_id = submit(service, JobKind.NODE_REPLACE, node="demo-worker-2", host="localhost")
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    order = _step_order(redis, job_id)
    assert order.index("join") < order.index("ready") < order.index("drain") < order.index("remove")
    assert "a worker leaves after its successor is Ready" in _logs(redis, job_id)
    [joined] = runs(settings, "node_add")
    [left] = runs(settings, "node_remove")
    assert joined["vars"]["nodes_to_add"] == ["demo-worker-4"]
    assert left["vars"]["nodes_to_remove"] == ["demo-worker-2"]
    assert "demo-worker-2" not in peer.node_names()
    record = ClusterStore(redis).require("demo")
    new = next(n for n in record.nodes if n.name == "demo-worker-4")
    assert (new.address, new.state) == ("localhost", "ready")
    assert "demo-worker-2" not in [n.name for n in record.nodes] and record.spec.workers == 3


def test_replace_worker_on_own_machines_without_a_host_says_how_before_any_change_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)

    job_id = submit(service, JobKind.NODE_REPLACE, node="demo-worker-2", host=None)
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert "replace node demo-worker-2 on demo host=<address>" in (failed.error or "")
    assert runs(settings, "node_add") == [] and runs(settings, "node_remove") == []
    assert not peer.node("demo-worker-2")["spec"].get("unschedulable")  # type: ignore[index]


def test_replace_master_on_own_machines_leaves_etcd_before_its_successor_joins_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_MASTERS)
    peer.set_ready("demo-master-3", False)  # the dead master being replaced
    peer.add_node("demo-master-4", role="master")

    job_id = submit(service, JobKind.NODE_REPLACE, node="demo-master-3", host="localhost")
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    order = _step_order(redis, job_id)
    assert order.index("master_leaves") < order.index("machines") < order.index("join")
    [left] = runs(settings, "node_remove")
    [joined] = runs(settings, "node_add")
    assert left["vars"]["nodes_to_remove"] == ["demo-master-3"]
    assert left["control_plane"] == ["demo-master-1", "demo-master-2", "demo-master-3"], "not yet the new one"
    assert joined["vars"]["nodes_to_add"] == ["demo-master-4"]
    assert joined["control_plane"] == ["demo-master-1", "demo-master-2", "demo-master-4"], "the old one left"
    logs = _logs(redis, job_id)
    assert "demo-master-3 leaves etcd first, then demo-master-4 (localhost) joins in its place" in logs
    assert "no node leaves" in logs, "nothing is left to leave after the join"
    assert "demo-master-3" not in peer.node_names()
    record = ClusterStore(redis).require("demo")
    masters = sorted(n.name for n in record.nodes if n.role == "master")
    assert masters == ["demo-master-1", "demo-master-2", "demo-master-4"] and record.spec.masters == 3


def test_replace_master_refused_at_job_time_when_the_others_hold_no_majority_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_MASTERS[1:])  # two masters: one alone is no majority of two

    job_id = submit(service, JobKind.NODE_REPLACE, node="demo-master-3", host="localhost")
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert "demo-master-3 cannot leave etcd: demo has 2 etcd members" in (failed.summary or "")
    assert "needs 2 of them and only 1 would stay" in (failed.summary or "")
    assert runs(settings, "node_remove") == [] and runs(settings, "node_add") == []
    assert "demo-master-3" in peer.node_names()


# --- IaaS: Terraform's testhosts module, the new machine an SSH test host ---------------------------
def _iaas_settings(
    redis_url: str, data_dir: Path, playbooks: Path, tmp_path: Path, pool: LabHost
) -> Settings:
    modules = tmp_path / "terraform" / "modules"
    modules.mkdir(parents=True)
    (modules / "vsphere").symlink_to(REPO / "terraform" / "modules" / "testhosts", target_is_directory=True)
    return settings_for(redis_url, data_dir, playbooks).model_copy(
        update={
            "ssh_user": pool.user,
            "ssh_key_file": pool.key_path,
            "terraform_dir": tmp_path / "terraform",
            "ip_pools": [
                IpPoolConfig(
                    zone="lab",
                    cidr=pool.address.rsplit(".", 1)[0] + ".0/24",
                    first=pool.address,
                    last=pool.address,
                )
            ],
        }
    )


def _iaas_cluster(redis: Redis, settings: Settings, peer: KubernetesApiPeer, *, network: str) -> None:
    """A vSphere cluster whose nodes have addresses no host answers (the fixture playbooks play locally;
    Terraform takes no loopback address), and the settings' IP pool loaded as kobot's start does."""
    for pool in settings.ip_pools:
        IpPools(redis).configure(pool=pool)
    nodes = [(n, r, f"{network}.{201 + i}") for i, (n, r, _) in enumerate(THREE_MASTERS)]
    ClusterStore(redis).save(
        ClusterRecord(
            name="demo",
            provider="vsphere",
            version="1.30.2",
            state=ClusterState.RUNNING,
            spec={
                "version": "1.30.2",
                "masters": 3,
                "workers": 1,
                "provider": "vsphere",
                "api_vip": f"{network}.250",
            },
            nodes=[NodeRecord(name=n, role=r, address=a, zone="lab", state="ready") for n, r, a in nodes],
        )
    )
    kubeconfig = peer.write_kubeconfig(settings.data_dir / "peer.kubeconfig")
    ClusterSecrets(redis=redis, secret=secret_key(settings)).put(
        cluster="demo", name=KUBECONFIG_SECRET, value=kubeconfig.read_bytes()
    )
    kubeconfig.unlink()
    for name, role, _ in nodes:
        peer.add_node(name, role=role)


def test_replace_master_on_vsphere_gets_a_machine_from_the_pool_after_the_old_leaves_testhosts_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    lab_hosts: list[LabHost],
    tmp_path: Path,
) -> None:
    pool = lab_hosts[0]
    settings = _iaas_settings(redis_url, data_dir, playbooks, tmp_path, pool)
    service = job_service(settings, redis)
    _iaas_cluster(redis, settings, peer, network=pool.address.rsplit(".", 1)[0])
    peer.add_node("demo-master-4", role="master")

    job_id = submit(service, JobKind.NODE_REPLACE, node="demo-master-2")
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    [left] = runs(settings, "node_remove")
    [joined] = runs(settings, "node_add")
    assert left["vars"]["nodes_to_remove"] == ["demo-master-2"]
    assert joined["vars"]["nodes_to_add"] == ["demo-master-4"]
    order = _step_order(redis, job_id)
    assert order.index("master_leaves") < order.index("machines") < order.index("wait_ssh")
    record = ClusterStore(redis).require("demo")
    new = next(n for n in record.nodes if n.name == "demo-master-4")
    assert new.address == pool.address and new.state == "ready"
    reserved = IpPools(redis).reserved(cluster="demo")
    assert reserved.get("demo-master-4") == pool.address and "demo-master-2" not in reserved
    state = (data_dir / "terraform" / "demo").rglob("terraform.tfstate")
    assert any("demo-master-4" in p.read_text() and "demo-master-2" not in p.read_text() for p in state)


def test_add_node_and_scale_up_on_vsphere_create_the_machine_with_testhosts_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    lab_hosts: list[LabHost],
    tmp_path: Path,
) -> None:
    pool = lab_hosts[0]
    settings = _iaas_settings(redis_url, data_dir, playbooks, tmp_path, pool)
    service = job_service(settings, redis)
    _iaas_cluster(redis, settings, peer, network=pool.address.rsplit(".", 1)[0])
    peer.add_node("demo-worker-2", role="worker")

    added = submit(service, JobKind.NODE_ADD, role="worker", host=None)
    run_queue(service)

    done = service.records.require(added)
    assert done.state is JobState.SUCCEEDED, done.error
    assert [s.name for s in done.steps] == ["plan", "machines", "inventory", "wait_ssh", "join", "ready"]
    new = next(n for n in ClusterStore(redis).require("demo").nodes if n.name == "demo-worker-2")
    assert (new.address, new.state) == (pool.address, "ready")

    # the pool's one address is taken: the next worker has none, and says so before any machine
    scaled = submit(service, JobKind.WORKERS_SCALE, delta=1)
    run_queue(service)
    refused = service.records.require(scaled)
    assert refused.state is JobState.FAILED and "IP pool of zone lab is full" in (refused.summary or "")

    removed = submit(service, JobKind.NODE_REMOVE, node="demo-worker-2")
    run_queue(service)
    assert service.records.require(removed).state is JobState.SUCCEEDED
    assert "demo-worker-2" not in IpPools(redis).reserved(cluster="demo"), "its address went back"

    # the next worker takes the freed address (and, counted from the workers there are, the name)
    peer.add_node("demo-worker-2", role="worker")
    scaled = submit(service, JobKind.WORKERS_SCALE, delta=1)
    run_queue(service)
    done = service.records.require(scaled)
    assert done.state is JobState.SUCCEEDED, done.error
    assert [s.name for s in done.steps] == ["plan", "machines", "inventory", "wait_ssh", "join", "ready"]
    workers = {n.name: n.address for n in ClusterStore(redis).require("demo").nodes if n.role == "worker"}
    assert workers["demo-worker-2"] == pool.address and len(workers) == 2
    assert [r["vars"]["nodes_to_add"] for r in runs(settings, "node_add")] == [
        ["demo-worker-2"],
        ["demo-worker-2"],
    ]

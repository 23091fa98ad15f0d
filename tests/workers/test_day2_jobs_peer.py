"""Day 2 jobs end to end through JobService and a real RQ worker, against the Kubernetes API peer.

Layers: the Kubernetes API is the local peer (tests/peers/kubernetes.py) reached by the official
client; etcd is a real etcd; Ansible is real ansible-runner, but on fixture entry playbooks written
below (local connection) that record what kobot handed them, because the real ones reset and
upgrade machines.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from kobot.cluster_spec import ClusterShape, Provider
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, NodeRecord
from kobot.job_records import JobEventType, JobKind, JobState, StepState
from kobot.settings import Settings
from kobot.store import secret_key
from tests.peers.kubernetes import KubernetesApiPeer
from tests.workers.jobkit import job_service, job_settings, reload, run_queue, spec, wait_for
from tests.workers.test_etcd_real import EtcdProcess, etcdctl, start_etcd
from workers import etcd
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets
from workers.events import read_job_events
from workers.service import JobService

RECORDER = """---
- name: Record what kobot handed {name}
  hosts: localhost
  connection: local
  gather_facts: false
  tags: [always]
  tasks:
    - name: Read the kubeconfig file kobot wrote for this run
      ansible.builtin.stat:
        path: "{{{{ kubeconfig_path | default('/nonexistent') }}}}"
      register: kubeconfig
    - name: Append this run
      ansible.builtin.shell: >-
        echo {{{{ record | to_json | quote }}}} >> {{{{ record_dir }}}}/{name}.jsonl
      vars:
        record:
          vars:
            nodes_to_remove: "{{{{ nodes_to_remove | default(none) }}}}"
            nodes_to_add: "{{{{ nodes_to_add | default(none) }}}}"
            known_hosts_path: "{{{{ known_hosts_path | default(none) }}}}"
            kube_version: "{{{{ kube_version | default(none) }}}}"
            restore: "{{{{ etcd_restore_snapshot | default(none) }}}}"
            sha256: "{{{{ etcd_restore_sha256 | default(none) }}}}"
          kubeconfig_mode: "{{{{ kubeconfig.stat.mode | default(none) }}}}"
          control_plane: "{{{{ groups['kube_control_plane'] | default([]) }}}}"
          workers: "{{{{ groups['kube_node'] | default([]) | difference(groups['kube_control_plane']) }}}}"
      changed_when: true
"""

PLAYBOOKS = ("node_remove", "node_add", "cluster_upgrade", "etcd_backup", "etcd_restore", "cluster_delete")


@pytest.fixture
def peer() -> Iterator[KubernetesApiPeer]:
    with KubernetesApiPeer(eviction_delay=0.05) as server:
        yield server


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    for name in PLAYBOOKS:
        (folder / f"{name}.yml").write_text(RECORDER.format(name=name))
    return folder


def settings_for(redis_url: str, data_dir: Path, playbooks: Path, **extra: Any) -> Settings:
    record_dir = data_dir / "played"
    record_dir.mkdir(exist_ok=True)
    # the fixture playbooks play on this machine: the test-only setting lets its loopback addresses be hosts
    return job_settings(
        redis_url,
        data_dir,
        playbooks_dir=playbooks,
        plugins=[],
        allow_local_hosts=True,
        ansible_extra_vars={"record_dir": str(record_dir), **extra},
    )


def runs(settings: Settings, playbook: str) -> list[dict[str, Any]]:
    path = settings.data_dir / "played" / f"{playbook}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def cluster(
    redis: Redis, settings: Settings, peer: KubernetesApiPeer, nodes: list[tuple[str, str, str]]
) -> ClusterRecord:
    """A running cluster kobot created: its record, its encrypted admin kubeconfig, its API nodes."""
    record = ClusterRecord(
        name="demo",
        version="1.30.2",
        state=ClusterState.RUNNING,
        spec={"version": "1.30.2", "masters": 1, "workers": len(nodes) - 1},
        nodes=[NodeRecord(name=n, role=r, address=a, state="ready") for n, r, a in nodes],
    )
    ClusterStore(redis).save(record)
    kubeconfig = peer.write_kubeconfig(settings.data_dir / "peer.kubeconfig")
    ClusterSecrets(redis=redis, secret=secret_key(settings)).put(
        cluster="demo", name=KUBECONFIG_SECRET, value=kubeconfig.read_bytes()
    )
    kubeconfig.unlink()
    for name, role, _ in nodes:
        peer.add_node(name, role=role)
    return record


THREE_WORKERS = [
    ("demo-master-1", "master", "127.0.0.1"),
    ("demo-worker-1", "worker", "127.0.0.11"),
    ("demo-worker-2", "worker", "127.0.0.12"),
    ("demo-worker-3", "worker", "127.0.0.13"),
]


def submit(service: JobService, kind: JobKind, **params: Any) -> str:
    return service.submit(spec(service, kind=kind.value, **params)).job_id


def test_scale_down_drains_the_newest_workers_then_removes_them_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    peer.add_pod("default", "web-1", node="demo-worker-3", labels={"app": "web"})
    peer.add_pod("default", "web-2", node="demo-worker-2", labels={"app": "web"})
    peer.add_pod("kube-system", "proxy-3", node="demo-worker-3", owner_kind="DaemonSet")
    peer.add_budget("default", "web", match_labels={"app": "web"}, disruptions_allowed=1)

    job_id = submit(service, JobKind.WORKERS_SCALE, delta=-2)
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert [s.name for s in done.steps] == ["plan", "inventory", "cordon", "drain", "remove"]
    assert peer.node_names() == ["demo-master-1", "demo-worker-1"]
    assert sorted(c.path.split("/")[-2] for c in peer.calls("POST", "/eviction")) >= ["web-1", "web-2"]
    assert not peer.calls("POST", "/pods/proxy-3/eviction")
    [played] = runs(settings, "node_remove")
    assert played["vars"]["nodes_to_remove"] == ["demo-worker-3", "demo-worker-2"]
    assert played["kubeconfig_mode"] == "0600"
    assert played["vars"]["known_hosts_path"] == str(data_dir / "jobs" / "known_hosts")
    assert played["control_plane"] == ["demo-master-1"] and "demo-worker-3" in played["workers"]
    assert not (data_dir / "jobs" / job_id / "admin.conf").exists(), "the kubeconfig file lives for one run"
    record = ClusterStore(redis).require("demo")
    assert [n.name for n in record.nodes] == ["demo-master-1", "demo-worker-1"]
    assert record.history[-1].outcome == "succeeded" and record.spec.workers == 1


def test_blocked_drain_fails_the_job_naming_the_pods_and_keeps_the_node_then_retry_resumes_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks, drain_timeout_seconds=1)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    peer.add_pod("default", "db-0", node="demo-worker-2", labels={"app": "db"})
    peer.add_budget("default", "db", match_labels={"app": "db"}, disruptions_allowed=0)

    job_id = submit(service, JobKind.NODE_REMOVE, node="demo-worker-2")
    run_queue(service)

    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert [s.state.value for s in failed.steps] == [
        "succeeded",
        "succeeded",
        "succeeded",
        "failed",
        "pending",
    ]
    assert failed.summary is not None and "default/db-0" in failed.summary
    assert failed.failed_host == "demo-worker-2"
    assert "demo-worker-2" in peer.node_names(), "an undrained node is never deleted"
    assert peer.node("demo-worker-2")["spec"]["unschedulable"] is True  # type: ignore[index]
    assert runs(settings, "node_remove") == [], "the remove playbook never ran"
    assert "demo-worker-2" in [n.name for n in ClusterStore(redis).require("demo").nodes]
    assert ClusterStore(redis).require("demo").history[-1].outcome == "failed"

    peer.set_disruptions_allowed("default", "db", 1)
    before = len(read_job_events(redis, job_id))
    service.retry(job_id)
    run_queue(service)

    assert reload(service, failed).state is JobState.SUCCEEDED
    started = [e.step for e in read_job_events(redis, job_id)[before:] if e.type is JobEventType.STEP_STARTED]
    assert started == ["drain", "remove"]
    assert "demo-worker-2" not in peer.node_names()
    assert runs(settings, "node_remove")[0]["vars"]["nodes_to_remove"] == ["demo-worker-2"]


def test_cancel_during_a_drain_stops_the_job_and_keeps_the_node_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks, drain_timeout_seconds=60)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    peer.add_pod("default", "db-0", node="demo-worker-1", labels={"app": "db"})
    peer.add_budget("default", "db", match_labels={"app": "db"}, disruptions_allowed=0)
    job_id = submit(service, JobKind.NODE_REMOVE, node="demo-worker-1")
    worker = threading.Thread(target=run_queue, args=(service,), daemon=True)
    worker.start()

    def blocked() -> bool:
        return any("blocked" in (e.message or "") for e in read_job_events(redis, job_id))

    wait_for(blocked, timeout=30, what="the drain to wait on the budget")
    service.cancel(job_id)
    worker.join(timeout=15)

    assert not worker.is_alive()
    done = service.records.require(job_id)
    assert done.state is JobState.CANCELLED
    assert "demo-worker-1" in peer.node_names()
    assert runs(settings, "node_remove") == []


@pytest.fixture
def live_etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    member = start_etcd(data_dir=tmp_path / "etcd-live")
    yield member
    member.stop()


def test_etcd_backup_job_takes_a_real_snapshot_and_names_it_real_etcd(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    live_etcd: EtcdProcess,
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    etcdctl(live_etcd, "put", "/registry/x", "1")
    etcd.save_access(redis=redis, cluster="demo", access=live_etcd.access)

    job_id = submit(service, JobKind.ETCD_BACKUP)
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    [backup] = etcd.list_backups(redis=redis, cluster="demo")
    assert backup.job_id == job_id and backup.revision == 2  # one put after the start
    assert etcd.verified_file(data_dir=data_dir, backup=backup).is_file()
    assert ClusterStore(redis).require("demo").history[-1].outcome == f"succeeded (backup {backup.id})"
    assert any(backup.id in (e.message or "") for e in read_job_events(redis, job_id))
    assert runs(settings, "etcd_backup") == [], "kobot reached etcd itself"


def test_etcd_restore_job_checks_the_backup_first_fixture_playbooks_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    live_etcd: EtcdProcess,
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    nodes = [("demo-master-1", "master", "127.0.0.1"), ("demo-worker-1", "worker", "localhost")]
    cluster(redis, settings, peer, nodes)
    backup = etcd.snapshot_save(access=live_etcd.access, cluster="demo", data_dir=data_dir, redis=redis)

    job_id = submit(service, JobKind.ETCD_RESTORE, backup=backup.id)
    run_queue(service)

    assert service.records.require(job_id).state is JobState.SUCCEEDED
    [played] = runs(settings, "etcd_restore")
    assert played["vars"]["restore"] == str(data_dir / "backups" / "demo" / backup.file)
    assert played["vars"]["sha256"] == backup.sha256

    path = data_dir / "backups" / "demo" / backup.file
    path.write_bytes(path.read_bytes() + b"tampered")
    second = submit(service, JobKind.ETCD_RESTORE, backup=backup.id)
    run_queue(service)
    refused = service.records.require(second)
    assert refused.state is JobState.FAILED and "checksum" in (refused.summary or "")
    assert len(runs(settings, "etcd_restore")) == 1, "a tampered snapshot never reaches the members"
    missing = submit(service, JobKind.ETCD_RESTORE, backup="demo-19990101-000000")
    run_queue(service)
    assert "has no backup demo-19990101-000000" in (service.records.require(missing).summary or "")


def test_upgrade_snapshots_first_then_masters_then_workers_in_batches_fixture_playbooks_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    live_etcd: EtcdProcess,
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    nodes = [
        ("demo-master-1", "master", "127.0.0.1"),
        ("demo-worker-1", "worker", "localhost"),
        ("demo-worker-2", "worker", "::1"),
    ]
    cluster(redis, settings, peer, nodes)
    etcd.save_access(redis=redis, cluster="demo", access=live_etcd.access)
    peer.add_pod("default", "web-1", node="demo-worker-1", labels={"app": "web"})
    peer.add_pod("default", "web-2", node="demo-worker-2", labels={"app": "web"})

    job_id = submit(service, JobKind.CLUSTER_UPGRADE, version="1.31.1")
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    played = runs(settings, "cluster_upgrade")
    assert [(p["control_plane"], p["workers"]) for p in played] == [
        (["demo-master-1"], []),
        (["demo-master-1"], ["demo-worker-1"]),
        (["demo-master-1"], ["demo-worker-2"]),
    ]
    assert {p["vars"]["kube_version"] for p in played} == {"1.31.1"}
    [backup] = etcd.list_backups(redis=redis, cluster="demo")
    events = read_job_events(redis, job_id)
    order = [e.step for e in events if e.type is JobEventType.STEP_STARTED]
    assert order.index("snapshot") < order.index("control_plane") < order.index("workers")
    assert peer.pods_on("demo-worker-1") == [] and peer.pods_on("demo-worker-2") == []
    patches = [(c.path.rsplit("/", 1)[-1], c.body["spec"]["unschedulable"]) for c in peer.calls("PATCH")]
    assert patches == [
        ("demo-worker-1", True),
        ("demo-worker-1", False),
        ("demo-worker-2", True),
        ("demo-worker-2", False),
    ]
    record = ClusterStore(redis).require("demo")
    assert record.version == "1.31.1" and record.state is ClusterState.RUNNING
    assert record.history[-1].outcome == f"succeeded (backup {backup.id})"


def test_upgrade_refuses_a_cluster_with_a_sick_node_before_any_change_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(
        redis,
        settings,
        peer,
        [("demo-master-1", "master", "127.0.0.1"), ("demo-worker-1", "worker", "localhost")],
    )
    peer.set_ready("demo-worker-1", False)
    job_id = submit(service, JobKind.CLUSTER_UPGRADE, version="1.31.1")
    run_queue(service)
    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED and "demo-worker-1" in (failed.summary or "")
    assert etcd.list_backups(redis=redis, cluster="demo") == [] and runs(settings, "cluster_upgrade") == []
    assert ClusterStore(redis).require("demo").version == "1.30.2"


def test_scale_up_on_a_manual_cluster_says_how_to_add_machines(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    record = cluster(redis, settings, peer, THREE_WORKERS)
    record.spec = ClusterShape(
        provider=Provider.MANUAL,
        version="1.30.2",
        masters=1,
        workers=3,
        hosts=tuple(n.address for n in record.nodes),
    )
    ClusterStore(redis).save(record)
    job_id = submit(service, JobKind.WORKERS_SCALE, delta=2)
    run_queue(service)
    failed = service.records.require(job_id)
    assert failed.state is JobState.FAILED
    assert "cannot plan new workers for demo" in (failed.summary or "")
    assert "add node demo host=" in (failed.error or "")
    assert len(ClusterStore(redis).require("demo").nodes) == 4


def test_delete_resets_every_node_and_forgets_the_cluster_but_keeps_backups_fixture_playbooks_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    peer: KubernetesApiPeer,
    live_etcd: EtcdProcess,
) -> None:
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    backup = etcd.snapshot_save(access=live_etcd.access, cluster="demo", data_dir=data_dir, redis=redis)

    job_id = submit(service, JobKind.CLUSTER_DELETE)
    run_queue(service)

    assert service.records.require(job_id).state is JobState.SUCCEEDED
    [played] = runs(settings, "cluster_delete")
    assert played["control_plane"] == ["demo-master-1"] and len(played["workers"]) == 3
    assert ClusterStore(redis).get("demo") is None
    assert ClusterSecrets(redis=redis, secret=secret_key(settings)).names(cluster="demo") == []
    assert [b.id for b in etcd.list_backups(redis=redis, cluster="demo")] == [backup.id]


def test_a_retry_does_not_reset_nodes_an_earlier_attempt_already_removed_fixture_playbooks_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, peer: KubernetesApiPeer
) -> None:
    """Every attempt renders its inventory from the record, and a node leaves the record only after its
    reset: a retry of the remove step (say Terraform failed after the record was saved) finds no node
    left to reset, instead of naming hosts that its inventory no longer holds."""
    settings = settings_for(redis_url, data_dir, playbooks)
    service = job_service(settings, redis)
    cluster(redis, settings, peer, THREE_WORKERS)
    job_id = submit(service, JobKind.WORKERS_SCALE, delta=-1)
    run_queue(service)
    assert service.records.require(job_id).state is JobState.SUCCEEDED
    failed_late = service.records.require(job_id)
    failed_late.state = JobState.FAILED
    failed_late.steps[-1].state = StepState.FAILED
    service.records.save(failed_late)

    service.retry(job_id)
    run_queue(service)

    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, done.error
    [played] = runs(settings, "node_remove")
    assert played["vars"]["nodes_to_remove"] == ["demo-worker-3"]
    assert [n.name for n in ClusterStore(redis).require("demo").nodes] == [
        "demo-master-1",
        "demo-worker-1",
        "demo-worker-2",
    ]

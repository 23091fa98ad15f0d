"""Addon jobs end to end at the Kubernetes API peer (real RQ worker, real charts served over loopback,
Helm in a child process): install applies exactly the render, upgrade prunes what left it, uninstall
removes exactly what was applied and nothing else."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis import Redis

from kobot.cluster_spec import OfflineRepository
from kobot.clusters import ClusterStore
from kobot.job_records import JobEventType, JobState, StepState
from kobot.settings import Settings
from tests.addons.chart_server import ChartRepository
from tests.peers.kubernetes import KubernetesApiPeer
from tests.workers.jobkit import job_service, run_queue, spec, wait_for
from tests.workers.test_day2_jobs_peer import cluster, playbooks, settings_for
from workers.addons import ADDON_INSTALL, ADDON_UNINSTALL, ADDON_UPGRADE, steps
from workers.addons.catalog import CATALOG, AddonInputs
from workers.addons.releases import ReleaseRecord, ReleaseStore
from workers.events import read_job_events
from workers.service import JobService

__all__ = ["playbooks"]

MIRROR = "registry.demo.test:5000"
NODES = [("demo-master-1", "master", "127.0.0.1"), ("demo-worker-1", "worker", "localhost")]


def addon_settings(redis_url: str, data_dir: Path, playbooks: Path, repository: ChartRepository) -> Settings:
    settings = settings_for(redis_url, data_dir, playbooks)
    return settings.model_copy(
        update={
            "addons": settings.addons.model_copy(
                update={
                    "chart_repository": repository.url,
                    "kobot_webhook_url": "https://kobot.example.test/alerts/alertmanager",
                }
            ),
            "alerts": settings.alerts.model_copy(update={"webhook_bearer_token": SecretStr("hook-token")}),
        }
    )


def demo_cluster(redis: Redis, settings: Settings, peer: KubernetesApiPeer) -> None:
    cluster(redis, settings, peer, NODES)
    store = ClusterStore(redis)
    record = store.require("demo")
    repo = OfflineRepository(
        package_repo_url="http://127.0.0.1:1/repo", image_registry=MIRROR, files_url="http://127.0.0.1:1/f"
    )
    store.save(record.model_copy(update={"spec": record.spec.model_copy(update={"offline_repo": repo})}))


def run(service: JobService, kind: str, **params: Any) -> str:
    job_id = service.submit(spec(service, kind=kind, **params)).job_id
    run_queue(service)
    done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, (done.summary, done.error)
    return job_id


def release_of(redis: Redis) -> ReleaseRecord:
    record = ReleaseStore(redis).get(cluster="demo", addon="monitoring")
    assert record is not None
    return record


def labelled(peer: KubernetesApiPeer, release: str) -> set[str]:
    return {
        label
        for label, body in peer.applied().items()
        if (body["metadata"].get("labels") or {}).get("kobot.io/addon") == release
    }


def test_monitoring_install_upgrade_prune_and_uninstall_leave_exactly_the_expected_objects_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    chart_repository: ChartRepository,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = addon_settings(redis_url, data_dir, playbooks, chart_repository)
    service = job_service(settings, redis)
    with KubernetesApiPeer() as peer:
        demo_cluster(redis, settings, peer)
        peer.add_config_map("default", "not-ours", data={"keep": "me"})

        install = run(service, ADDON_INSTALL, addon="monitoring", values={})
        release = release_of(redis)
        owned = {str(ref) for ref in release.objects}
        assert labelled(peer, "monitoring") == owned and len(owned) > 100
        assert "Alertmanager monitoring/monitoring-kube-prometheus-alertmanager" in owned
        assert release.chart_version == "88.5.3" and all(i.startswith(f"{MIRROR}/") for i in release.images)
        messages = [e.message or "" for e in read_job_events(redis, install) if e.type is JobEventType.LOG]
        assert any(m.startswith("applied ") for m in messages) and "every workload is ready" in messages
        assert "hook-token" not in " ".join(messages)
        assert "Grafana: `kubectl -n monitoring port-forward svc/monitoring-grafana 80`" in (
            service.records.require(install).summary or ""
        )

        # the next catalog version drops Grafana: the upgrade applies the new render and prunes the rest
        entry = CATALOG["monitoring"]

        def without_grafana(inputs: AddonInputs) -> dict[str, Any]:
            return {**entry.values(inputs), "grafana": {"enabled": False}}

        monkeypatch.setitem(CATALOG, "monitoring", dataclasses.replace(entry, values=without_grafana))
        upgrade = run(service, ADDON_UPGRADE, addon="monitoring", values={})
        upgraded = release_of(redis)
        said = [e.message or "" for e in read_job_events(redis, upgrade) if e.type is JobEventType.LOG]
        assert "not in this render, not waited for: Deployment/monitoring-grafana" in said
        now = {str(ref) for ref in upgraded.objects}
        gone = owned - now
        # Grafana and its dashboards left the render; Prometheus and Alertmanager stay
        assert {"Deployment monitoring/monitoring-grafana", "Service monitoring/monitoring-grafana"} <= gone
        assert not [label for label in gone if label.startswith(("Prometheus ", "Alertmanager "))]
        assert labelled(peer, "monitoring") == now and upgraded.values_hash != release.values_hash

        run(service, ADDON_UNINSTALL, addon="monitoring")
        assert labelled(peer, "monitoring") == set()
        assert not [label for label in peer.applied() if "monitoring" in label]
        assert ReleaseStore(redis).get(cluster="demo", addon="monitoring") is None
        assert not peer.calls("DELETE", "not-ours") and peer.calls("DELETE", "/configmaps/")
        kept = peer.handle("GET", "/api/v1/namespaces/default/configmaps/not-ours", {}, None, None)
        assert kept[0] == 200


NFS = {"server": "nfs1.example.test", "path": "/exports/k8s"}
PROVISIONER = ("deployments", "kube-system", "storage-nfs-nfs-subdir-external-provisioner")


def test_health_fails_after_its_wait_naming_the_workloads_not_ready_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    chart_repository: ChartRepository,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(steps, "HEALTH_WAIT_SECONDS", 1.0)
    monkeypatch.setattr(steps, "HEALTH_POLL_SECONDS", 0.1)
    settings = addon_settings(redis_url, data_dir, playbooks, chart_repository)
    service = job_service(settings, redis)
    with KubernetesApiPeer() as peer:
        demo_cluster(redis, settings, peer)
        peer.hold_not_ready(*PROVISIONER)
        started = time.monotonic()
        job_id = service.submit(spec(service, kind=ADDON_INSTALL, addon="storage-nfs", values=NFS)).job_id
        run_queue(service)
        done = service.records.require(job_id)
    assert done.state is JobState.FAILED
    said = f"{done.summary} {done.error}"
    assert "not ready after 1s: Deployment/storage-nfs-nfs-subdir-external-provisioner" in said, said
    assert [s.state for s in done.steps] == [StepState.SUCCEEDED] * 3 + [StepState.FAILED]
    assert time.monotonic() - started < 60
    # what was applied stays owned, so `uninstall addon` still finds it
    assert ReleaseStore(redis).get(cluster="demo", addon="storage-nfs") is not None


def test_health_waits_until_the_workloads_are_ready_peer(
    redis_url: str,
    redis: Redis,
    data_dir: Path,
    playbooks: Path,
    chart_repository: ChartRepository,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(steps, "HEALTH_POLL_SECONDS", 0.1)
    settings = addon_settings(redis_url, data_dir, playbooks, chart_repository)
    service = job_service(settings, redis)
    with KubernetesApiPeer() as peer:
        demo_cluster(redis, settings, peer)
        peer.hold_not_ready(*PROVISIONER)
        job_id = service.submit(spec(service, kind=ADDON_INSTALL, addon="storage-nfs", values=NFS)).job_id

        def logged(text: str) -> bool:
            return any(text in (e.message or "") for e in read_job_events(redis, job_id))

        def release_when_waited() -> None:
            wait_for(lambda: logged("waiting for Deployment/storage-nfs"), timeout=60, what="the wait")
            peer.let_ready(*PROVISIONER)

        releaser = threading.Thread(target=release_when_waited, daemon=True)
        releaser.start()
        run_queue(service)
        releaser.join(timeout=5)
        done = service.records.require(job_id)
    assert done.state is JobState.SUCCEEDED, (done.summary, done.error)
    assert logged("waiting for Deployment/storage-nfs") and logged("every workload is ready")

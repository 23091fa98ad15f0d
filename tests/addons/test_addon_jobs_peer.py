"""Addon jobs end to end at the Kubernetes API peer (real RQ worker, real charts served over loopback,
Helm in a child process): install applies exactly the render, upgrade prunes what left it, uninstall
removes exactly what was applied and nothing else."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis import Redis

from kobot import keys
from kobot.cluster_spec import OfflineRepository
from kobot.clusters import ClusterStore
from kobot.job_records import JobEventType, JobState, StepState
from kobot.settings import Settings
from kobot.store import secret_key
from tests.addons.chart_server import ChartRepository
from tests.peers.kubernetes import KubernetesApiPeer
from tests.workers.jobkit import job_service, run_queue, spec, wait_for
from tests.workers.test_day2_jobs_peer import cluster, playbooks, settings_for
from workers.addons import ADDON_INSTALL, ADDON_UNINSTALL, ADDON_UPGRADE, steps
from workers.addons.catalog import CATALOG, AddonInputs
from workers.addons.releases import ReleaseRecord, ReleaseStore
from workers.cluster_secrets import ClusterSecrets
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


def grafana_password_kept(redis: Redis, settings: Settings) -> str:
    store = ClusterSecrets(redis=redis, secret=secret_key(settings))
    kept = store.get(cluster="demo", name="addon/monitoring/grafana-admin-password")
    assert kept is not None
    return kept.decode()


def grafana_password_applied(peer: KubernetesApiPeer) -> str:
    secret = peer.applied()["Secret monitoring/monitoring-grafana"]
    return base64.b64decode(secret["data"]["admin-password"]).decode()


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
        summary = service.records.require(install).summary or ""
        assert "Grafana: `kubectl -n monitoring port-forward svc/monitoring-grafana 80`" in summary

        # Grafana's admin password: made once, kept encrypted in kobot, the same after an upgrade
        kept = grafana_password_kept(redis, settings)
        assert grafana_password_applied(peer) == kept and len(kept) >= 20
        assert kept not in summary and "addon/monitoring/grafana-admin-password" in summary
        run(service, ADDON_UPGRADE, addon="monitoring", values={})
        assert grafana_password_applied(peer) == kept == grafana_password_kept(redis, settings)
        assert release_of(redis).values_hash == release.values_hash, "the same render: nothing changes"

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


def job_files_holding(settings: Settings, job_id: str, text: bytes) -> list[Path]:
    """Every file under the job's private directory whose bytes contain `text`."""
    folder = settings.job_artifacts_dir() / job_id
    return [path for path in folder.rglob("*") if path.is_file() and text in path.read_bytes()]


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
    # the render stays for a retry, sealed: its text is not on disk in the clear
    render = settings.job_artifacts_dir() / job_id / steps.RENDER_FILE
    assert render.is_file() and render.stat().st_mode & 0o777 == 0o600
    assert b"storage-nfs" not in render.read_bytes() and b"nfs1.example.test" not in render.read_bytes()


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


F5 = {"bigip": "https://bigip1.example.test", "partition": "kubernetes", "mode": "cluster"}
BIGIP_PASSWORD = "bigip-Pa55-word-for-the-test"


def test_f5_login_is_stored_encrypted_applied_as_a_secret_and_never_in_the_job_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, chart_repository: ChartRepository
) -> None:
    settings = addon_settings(redis_url, data_dir, playbooks, chart_repository)
    credentials = {"bigip-username": SecretStr("cis"), "bigip-password": SecretStr(BIGIP_PASSWORD)}
    with_login = settings.model_copy(
        update={"addons": settings.addons.model_copy(update={"credentials": credentials})}
    )
    with KubernetesApiPeer() as peer:
        demo_cluster(redis, with_login, peer)
        install = run(job_service(with_login, redis), ADDON_INSTALL, addon="f5", values=F5)
        login = peer.applied()["Secret kube-system/f5-bigip-ctlr-login"]
        assert login["stringData"] == {"username": "cis", "password": BIGIP_PASSWORD}
        args = peer.applied()["Deployment kube-system/f5-f5-bigip-ctlr"]["spec"]["template"]["spec"]
        assert "--bigip-partition=kubernetes" in args["containers"][0]["args"]

        # kept encrypted: Redis holds no plaintext, kobot's key reads it back
        store = ClusterSecrets(redis=redis, secret=secret_key(settings))
        assert store.get(cluster="demo", name="addon/f5/bigip-password") == BIGIP_PASSWORD.encode()
        dump = b" ".join(v for v in redis.hvals(keys.cluster_secrets("demo")))
        assert BIGIP_PASSWORD.encode() not in dump
        # nothing the job recorded or said carries it
        record = service_record(redis, with_login, install)
        said = json.dumps([e.model_dump(mode="json") for e in read_job_events(redis, install)])
        assert BIGIP_PASSWORD not in record and BIGIP_PASSWORD not in said
        # nor any file the job left: its render (the Secret it applied) is gone once it succeeded
        assert not job_files_holding(with_login, install, BIGIP_PASSWORD.encode())
        assert not (with_login.job_artifacts_dir() / install / steps.RENDER_FILE).exists()

        # the setting gone (rotated out of the environment): an upgrade uses the stored copy
        upgrade = run(job_service(settings, redis), ADDON_UPGRADE, addon="f5", values={})
        assert upgrade
        assert (
            peer.applied()["Secret kube-system/f5-bigip-ctlr-login"]["stringData"]["password"]
            == BIGIP_PASSWORD
        )

        run(job_service(settings, redis), ADDON_UNINSTALL, addon="f5")
        assert labelled(peer, "f5") == set()


def test_an_addon_whose_credential_is_neither_set_nor_stored_fails_naming_the_setting_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, chart_repository: ChartRepository
) -> None:
    settings = addon_settings(redis_url, data_dir, playbooks, chart_repository)
    service = job_service(settings, redis)
    with KubernetesApiPeer() as peer:
        demo_cluster(redis, settings, peer)
        job_id = service.submit(spec(service, kind=ADDON_INSTALL, addon="f5", values=F5)).job_id
        run_queue(service)
        done = service.records.require(job_id)
        assert done.state is JobState.FAILED
        assert "needs the credential bigip-username" in f"{done.summary} {done.error}"
        assert "KOBOT_ADDONS__CREDENTIALS" in f"{done.summary} {done.error}"
        assert not peer.applied()


def test_scope_installs_its_own_manifests_and_uninstalls_to_nothing_peer(
    redis_url: str, redis: Redis, data_dir: Path, playbooks: Path, chart_repository: ChartRepository
) -> None:
    settings = addon_settings(redis_url, data_dir, playbooks, chart_repository)
    service = job_service(settings, redis)
    with KubernetesApiPeer() as peer:
        demo_cluster(redis, settings, peer)
        install = run(service, ADDON_INSTALL, addon="scope", values={})
        assert labelled(peer, "scope") == {
            "Namespace weave",
            "ServiceAccount weave/weave-scope",
            "ClusterRole weave-scope",
            "ClusterRoleBinding weave-scope",
            "Service weave/weave-scope-app",
            "Deployment weave/weave-scope-app",
            "DaemonSet weave/weave-scope-agent",
            "Deployment weave/weave-scope-cluster-agent",
        }
        image = peer.applied()["Deployment weave/weave-scope-app"]["spec"]["template"]["spec"]["containers"][
            0
        ]
        assert image["image"] == f"{MIRROR}/weaveworks/scope:1.13.2"
        summary = service.records.require(install).summary or ""
        assert "Scope: `kubectl -n weave port-forward svc/weave-scope-app 80`" in summary
        run(service, ADDON_UNINSTALL, addon="scope")
        assert labelled(peer, "scope") == set()


def service_record(redis: Redis, settings: Settings, job_id: str) -> str:
    return job_service(settings, redis).records.require(job_id).model_dump_json()

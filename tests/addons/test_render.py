"""Each catalog addon renders from the offline chart repository (real charts, Helm in a child process)
with kobot's values: monitoring's Alertmanager posts to kobot with its token and the cluster label,
Grafana has its data sources, and every image points at the cluster's mirror."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from kobot.errors import KobotError, StepFailedError
from tests.addons.chart_server import SHARED_CHARTS, ChartRepository
from workers.addons.catalog import CATALOG, AddonInputs, entry_named
from workers.addons.chart_repository import fetch_chart
from workers.addons.manifests import Manifest, image_fields, mirrored_image
from workers.addons.steps import render_addon

MIRROR = "mirror.prod.test:5000"
WEBHOOK = "https://kobot.example.test/alerts/alertmanager"
TOKEN = "t0ken-for-the-webhook"
GRAFANA_PASSWORD = "kept-by-kobot-not-drawn-by-helm"
USER_VALUES = {"storage-nfs": {"server": "nfs1.example.test", "path": "/exports/k8s"}}


def render(entry: str, repository: ChartRepository, charts: Path) -> list[Manifest]:
    inputs = AddonInputs(
        cluster="prod",
        user_values=USER_VALUES.get(entry, {}),
        webhook_url=WEBHOOK,
        webhook_token=TOKEN,
        secrets={"grafana-admin-password": GRAFANA_PASSWORD},
    )
    manifests, _, _ = render_addon(
        entry=CATALOG[entry],
        inputs=inputs,
        repository=repository.url,
        registry=MIRROR,
        charts_dir=charts,
        upgrade=False,
    )
    return manifests


@pytest.fixture(scope="module")
def monitoring(chart_repository: ChartRepository, tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    return render("monitoring", chart_repository, tmp_path_factory.mktemp("charts"))


def one(manifests: list[Manifest], kind: str, name_part: str) -> dict[str, Any]:
    [found] = [m.body for m in manifests if m.ref.kind == kind and name_part in m.ref.name]
    return found


def test_monitoring_alertmanager_posts_to_kobot_with_its_token_and_prometheus_labels_the_cluster(
    monitoring: list[Manifest],
) -> None:
    secret = one(monitoring, "Secret", "alertmanager-monitoring")
    config = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    assert config["route"]["receiver"] == "kobot"
    [kobot] = [r for r in config["receivers"] if r["name"] == "kobot"]
    [hook] = kobot["webhook_configs"]
    assert hook["url"] == WEBHOOK and hook["send_resolved"] is True
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials": TOKEN}
    prometheus = one(monitoring, "Prometheus", "monitoring")
    assert prometheus["spec"]["externalLabels"] == {"cluster": "prod"}


def test_monitoring_grafana_has_prometheus_and_loki_data_sources(monitoring: list[Manifest]) -> None:
    sources = one(monitoring, "ConfigMap", "grafana-datasource")
    loaded = yaml.safe_load(sources["data"]["datasource.yaml"])
    types = {source["type"]: source["url"] for source in loaded["datasources"]}
    assert "prometheus" in types and types["prometheus"].startswith("http://monitoring-kube-prometheus")
    assert types["loki"] == "http://logging-loki-gateway.logging.svc"


def test_grafana_admin_password_is_the_one_kobot_keeps_not_one_helm_draws(monitoring: list[Manifest]) -> None:
    secret = one(monitoring, "Secret", "monitoring-grafana")
    assert base64.b64decode(secret["data"]["admin-password"]).decode() == GRAFANA_PASSWORD


def test_monitoring_every_image_and_the_reloader_flag_point_at_the_mirror(monitoring: list[Manifest]) -> None:
    images = image_fields(monitoring)
    assert len(images) >= 7 and all(image.startswith(f"{MIRROR}/") for image in images), images
    operator = one(monitoring, "Deployment", "operator")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    reloader = f"--prometheus-config-reloader={MIRROR}/prometheus-operator/prometheus-config-reloader:v0.93.1"
    assert reloader in args
    text = yaml.safe_dump([m.body for m in monitoring if m.ref.kind != "CustomResourceDefinition"])
    assert "quay.io/" not in text and "docker.io/" not in text and "registry.k8s.io/" not in text


def test_every_object_carries_the_release_label_and_the_namespace_comes_first_after_crds(
    monitoring: list[Manifest],
) -> None:
    assert all(m.body["metadata"]["labels"]["kobot.io/addon"] == "monitoring" for m in monitoring)
    kinds = [m.ref.kind for m in monitoring]
    assert kinds.index("Namespace") == kinds.count("CustomResourceDefinition") == 10
    assert {m.ref.namespace for m in monitoring if m.ref.kind == "Deployment"} == {"monitoring"}


@pytest.mark.parametrize("entry", ["logging", "dashboard", "storage-nfs"])
def test_the_other_catalog_entries_render_with_every_image_mirrored(
    entry: str, chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render(entry, chart_repository, tmp_path)
    images = image_fields(manifests)
    assert images and all(image.startswith(f"{MIRROR}/") for image in images), images
    assert sorted(images) == sorted(mirrored_image(i, registry=MIRROR) for i in CATALOG[entry].images)


def test_nfs_server_and_path_reach_the_provisioner(chart_repository: ChartRepository, tmp_path: Path) -> None:
    manifests = render("storage-nfs", chart_repository, tmp_path)
    deployment = one(manifests, "Deployment", "nfs")
    [volume] = deployment["spec"]["template"]["spec"]["volumes"]
    assert volume["nfs"] == {"server": "nfs1.example.test", "path": "/exports/k8s"}
    assert one(manifests, "StorageClass", "nfs-client")["provisioner"]
    assert "Namespace" not in {m.ref.kind for m in manifests}  # kube-system is not the addon's to own


def test_an_image_the_catalog_does_not_list_stops_the_render(
    chart_repository: ChartRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    entry = CATALOG["storage-nfs"]
    monkeypatch.setitem(CATALOG, "storage-nfs", dataclasses.replace(entry, images=()))
    with pytest.raises(StepFailedError, match=r"nfs-subdir-external-provisioner:v4\.0\.2"):
        render("storage-nfs", chart_repository, tmp_path)


def test_user_values_are_validated_and_the_answer_names_what_is_allowed() -> None:
    nfs = entry_named("nfs")
    with pytest.raises(KobotError, match="needs server, path"):
        nfs.checked_values({})
    with pytest.raises(KobotError, match=r"settable: path, server"):
        nfs.checked_values({"server": "a", "path": "/x", "size": "1"})
    with pytest.raises(KobotError, match="absolute"):
        nfs.checked_values({"server": "a", "path": "relative"})
    with pytest.raises(
        KobotError, match="the catalog has: dashboard, f5, gpu, logging, monitoring, scope, storage"
    ):
        entry_named("gpu-magic")
    assert entry_named("监控").name == "monitoring"


def test_a_chart_whose_archive_does_not_match_the_index_digest_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    index = yaml.safe_load((SHARED_CHARTS / "index.yaml").read_text())
    (repo / "index.yaml").write_text(yaml.safe_dump(index))
    (repo / "valkey-0.11.0.tgz").write_bytes((SHARED_CHARTS / "jenkins-5.9.53.tgz").read_bytes())
    with ChartRepository(repo) as served, pytest.raises(StepFailedError, match="does not match the digest"):
        fetch_chart(repository=served.url, name="valkey", version="0.11.0", into=tmp_path / "charts")
    with ChartRepository(repo) as served, pytest.raises(StepFailedError, match=r"lists: 0.11.0"):
        fetch_chart(repository=served.url, name="valkey", version="9.9.9", into=tmp_path / "charts")


@pytest.mark.parametrize("digest", [None, 0, "", "abc123"])
def test_a_chart_the_index_lists_without_a_usable_digest_is_refused_unverified(
    tmp_path: Path, digest: object
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    index = yaml.safe_load((SHARED_CHARTS / "index.yaml").read_text())
    [entry] = [e for e in index["entries"]["valkey"] if e["version"] == "0.11.0"]
    if digest is None:
        del entry["digest"]
    else:
        entry["digest"] = digest
    (repo / "index.yaml").write_text(yaml.safe_dump(index))
    (repo / "valkey-0.11.0.tgz").write_bytes((SHARED_CHARTS / "valkey-0.11.0.tgz").read_bytes())
    with ChartRepository(repo) as served, pytest.raises(StepFailedError, match="no usable sha256 digest"):
        fetch_chart(repository=served.url, name="valkey", version="0.11.0", into=tmp_path / "charts")
    assert not (tmp_path / "charts").exists()

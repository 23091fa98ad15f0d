"""The catalog entries beyond monitoring render from the offline chart repository (or, for Weave Scope,
kobot's own manifests, held to a golden file) with every image on the mirror, the values a person set
where they matter, and credentials only in the Secrets kobot adds, never in Helm values."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from kobot.errors import KobotError
from tests.addons.chart_server import ChartRepository
from workers.addons.catalog import CATALOG, AddonInputs, entry_named
from workers.addons.manifests import Manifest, image_fields, mirrored_image
from workers.addons.steps import render_addon

MIRROR = "mirror.prod.test:5000"
GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("KOBOT_UPDATE_GOLDEN") == "1"
"""KOBOT_UPDATE_GOLDEN=1 rewrites the golden files after an intended change: review the diff."""

CEPH = {
    "cluster_id": "b9127830-b0cc-4e34-aa47-9d1a2e9949a8",
    "monitors": "ceph1:6789,ceph2:6789",
    "pool": "k8s",
}
CINDER = {"auth_url": "https://keystone.example.test:5000/v3", "region": "RegionOne"}
F5 = {"bigip": "https://bigip1.example.test", "partition": "kubernetes", "mode": "cluster"}
USER_VALUES = {"storage-ceph-rbd": CEPH, "storage-cinder": CINDER, "f5": F5}
SECRETS = {
    "bigip-username": "cis-user",
    "bigip-password": "bigip-pa55-word",
    "ceph-user-id": "kubernetes",
    "ceph-user-key": "AQCeph-key-value==",
    "openstack-credential-id": "app-cred-id",
    "openstack-credential-secret": "app-cred-s3cret",
}


def render(name: str, repository: ChartRepository, charts: Path) -> list[Manifest]:
    entry = CATALOG[name]
    inputs = AddonInputs(
        cluster="prod",
        user_values=entry.checked_values(USER_VALUES.get(name, {})),
        secrets={s.name: SECRETS[s.name] for s in entry.secrets},
    )
    manifests, _, _ = render_addon(
        entry=entry,
        inputs=inputs,
        repository=repository.url,
        registry=MIRROR,
        charts_dir=charts,
        upgrade=False,
    )
    return manifests


def one(manifests: list[Manifest], kind: str, name: str) -> dict[str, Any]:
    [found] = [m.body for m in manifests if m.ref.kind == kind and m.ref.name == name]
    return found


def text_of(manifests: list[Manifest]) -> str:
    return yaml.safe_dump([m.body for m in manifests if m.ref.kind != "CustomResourceDefinition"])


@pytest.mark.parametrize("name", ["scope", "gpu", "f5", "storage-ceph-rbd", "storage-cinder"])
def test_the_new_entries_render_with_exactly_their_catalog_images_on_the_mirror(
    name: str, chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render(name, chart_repository, tmp_path)
    images = image_fields(manifests)
    assert images == sorted(mirrored_image(i, registry=MIRROR) for i in CATALOG[name].images)
    assert all(image.startswith(f"{MIRROR}/") for image in images)
    assert all(m.body["metadata"]["labels"]["kobot.io/addon"] == name for m in manifests)
    # every workload the catalog waits for is in the render (a renamed one would be waited for forever)
    rendered = {f"{m.ref.kind}/{m.ref.name}" for m in manifests}
    assert {h.format(release=name) for h in CATALOG[name].healthy} <= rendered


def test_scope_is_kobots_own_manifests_held_to_the_golden_file(
    chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render("scope", chart_repository, tmp_path)
    text = yaml.safe_dump_all([m.body for m in manifests], sort_keys=True)
    golden = GOLDEN / "scope.yaml"
    if UPDATE:
        golden.write_text(text)
    assert golden.exists(), "no golden file scope.yaml; run with KOBOT_UPDATE_GOLDEN=1 and review it"
    assert text == golden.read_text()


def test_scope_runs_its_last_release_read_only_on_containerd(
    chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render("scope", chart_repository, tmp_path)
    agent = one(manifests, "DaemonSet", "weave-scope-agent")["spec"]["template"]["spec"]
    [container] = agent["containers"]
    assert container["image"] == f"{MIRROR}/weaveworks/scope:1.13.2"
    assert "--probe.no-controls=true" in container["args"] and "--probe.cri=true" in container["args"]
    assert "docker.sock" not in text_of(manifests)
    # the three controllers never select each other's pods
    selectors = [
        tuple(sorted(m.body["spec"]["selector"]["matchLabels"].items()))
        for m in manifests
        if m.ref.kind in ("Deployment", "DaemonSet")
    ]
    assert len(set(selectors)) == 3
    rules = one(manifests, "ClusterRole", "weave-scope")["rules"]
    assert {verb for rule in rules for verb in rule["verbs"]} <= {"get", "list", "watch"}
    assert one(manifests, "Service", "weave-scope-app")["spec"]["type"] == "ClusterIP"


def test_gpu_runs_the_device_plugin_on_kobots_gpu_nodes_with_the_nvidia_runtime_class(
    chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render("gpu", chart_repository, tmp_path)
    runtime = one(manifests, "RuntimeClass", "nvidia")
    assert runtime["handler"] == "nvidia" and runtime["apiVersion"] == "node.k8s.io/v1"
    plugin = one(manifests, "DaemonSet", "gpu-nvidia-device-plugin")["spec"]["template"]["spec"]
    assert plugin["runtimeClassName"] == "nvidia"
    assert plugin["nodeSelector"] == {"kobot.io/gpu": "true"}
    assert not (plugin.get("affinity") or {}).get("nodeAffinity")  # no wait for NFD labels kobot never sets


def test_f5_takes_url_partition_and_mode_and_its_login_only_in_the_secret_kobot_adds(
    chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render("f5", chart_repository, tmp_path)
    controller = one(manifests, "Deployment", "f5-f5-bigip-ctlr")["spec"]["template"]["spec"]
    [container] = controller["containers"]
    args = container["args"]
    assert "--bigip-url=https://bigip1.example.test" in args
    assert "--bigip-partition=kubernetes" in args and "--pool-member-type=cluster" in args
    assert container["image"] == f"{MIRROR}/f5networks/k8s-bigip-ctlr:2.20.1"  # pinned, never latest
    [volume] = controller["volumes"]
    assert volume["secret"]["secretName"] == "f5-bigip-ctlr-login"
    login = one(manifests, "Secret", "f5-bigip-ctlr-login")
    assert login["stringData"] == {"username": "cis-user", "password": "bigip-pa55-word"}
    others = [m for m in manifests if m.ref.kind != "Secret"]
    assert "bigip-pa55-word" not in text_of(others)
    assert one(manifests, "IngressClass", "f5")["metadata"].get("annotations", {}).get(
        "ingressclass.kubernetes.io/is-default-class", "false"
    ) in ("false", False)


def test_ceph_rbd_reaches_the_storage_class_and_csi_config_with_the_key_only_in_its_secret(
    chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render("storage-ceph-rbd", chart_repository, tmp_path)
    storage = one(manifests, "StorageClass", "ceph-rbd")
    assert storage["provisioner"] == "rbd.csi.ceph.com"
    assert storage["parameters"]["clusterID"] == CEPH["cluster_id"] and storage["parameters"]["pool"] == "k8s"
    config = one(manifests, "ConfigMap", "ceph-csi-config")
    [cluster] = yaml.safe_load(config["data"]["config.json"])
    assert cluster["monitors"] == ["ceph1:6789", "ceph2:6789"]
    assert one(manifests, "Secret", "csi-rbd-secret")["stringData"]["userKey"] == "AQCeph-key-value=="
    assert "AQCeph-key-value==" not in text_of([m for m in manifests if m.ref.kind != "Secret"])


def test_cinder_gets_its_cloud_config_secret_from_kobot(
    chart_repository: ChartRepository, tmp_path: Path
) -> None:
    manifests = render("storage-cinder", chart_repository, tmp_path)
    cloud = one(manifests, "Secret", "cinder-csi-cloud-config")["stringData"]["cloud.conf"]
    assert "auth-url=https://keystone.example.test:5000/v3" in cloud and "region=RegionOne" in cloud
    assert "application-credential-secret=app-cred-s3cret" in cloud
    node = one(manifests, "DaemonSet", "openstack-cinder-csi-nodeplugin")
    volumes = {v["name"]: v for v in node["spec"]["template"]["spec"]["volumes"]}
    assert any(
        (v.get("secret") or {}).get("secretName") == "cinder-csi-cloud-config" for v in volumes.values()
    )
    assert {m.ref.name for m in manifests if m.ref.kind == "StorageClass"} == {
        "csi-cinder-sc-delete",
        "csi-cinder-sc-retain",
    }
    assert (
        "app-cred-s3cret"
        not in base64.b64encode(text_of([m for m in manifests if m.ref.kind != "Secret"]).encode()).decode()
    )


@pytest.mark.parametrize(
    ("name", "given", "answer"),
    [
        ("storage-ceph-rbd", {**CEPH, "cluster_id": "prod"}, "fsid"),
        ("storage-ceph-rbd", {**CEPH, "monitors": "ceph1"}, "host:port"),
        ("storage-ceph-rbd", {"pool": "k8s"}, "needs cluster_id, monitors"),
        ("storage-cinder", {**CINDER, "auth_url": "keystone:5000"}, "the Keystone URL"),
        ("f5", {**F5, "bigip": "http://bigip1"}, "https"),
        ("f5", {**F5, "partition": "Common"}, "not Common"),
        ("f5", {**F5, "mode": "magic"}, "nodeport, cluster, nodeportlocal"),
        ("f5", {**F5, "password": "x"}, "settable: bigip, insecure, mode, partition"),
        ("gpu", {"count": "2"}, "settable: none"),
    ],
)
def test_values_are_checked_and_the_answer_names_what_is_allowed(
    name: str, given: dict[str, str], answer: str
) -> None:
    with pytest.raises(KobotError, match=answer):
        entry_named(name).checked_values(given)

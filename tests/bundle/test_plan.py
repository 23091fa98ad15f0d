"""`bundle plan`: the exact list for a version, OS families, arches, CNI and addons; bad input named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from workers.addons.catalog import CATALOG
from workers.bundle.manifest import BundleManifest, ChecksumKind
from workers.bundle.plan import ROLES_DIR, BundlePlanError, plan_bundle

ROLE_DEFAULTS = {
    role: yaml.safe_load((ROLES_DIR / role / "defaults" / "main.yml").read_text())
    for role in ("cluster_defaults", "cni", "kube_packages")
}


def _example() -> BundleManifest:
    return plan_bundle(
        version="1.32.8",
        os=["debian12", "el9"],
        arch=["amd64", "arm64"],
        cni="calico",
        addons=["monitoring", "logging"],
    )


def test_files_name_upstream_url_and_checksum_source_for_every_arch() -> None:
    manifest = _example()
    by_path = {f.path: f for f in manifest.files}

    for arch in ("amd64", "arm64"):
        kubeadm = by_path[f"kubernetes/v1.32.8/bin/linux/{arch}/kubeadm"]
        assert kubeadm.url == f"https://dl.k8s.io/release/v1.32.8/bin/linux/{arch}/kubeadm"
        assert kubeadm.checksum.kind is ChecksumKind.SHA256_FILE
        assert kubeadm.checksum.url == kubeadm.url + ".sha256"
        etcd_version = ROLE_DEFAULTS["kube_packages"]["etcd_tools_version"]
        etcd = by_path[f"etcd/v{etcd_version}/etcd-v{etcd_version}-linux-{arch}.tar.gz"]
        assert etcd.checksum.kind is ChecksumKind.SUMS_FILE
        assert etcd.checksum.url.endswith(f"/v{etcd_version}/SHA256SUMS")
        assert etcd.checksum.entry == f"etcd-v{etcd_version}-linux-{arch}.tar.gz"
    names = sorted({f.name for f in manifest.files})
    expected = [
        "cni-plugins",
        "crictl",
        "etcd",
        "kube-bench",
        "kubeadm",
        "kubectl",
        "kubelet",
        "tigera-operator.yaml",
    ]
    assert names == expected
    assert len(manifest.files) == 7 * 2 + 1
    calico = by_path[f"calico/{ROLE_DEFAULTS['cni']['calico_version']}/tigera-operator.yaml"]
    assert calico.checksum.kind is ChecksumKind.UNPUBLISHED


def test_etcd_and_calico_paths_are_the_ones_the_roles_ask_the_file_server_for() -> None:
    manifest = _example()
    etcd_url = ROLE_DEFAULTS["kube_packages"]["etcd_tools_base_url"]
    calico_url = ROLE_DEFAULTS["cni"]["calico_operator_manifest_url"]
    assert "offline_files_url ~ '/etcd/v' ~ etcd_tools_version" in etcd_url
    assert "offline_files_url ~ '/calico/' ~ calico_version ~ '/tigera-operator.yaml'" in calico_url
    assert any(f.path.startswith("etcd/v") for f in manifest.files)


def test_images_cover_control_plane_dns_cni_and_every_addon_image() -> None:
    manifest = _example()
    refs = {i.ref for i in manifest.images}
    pause = ROLE_DEFAULTS["cluster_defaults"]["kube_pause_tags"]["1.32"]
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        assert f"registry.k8s.io/{name}:v1.32.8" in refs
    assert f"registry.k8s.io/pause:{pause}" in refs
    assert "registry.k8s.io/coredns/coredns:v1.11.3" in refs
    assert f"quay.io/calico/node:{ROLE_DEFAULTS['cni']['calico_version']}" in refs
    for addon in ("monitoring", "logging"):
        for image in CATALOG[addon].images:
            assert image in refs or f"docker.io/{image}" in refs
    assert len(refs) == len(manifest.images), "each image once"
    assert {c.name for c in manifest.charts} == {"kube-prometheus-stack", "loki"}


def test_flannel_plan_carries_flannel_and_no_calico() -> None:
    manifest = plan_bundle(version="1.31.2", os=["ubuntu22.04"], arch=["amd64"], cni="flannel")
    refs = {i.ref for i in manifest.images}
    assert "docker.io/flannel/flannel:v0.26.1" in refs
    assert not any("calico" in r for r in refs)
    assert not any(f.name == "tigera-operator.yaml" for f in manifest.files)
    assert manifest.charts == ()


def test_packages_per_family_are_pinned_as_the_roles_pin_them() -> None:
    manifest = _example()
    deb = {p.name: p for p in manifest.packages if p.family == "debian12"}
    rpm = {p.name: p for p in manifest.packages if p.family == "el9"}
    assert deb["kubeadm"].version == "1.32.8-*"
    assert rpm["kubeadm"].version == "1.32.8"
    assert "containerd" in deb and "containerd.io" in rpm
    assert deb["cri-tools"].version == "1.32.*"
    assert deb["kubeadm"].repository == "https://pkgs.k8s.io/core:/stable:/v1.32/deb/"
    assert rpm["kubelet"].repository == "https://pkgs.k8s.io/core:/stable:/v1.32/rpm/"


def test_kobot_os_names_fold_into_their_family() -> None:
    manifest = plan_bundle(version="1.32.8", os=["rocky9", "alma9"], arch=["arm64"], cni="calico")
    assert manifest.os == ("el9",)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("os", ["windows"], "debian12, ubuntu22.04"),
        ("arch", ["s390x"], "amd64, arm64"),
        ("cni", "weave", "flannel, calico"),
        ("addons", ["nope"], "monitoring"),
        ("version", "1.99.0", "supported:"),
    ],
)
def test_bad_input_names_the_allowed_values(field: str, value: object, named: str) -> None:
    given: dict[str, object] = {"version": "1.32.8", "os": ["debian12"], "arch": ["amd64"], "cni": "calico"}
    given[field] = value
    with pytest.raises(BundlePlanError, match=named):
        plan_bundle(**given)  # type: ignore[arg-type]


def test_cli_writes_the_manifest_and_prints_the_human_list(tmp_path: Path) -> None:
    output = tmp_path / "manifest.json"
    args = ["bundle", "plan", "--version", "1.32.8", "--os", "debian12,el9", "--arch", "amd64,arm64"]
    args += ["--cni", "calico", "--addons", "monitoring,logging", "--output", str(output)]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert BundleManifest.model_validate_json(output.read_text()) == _example()
    assert "packages (el9): containerd.io kubelet=1.32.8" in result.output
    assert "sha256 from https://dl.k8s.io/release/v1.32.8/bin/linux/arm64/kubectl.sha256" in result.output
    as_json = CliRunner().invoke(app, [*args[:-2], "--json"])
    assert json.loads(as_json.output)["kubernetes_version"] == "1.32.8"


def test_cli_refuses_bad_input_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["bundle", "plan", "--version", "1.32.8", "--os", "debian13"])
    assert result.exit_code == 2
    assert "allowed: debian12" in result.output


@pytest.mark.parametrize("given", ["https://dl.k8s.io", "=http://mirror/dl.k8s.io"])
def test_cli_refuses_an_upstream_rewrite_that_is_not_prefix_equals_replacement(given: str) -> None:
    args = ["bundle", "plan", "--version", "1.32.8", "--os", "debian12", "--upstream", given]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "is not PREFIX=REPLACEMENT" in result.output


def test_cli_build_refuses_a_file_that_is_no_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "m.json"
    bad.write_text("{}")
    result = CliRunner().invoke(app, ["bundle", "build", str(bad), "--into", str(tmp_path / "b")])
    assert result.exit_code == 2
    assert "is not a bundle manifest" in result.output


@pytest.mark.parametrize("addon", sorted(CATALOG))
def test_every_catalog_addon_plans_with_its_images_and_chart(addon: str) -> None:
    manifest = plan_bundle(version="1.32.8", os=["el9"], arch=["amd64"], cni="calico", addons=[addon])
    entry = CATALOG[addon]
    assert {c.name for c in manifest.charts} == ({entry.chart} if entry.chart else set())
    assert all(c.repository.startswith("https://") for c in manifest.charts)
    assert sum(1 for i in manifest.images if i.group == f"addon:{addon}") >= 1 or not entry.images


def test_a_site_chart_repository_replaces_every_upstream_one() -> None:
    manifest = plan_bundle(
        version="1.32.8",
        os=["el9"],
        arch=["amd64"],
        cni="calico",
        addons=["monitoring", "logging"],
        chart_repository="http://charts.site.example/",
    )
    assert {c.repository for c in manifest.charts} == {"http://charts.site.example"}

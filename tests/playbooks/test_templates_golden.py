"""Role templates rendered by the real Ansible template engine, compared with files in golden/.

The render play loads the same role defaults the entry playbooks use and a three-master,
two-worker inventory. Set UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from workers.ansible import PlaybookRun, PlaybookStatus, run_playbook

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROLES = PLAYBOOKS / "roles"
GOLDEN = Path(__file__).resolve().parent / "golden"
RENDERS = {
    # golden file: (host, template)
    "kubeadm-config.yaml": ("master-1", "control_plane/templates/kubeadm-config.yaml.j2"),
    "kubeadm-join-control-plane.yaml": ("master-2", "kubeadm_join/templates/kubeadm-join.yaml.j2"),
    "containerd-config.toml": ("worker-1", "containerd/templates/config.toml.j2"),
    "haproxy.cfg": ("master-1", "load_balancer/templates/haproxy.cfg.j2"),
    "keepalived-master-1.conf": ("master-1", "load_balancer/templates/keepalived.conf.j2"),
    "keepalived-master-2.conf": ("master-2", "load_balancer/templates/keepalived.conf.j2"),
    "flannel.yaml": ("master-1", "cni/templates/flannel.yaml.j2"),
    "traefik.yaml": ("master-1", "addons/templates/traefik.yaml.j2"),
    "metrics-server.yaml": ("master-1", "addons/templates/metrics_server.yaml.j2"),
}
FIXED = {
    "ansible_managed": "Managed by kobot",
    "kubeadm_bootstrap_token": "abcdef.0123456789abcdef",
    "kubeadm_join_token": "ghijkl.0123456789abcdef",
    "kubeadm_ca_cert_hash": "sha256:" + "ab" * 32,
    "kubeadm_certificate_key": "cd" * 32,
    "kubeadm_join_control_plane": True,
    "keepalived_auth_pass": "vrrp-pw",
    "metrics_server_ca_bundle": "Q0EgYnVuZGxl",
}


CLUSTER_VARS = {
    "cluster_name": "prod",
    "apiserver_loadbalancer_vip": "10.10.0.10",
    "apiserver_loadbalancer_interface": "eth0",
    "offline_registry": "10.10.0.5:5000",
}
"""Inventory-level settings. Play vars_files outrank inventory vars, so the render passes these as
extra vars too: in the entry playbooks the defaults are role defaults and the inventory wins."""


def _inventory(path: Path) -> Path:
    hosts = {
        "master-1": "10.10.0.11",
        "master-2": "10.10.0.12",
        "master-3": "10.10.0.13",
        "worker-1": "10.10.0.21",
        "worker-2": "10.10.0.22",
    }
    masters = {name: None for name in hosts if name.startswith("master")}
    content = {
        "all": {
            "vars": CLUSTER_VARS,
            "hosts": {name: {"ansible_connection": "local", "ip": ip} for name, ip in hosts.items()},
            "children": {
                "kube_control_plane": {"hosts": masters},
                "etcd": {"hosts": masters},
                "kube_node": {"hosts": {name: None for name in hosts if name.startswith("worker")}},
                "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
            },
        }
    }
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


def _render_play(out_dir: Path) -> list[dict[str, object]]:
    defaults = [
        str(path)
        for path in sorted(ROLES.glob("*/defaults/main.yml"))
        if path.parts[-3] != "cluster_defaults"
    ]
    tasks = [
        {
            "name": f"Render {golden}",
            "ansible.builtin.template": {
                "src": str(ROLES / template),
                "dest": str(out_dir / golden),
                "mode": "0600",
            },
            "delegate_to": "localhost",
            "when": f"inventory_hostname == '{host}'",
        }
        for golden, (host, template) in RENDERS.items()
    ]
    return [
        {
            "name": "Render role templates",
            "hosts": "k8s_cluster",
            "gather_facts": False,
            "vars_files": [str(ROLES / "cluster_defaults" / "defaults" / "main.yml"), *defaults],
            "tasks": tasks,
        }
    ]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("render")
    out_dir = work / "out"
    out_dir.mkdir()
    (work / "render.yml").write_text(yaml.safe_dump(_render_play(out_dir), sort_keys=False), encoding="utf-8")
    run = PlaybookRun(
        job_id="golden",
        step="render",
        attempt=1,
        playbook="render.yml",
        playbooks_dir=work,
        inventory=_inventory(work / "inventory.yml"),
        artifacts_root=work / "jobs",
        extravars={**CLUSTER_VARS, **FIXED},
    )
    result = run_playbook(run, on_event=lambda event: None, should_cancel=lambda: False)
    assert result.status is PlaybookStatus.SUCCESSFUL, result.error
    return out_dir


@pytest.mark.parametrize("golden", sorted(RENDERS))
def test_rendered_template_matches_golden(rendered: Path, golden: str) -> None:
    text = (rendered / golden).read_text(encoding="utf-8")
    golden_file = GOLDEN / golden
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden_file.write_text(text, encoding="utf-8")
    assert text == golden_file.read_text(encoding="utf-8")


def test_rendered_yaml_documents_parse(rendered: Path) -> None:
    for name in (
        "kubeadm-config.yaml",
        "kubeadm-join-control-plane.yaml",
        "flannel.yaml",
        "traefik.yaml",
        "metrics-server.yaml",
    ):
        documents = [doc for doc in yaml.safe_load_all((rendered / name).read_text(encoding="utf-8")) if doc]
        assert all("kind" in doc for doc in documents), name
    kinds = [
        doc["kind"]
        for doc in yaml.safe_load_all((rendered / "kubeadm-config.yaml").read_text(encoding="utf-8"))
    ]
    assert kinds == [
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    ]


def test_addon_images_come_from_the_offline_registry(rendered: Path) -> None:
    for name in ("traefik.yaml", "metrics-server.yaml"):
        documents = [doc for doc in yaml.safe_load_all((rendered / name).read_text(encoding="utf-8")) if doc]
        images = [
            container["image"]
            for doc in documents
            if doc["kind"] in ("Deployment", "DaemonSet")
            for container in doc["spec"]["template"]["spec"]["containers"]
        ]
        assert images, name
        assert all(image.startswith("10.10.0.5:5000/") for image in images), images


def test_metrics_server_is_verified_by_the_cluster_ca(rendered: Path) -> None:
    documents = list(yaml.safe_load_all((rendered / "metrics-server.yaml").read_text(encoding="utf-8")))
    api_service = next(doc for doc in documents if doc and doc["kind"] == "APIService")
    assert api_service["spec"]["caBundle"] == FIXED["metrics_server_ca_bundle"]
    assert "insecureSkipTLSVerify" not in api_service["spec"]
    deployment = next(doc for doc in documents if doc and doc["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--kubelet-insecure-tls" not in args

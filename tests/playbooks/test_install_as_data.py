"""The install's rendered config checked as data against what kubeadm, kubelet and containerd accept.

No kubeadm or containerd runs here, so each rendered file is held against the upstream types it is read
into: every key path must exist in the json-tag tree of the apiVersion's Go types for that minor
(tests/fixtures/k8s_types, generated from the upstream sources by generate.py there), the kubeadm
apiVersion must be one the minor's kubeadm decodes, and every image any manifest names is resolved
through the rendered certs.d the way containerd resolves it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.playbooks.containerd_hosts import endpoints
from tests.playbooks.install_render import OFFLINE_REGISTRY, ClusterShape, evaluated, render

TYPES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s_types"

SHAPES = {
    shape.name: shape
    for shape in (
        ClusterShape(
            name="v130-single-vip-offline-calico",
            kube_version="1.30.14",
            masters=1,
            offline=True,
            cni="calico",
            extra={"apiserver_loadbalancer_vip": "10.10.0.10"},
        ),
        ClusterShape(
            name="v131-ha-offline-flannel",
            kube_version="v1.31.12",
            masters=3,
            offline=True,
            gpu=True,
            extra={"kube_feature_gates": {"InPlacePodVerticalScaling": True}},
        ),
        ClusterShape(
            name="v132-ha-online-containerd2",
            kube_version="1.32.8",
            masters=3,
            offline=False,
            extra={"containerd_config_version": 3},
        ),
    )
}
"""Minor x masters x offline x CNI, each cell a real render; three cover every branch the templates take."""

KUBEADM_PAUSE = {"1.29": "3.9", "1.30": "3.9", "1.31": "3.10", "1.32": "3.10"}
"""constants.PauseVersion of kubeadm at each minor's release branch (cmd/kubeadm/app/constants)."""


@pytest.fixture(scope="module", params=sorted(SHAPES))
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ClusterShape, Path]:
    shape = SHAPES[request.param]
    return shape, render(shape, tmp_path_factory.mktemp(shape.name))


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _types(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((TYPES / name).read_text(encoding="utf-8"))
    return loaded


def unknown_paths(value: Any, tree: Any, path: str = "") -> Iterator[str]:
    """Key paths of `value` that the type tree does not have (list items are transparent)."""
    if tree == "*":
        return
    if isinstance(value, list):
        for item in value:
            yield from unknown_paths(item, tree, path + "[]")
        return
    if not isinstance(value, dict):
        return
    if not isinstance(tree, dict):
        yield f"{path} (a scalar in the type, an object here)"
        return
    for key, inner in value.items():
        if key not in tree:
            yield f"{path}.{key}"
        else:
            yield from unknown_paths(inner, tree[key], f"{path}.{key}")


def _tree_for(doc: dict[str, Any], minor: str) -> Any:
    api_version, kind = doc["apiVersion"], doc["kind"]
    if api_version.startswith("kubeadm.k8s.io/"):
        return _types(f"kubeadm-{api_version.split('/')[1]}.json")["kinds"][kind]
    if api_version == "kubelet.config.k8s.io/v1beta1":
        return _types(f"kubelet-v1beta1-{minor}.json")["kinds"][kind]
    if api_version == "kubeproxy.config.k8s.io/v1alpha1":
        return _types(f"kube-proxy-v1alpha1-{minor}.json")["kinds"][kind]
    raise AssertionError(f"no type tree for {api_version} {kind}")


def _minor(shape: ClusterShape) -> str:
    return ".".join(shape.kube_version.lstrip("v").split(".")[:2])


def test_the_kubeadm_api_version_is_one_this_minors_kubeadm_decodes(
    rendered: tuple[ClusterShape, Path],
) -> None:
    shape, out = rendered
    accepted = _types("kubeadm-api-versions.json")["accepted"][_minor(shape)]
    files = [out / "master-1" / "kubeadm-config.yaml", out / "worker-1" / "kubeadm-join.yaml"]
    if shape.masters > 1:
        files.append(out / "master-2" / "kubeadm-join.yaml")
    for file in files:
        for doc in _documents(file):
            if doc["apiVersion"].startswith("kubeadm.k8s.io/"):
                assert doc["apiVersion"] in accepted, (file.name, doc["apiVersion"], accepted)


def test_every_rendered_kubeadm_kubelet_and_proxy_key_exists_in_the_upstream_types(
    rendered: tuple[ClusterShape, Path],
) -> None:
    shape, out = rendered
    files = [out / "master-1" / "kubeadm-config.yaml", out / "worker-1" / "kubeadm-join.yaml"]
    if shape.masters > 1:
        files.append(out / "master-2" / "kubeadm-join.yaml")
    kinds = []
    for file in files:
        for doc in _documents(file):
            kinds.append(doc["kind"])
            unknown = list(unknown_paths(doc, _tree_for(doc, _minor(shape))))
            assert not unknown, (file.name, doc["kind"], unknown)
    assert {
        "InitConfiguration",
        "ClusterConfiguration",
        "KubeletConfiguration",
        "KubeProxyConfiguration",
    } <= set(kinds)
    assert "JoinConfiguration" in kinds


def test_component_feature_gates_reach_the_components_not_kubeadm(
    rendered: tuple[ClusterShape, Path],
) -> None:
    shape, out = rendered
    gates = shape.extra.get("kube_feature_gates")
    docs = {doc["kind"]: doc for doc in _documents(out / "master-1" / "kubeadm-config.yaml")}
    if not gates:  # none asked, none written anywhere
        assert not any("featureGates" in doc for doc in docs.values())
        return
    assert "featureGates" not in docs["ClusterConfiguration"]
    assert docs["KubeletConfiguration"]["featureGates"] == gates
    assert docs["KubeProxyConfiguration"]["featureGates"] == gates
    args = docs["ClusterConfiguration"]["apiServer"]["extraArgs"]
    flat = {a["name"]: a["value"] for a in args} if isinstance(args, list) else args
    assert flat["feature-gates"] == "InPlacePodVerticalScaling=true"


def test_the_containerd_config_has_the_schema_of_its_version(rendered: tuple[ClusterShape, Path]) -> None:
    shape, out = rendered
    config = tomllib.loads((out / "worker-1" / "containerd-config.toml").read_text(encoding="utf-8"))
    variables = evaluated(out, "worker-1")
    assert config["version"] == int(variables["containerd_config_version"])
    if config["version"] == 2:
        cri = config["plugins"]["io.containerd.grpc.v1.cri"]
        sandbox = cri["sandbox_image"]
        assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
        assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    else:
        images = config["plugins"]["io.containerd.cri.v1.images"]
        sandbox = images["pinned_images"]["sandbox"]
        assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
    repo = OFFLINE_REGISTRY if shape.offline else "registry.k8s.io"
    assert sandbox == f"{repo}/pause:{KUBEADM_PAUSE[_minor(shape)]}"


def test_containerd_config_version_3_renders_the_cri_v1_sections(rendered: tuple[ClusterShape, Path]) -> None:
    shape, out = rendered
    config = tomllib.loads((out / "worker-1" / "containerd-config.toml").read_text(encoding="utf-8"))
    if shape.extra.get("containerd_config_version") != 3:  # containerd 1.x keeps version 2 and its CRI plugin
        assert config["version"] == 2 and "io.containerd.grpc.v1.cri" in config["plugins"]
        return
    assert "io.containerd.grpc.v1.cri" not in config["plugins"]
    runc = config["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True


def _images(out: Path, shape: ClusterShape) -> list[str]:
    """Every image a node pulls: kubeadm's control-plane images, the sandbox, the CNI's and the addons'."""
    variables = evaluated(out, "master-1")
    repo = variables["kube_image_repo"]
    version = "v" + shape.kube_version.lstrip("v")
    images = [
        f"{repo}/{name}:{version}"
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
    ]
    images += [f"{repo}/coredns/coredns:v1.11.3", f"{repo}/etcd:3.5.15-0", variables["pause_image"]]
    if shape.cni == "calico":
        images += [f"{variables['calico_registry']}/calico/node:v3.29.1", "quay.io/tigera/operator:v1.36.2"]
    for name in ("cni.yaml", "traefik.yaml", "metrics-server.yaml", "gpu-device-plugin.yaml"):
        for doc in _documents(out / "master-1" / name):
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                images.append(container["image"])
    return images


def test_every_image_resolves_to_the_offline_registry_over_its_scheme(
    rendered: tuple[ClusterShape, Path],
) -> None:
    shape, out = rendered
    images = _images(out, shape)
    assert len(images) > 8
    certs_d = out / "worker-1" / "certs.d"
    for image in images:
        tried = endpoints(image, certs_d=certs_d)
        if shape.offline:
            # plain HTTP inside the datacenter: an https attempt would fail every pull
            assert all((e.scheme, e.host) == ("http", OFFLINE_REGISTRY) for e in tried), (image, tried)
        else:
            assert all(e.scheme == "https" for e in tried), (image, tried)
            assert OFFLINE_REGISTRY not in image


def test_calico_operator_manifest_comes_from_a_full_url(rendered: tuple[ClusterShape, Path]) -> None:
    _, out = rendered
    url = evaluated(out, "master-1")["calico_operator_manifest_url"]
    assert url.startswith(("http://", "https://")), url


def test_a_vip_is_the_endpoint_even_for_one_master_so_masters_can_join_later(
    rendered: tuple[ClusterShape, Path],
) -> None:
    shape, out = rendered
    vip = shape.cluster_vars()["apiserver_loadbalancer_vip"]
    assert vip, "every shape of the matrix has a VIP"
    variables = evaluated(out, "master-1")
    assert variables["kube_control_plane_endpoint"] == f"{vip}:8443"
    keepalived = (out / "master-1" / "keepalived.conf").read_text(encoding="utf-8")
    assert f"virtual_ipaddress {{\n        {vip}\n" in keepalived
    san = {doc["kind"]: doc for doc in _documents(out / "master-1" / "kubeadm-config.yaml")}
    assert vip in san["ClusterConfiguration"]["apiServer"]["certSANs"]


def test_gpu_nodes_get_the_nvidia_runtime_the_device_plugin_names(
    rendered: tuple[ClusterShape, Path],
) -> None:
    shape, out = rendered
    config = tomllib.loads((out / "worker-1" / "containerd-config.toml").read_text(encoding="utf-8"))
    cri = (
        config["plugins"].get("io.containerd.grpc.v1.cri")
        or config["plugins"]["io.containerd.cri.v1.runtime"]
    )
    if not shape.gpu:  # a node without a GPU gets no NVIDIA runtime
        assert "nvidia" not in cri["containerd"]["runtimes"]
        return
    nvidia = cri["containerd"]["runtimes"]["nvidia"]
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    docs = {doc["kind"]: doc for doc in _documents(out / "master-1" / "gpu-device-plugin.yaml")}
    assert docs["RuntimeClass"]["handler"] == "nvidia"
    assert "DaemonSet" not in docs, "the device plugin is the gpu addon's, one per node"


def test_haproxy_and_keepalived_check_a_serving_api_not_a_process(
    rendered: tuple[ClusterShape, Path],
) -> None:
    _, out = rendered
    haproxy = (out / "master-1" / "haproxy.cfg").read_text(encoding="utf-8")
    assert "http-check send meth GET uri /readyz" in haproxy
    assert "check check-ssl" in haproxy
    assert "tcp-check" not in haproxy
    keepalived = (out / "master-1" / "keepalived.conf").read_text(encoding="utf-8")
    assert "https://127.0.0.1:8443/readyz" in keepalived
    assert "pgrep" not in keepalived
    assert "auth_pass vrrp-pw\n" in keepalived


def test_the_api_server_writes_an_audit_log_and_encrypts_secrets(rendered: tuple[ClusterShape, Path]) -> None:
    _, out = rendered
    cluster = next(
        d for d in _documents(out / "master-1" / "kubeadm-config.yaml") if d["kind"] == "ClusterConfiguration"
    )
    args = cluster["apiServer"]["extraArgs"]
    flat = {a["name"]: a["value"] for a in args} if isinstance(args, list) else args
    assert flat["audit-policy-file"] == "/etc/kubernetes/kobot/audit-policy.yaml"
    assert flat["encryption-provider-config"] == "/etc/kubernetes/kobot/encryption-config.yaml"
    mounted = {volume["hostPath"] for volume in cluster["apiServer"]["extraVolumes"]}
    assert {"/etc/kubernetes/kobot", "/var/log/kubernetes/audit"} <= mounted

"""Renders the install's config files for one cluster shape with the real Ansible template engine.

One render is one `ansible-runner` run on a local-connection inventory: the role defaults load the way
the entry playbooks load them (cluster_defaults first), the inventory's settings win, and every file a
host would get is written under `out/<host>/` instead. The data checks (tests/playbooks/
test_install_as_data.py) read the files back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workers.ansible import PlaybookRun, PlaybookStatus, run_playbook

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROLES = PLAYBOOKS / "roles"
OFFLINE_REGISTRY = "10.10.0.5:5000"
FIXED = {
    "ansible_managed": "Managed by kobot",
    "kubeadm_bootstrap_token": "abcdef.0123456789abcdef",
    "kubeadm_join_token": "ghijkl.0123456789abcdef",
    "kubeadm_ca_cert_hash": "sha256:" + "ab" * 32,
    "kubeadm_certificate_key": "cd" * 32,
    "keepalived_auth_pass": "vrrp-pw",
    "metrics_server_ca_bundle": "Q0EgYnVuZGxl",
    "kube_apiserver_encryption_key": "a2V5",
}
"""Values a real run generates or reads from a host."""

EVALUATED = (
    "kubeadm_config_api_version",
    "kube_image_repo",
    "pause_image",
    "kube_version_minor",
    "containerd_registry_mirrors",
    "containerd_config_version",
    "calico_registry",
    "calico_operator_manifest_url",
    "kube_control_plane_endpoint",
    "apiserver_loadbalancer_enabled",
)
"""Variables written out as JSON per host (`vars.json`) for checks that need the evaluated value."""


@dataclass(frozen=True)
class ClusterShape:
    """One cell of the render matrix."""

    name: str
    kube_version: str
    masters: int
    offline: bool
    cni: str = "flannel"
    gpu: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def cluster_vars(self) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "cluster_name": "prod",
            "kube_version": self.kube_version,
            "kube_network_plugin": self.cni,
            "apiserver_loadbalancer_interface": "eth0",
            "apiserver_loadbalancer_vip": "10.10.0.10" if self.masters > 1 else "",
            **self.extra,
        }
        if self.offline:
            variables |= {
                "offline_registry": OFFLINE_REGISTRY,
                "offline_repo_url": "http://10.10.0.5/repo",
                "offline_files_url": "http://10.10.0.5/files",
            }
        return variables


def _inventory(shape: ClusterShape, path: Path) -> Path:
    masters = {f"master-{i}": f"10.10.0.{10 + i}" for i in range(1, shape.masters + 1)}
    workers = {"worker-1": "10.10.0.21"}
    hosts: dict[str, dict[str, Any]] = {
        name: {"ansible_connection": "local", "ip": ip} for name, ip in {**masters, **workers}.items()
    }
    if shape.gpu:
        hosts["worker-1"]["gpu"] = True
    content = {
        "all": {
            "vars": shape.cluster_vars(),
            "hosts": hosts,
            "children": {
                "kube_control_plane": {"hosts": dict.fromkeys(masters)},
                "etcd": {"hosts": dict.fromkeys(masters)},
                "kube_node": {"hosts": dict.fromkeys(workers)},
                "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
            },
        }
    }
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


TEMPLATES = {
    # file under out/<host>/: (template, hosts: "first_master" | "other_masters" | "workers" | "all")
    "kubeadm-config.yaml": ("control_plane/templates/kubeadm-config.yaml.j2", "first_master"),
    "kubeadm-join.yaml": ("kubeadm_join/templates/kubeadm-join.yaml.j2", "joining"),
    "containerd-config.toml": ("containerd/templates/config.toml.j2", "node"),
    "cni.yaml": ("cni/templates/{{ kube_network_plugin }}.yaml.j2", "first_master"),
    "traefik.yaml": ("addons/templates/traefik.yaml.j2", "first_master"),
    "metrics-server.yaml": ("addons/templates/metrics_server.yaml.j2", "first_master"),
    "gpu-device-plugin.yaml": ("addons/templates/gpu_device_plugin.yaml.j2", "first_master"),
    "haproxy.cfg": ("load_balancer/templates/haproxy.cfg.j2", "masters"),
    "keepalived.conf": ("load_balancer/templates/keepalived.conf.j2", "masters"),
}
# Each file is rendered only where a check reads it.
_NODE = "inventory_hostname == groups['kube_node'][0]"
_WHEN = {
    "first_master": "inventory_hostname == groups['kube_control_plane'][0]",
    "joining": f"inventory_hostname == (groups['kube_control_plane'] + [''])[1] or {_NODE}",
    "masters": "inventory_hostname in groups['kube_control_plane'][:2]",
    "node": _NODE,
    "first_master_and_node": f"inventory_hostname == groups['kube_control_plane'][0] or {_NODE}",
}


def _rendered_when(files: dict[str, str]) -> str:
    """A Jinja expression: the dict of each file's name to its render, for the files whose hosts hold."""
    lookup = "lookup('ansible.builtin.template', '{}')"
    parts = [
        f"({{'{name}': {lookup.format(ROLES / template)}}} if ({_WHEN[hosts]}) else {{}})"
        for name, (template, hosts) in files.items()
    ]
    return "{{ {} | combine(" + ", ".join(parts) + ") }}"


def _render_play(out_dir: Path) -> list[dict[str, Any]]:
    """Every render happens on the controller (the template lookup, the same Jinja environment as the
    template module's) and one `copy` per host writes them all as one JSON file: a template task per file
    cost a module run per host, about 1.3 s each, 16 s per shape."""
    defaults = [
        str(path)
        for path in sorted(ROLES.glob("*/defaults/main.yml"))
        if path.parts[-3] != "cluster_defaults"
    ]
    evaluated_vars = "{" + ", ".join(f"'{v}': {v}" for v in EVALUATED) + "}"
    tasks: list[dict[str, Any]] = [
        {
            "name": "Join as a control-plane node on the masters",
            "ansible.builtin.set_fact": {
                "kubeadm_join_control_plane": "{{ inventory_hostname in groups['kube_control_plane'] }}"
            },
        },
        {
            "name": "Render the files this host gets",
            "ansible.builtin.set_fact": {"kobot_rendered": _rendered_when(TEMPLATES)},
        },
        {
            "name": "Render hosts.toml per registry",
            "ansible.builtin.set_fact": {
                "kobot_rendered": "{{ kobot_rendered | combine({'certs.d/' ~ item.key ~ '/hosts.toml': "
                f"lookup('ansible.builtin.template', '{ROLES}/containerd/templates/hosts.toml.j2')}}) }}}}"
            },
            "loop": "{{ containerd_registry_mirrors | dict2items }}",
            "when": _WHEN["node"],
        },
        {
            "name": "Add the evaluated variables",
            "ansible.builtin.set_fact": {
                "kobot_rendered": "{{ kobot_rendered | combine({'vars.json': "
                + evaluated_vars
                + " | to_json}) }}"
            },
            "when": _WHEN["first_master_and_node"],
        },
        {
            "name": "Write what was rendered",
            "ansible.builtin.copy": {
                "content": "{{ kobot_rendered | to_json }}",
                "dest": f"{out_dir}/{{{{ inventory_hostname }}}}.json",
                "mode": "0600",
            },
            "delegate_to": "localhost",
            "when": "kobot_rendered | length > 0",
        },
    ]
    return [
        {
            "name": "Render the install's files",
            "hosts": "k8s_cluster",
            "gather_facts": False,
            "vars_files": [str(ROLES / "cluster_defaults" / "defaults" / "main.yml"), *defaults],
            "tasks": tasks,
        }
    ]


def _unpack(out_dir: Path) -> None:
    """`out/<host>.json` -> `out/<host>/<file>` for every file rendered for that host."""
    for bundle in sorted(out_dir.glob("*.json")):
        host_dir = out_dir / bundle.stem
        rendered: dict[str, str] = json.loads(bundle.read_text(encoding="utf-8"))
        for name, content in rendered.items():
            target = host_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        bundle.unlink()


def render(shape: ClusterShape, work: Path) -> Path:
    """Render every file of `shape` under `work/out/<host>/`; returns `work/out`."""
    out_dir = work / "out"
    out_dir.mkdir(parents=True)
    (work / "render.yml").write_text(yaml.safe_dump(_render_play(out_dir), sort_keys=False), encoding="utf-8")
    run = PlaybookRun(
        job_id=f"render-{shape.name}",
        step="render",
        attempt=1,
        playbook="render.yml",
        playbooks_dir=work,
        inventory=_inventory(shape, work / "inventory.yml"),
        artifacts_root=work / "jobs",
        # vars_files outrank inventory vars, so the inventory's settings also travel as extra vars
        extravars={**shape.cluster_vars(), **FIXED},
    )
    result = run_playbook(run, on_event=lambda event: None, should_cancel=lambda: False)
    assert result.status is PlaybookStatus.SUCCESSFUL, result.error
    _unpack(out_dir)
    return out_dir


def evaluated(out_dir: Path, host: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((out_dir / host / "vars.json").read_text(encoding="utf-8"))
    return value

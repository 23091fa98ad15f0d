"""Inventories in kubespray's groups, from a plan, from Terraform outputs, read back by real Ansible."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from kobot.automation_values import UnsafeValueError, Untrusted
from kobot.automation_yaml import load_yaml
from kobot.cluster_spec import ClusterSpec
from workers.inventory import render_inventory, write_inventory
from workers.plan import plan_cluster
from workers.terraform.models import NodeOutput

KEY = Path("/etc/kobot/ssh/id_ed25519")
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def _ansible_groups(path: Path) -> dict[str, list[str]]:
    listed = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data = json.loads(listed.stdout)
    return {group: sorted(body.get("hosts", [])) for group, body in data.items() if isinstance(body, dict)}


def test_inventory_from_a_manual_plan_read_back_by_ansible(tmp_path: Path) -> None:
    spec = ClusterSpec(
        name="dev", masters=3, workers=2, hosts=("10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5")
    )
    inventory = render_inventory(
        nodes=plan_cluster(spec=spec),
        ssh_user="kobot",
        ssh_key_path=KEY,
        cluster_vars={"kube_version": spec.version, "kube_network_plugin": "calico"},
    )
    path = write_inventory(tmp_path / "inv" / "inventory.yml", inventory)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    groups = _ansible_groups(path)
    masters = ["dev-master-1", "dev-master-2", "dev-master-3"]
    assert groups["kube_control_plane"] == masters and groups["etcd"] == masters
    assert groups["kube_node"] == ["dev-worker-1", "dev-worker-2"]
    assert "k8s_cluster" in groups
    variables = load_yaml(path.read_text())["all"]["vars"]
    assert variables["ansible_ssh_private_key_file"] == str(KEY)
    assert variables["ansible_become"] is True and variables["kube_network_plugin"] == "calico"
    assert "ansible_ssh_common_args" not in variables
    # what came from the plan is written !unsafe; what kobot itself sets stays plain
    assert isinstance(variables["kube_network_plugin"], Untrusted)
    assert not isinstance(variables["ansible_ssh_private_key_file"], Untrusted)
    host = load_yaml(path.read_text())["all"]["hosts"]["dev-master-1"]
    assert all(isinstance(host[key], Untrusted) for key in ("ansible_host", "ip", "access_ip"))


def test_inventory_from_terraform_outputs_single_master_also_runs_workloads(tmp_path: Path) -> None:
    outputs = {"c-master-1": NodeOutput(name="c-master-1", ip="10.2.0.5", role="master", id="vm-1")}
    inventory = render_inventory(
        nodes=outputs, ssh_user="root", ssh_key_path=None, known_hosts_path=tmp_path / "known_hosts"
    )
    hosts = inventory["all"]["hosts"]
    assert hosts == {"c-master-1": {"ansible_host": "10.2.0.5", "ip": "10.2.0.5", "access_ip": "10.2.0.5"}}
    assert list(inventory["all"]["children"]["kube_node"]["hosts"]) == ["c-master-1"]
    assert "StrictHostKeyChecking=yes" in inventory["all"]["vars"]["ansible_ssh_common_args"]
    assert "ansible_ssh_private_key_file" not in inventory["all"]["vars"]


def test_inventory_local_hosts_use_the_local_connection_only_when_the_test_setting_allows() -> None:
    inventory = render_inventory(
        nodes=[("a-master-1", "master", "127.0.0.1"), ("a-worker-1", "worker", "10.0.0.9")],
        ssh_user="root",
        ssh_key_path=KEY,
        allow_local_hosts=True,
    )
    assert inventory["all"]["hosts"]["a-master-1"]["ansible_connection"] == "local"
    assert "ansible_connection" not in inventory["all"]["hosts"]["a-worker-1"]


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "LOCALHOST.", "::1", "::ffff:127.0.0.1"])
def test_inventory_refuses_this_machine_without_the_test_setting(address: str) -> None:
    with pytest.raises(UnsafeValueError, match=r"this machine|IPv4 address in IPv6 form"):
        render_inventory(nodes=[("a-master-1", "master", address)], ssh_user="root", ssh_key_path=KEY)


@pytest.mark.parametrize(
    ("cluster_vars", "message"),
    [
        ({"registry_password": "hunter2"}, "registry_password looks like a secret"),
        ({"offline": {"token": "abc"}}, "offline.token looks like a secret"),
        ({"anything": SecretStr("x")}, "anything looks like a secret"),
    ],
)
def test_inventory_refuses_secrets(cluster_vars: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_inventory(
            nodes=[("a-master-1", "master", "10.0.0.1")],
            ssh_user="root",
            ssh_key_path=KEY,
            cluster_vars=cluster_vars,
        )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "at least one node"),
        ([("a-worker-1", "worker", "10.0.0.1")], "at least one master"),
        ([("a-master-1", "master", "")], "has no address yet"),
        ([("a-master-1", "master", "10.0.0.1"), ("a-worker-1", "worker", "10.0.0.1")], "share the address"),
        ([("a-master-1", "boss", "10.0.0.1")], "roles are master and worker"),
    ],
)
def test_inventory_refuses_inconsistent_nodes(rows: list[tuple[str, str, str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_inventory(nodes=rows, ssh_user="root", ssh_key_path=KEY)


def test_inventory_rewrite_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    write_inventory(
        path,
        render_inventory(nodes=[("a-master-1", "master", "10.0.0.1")], ssh_user="root", ssh_key_path=KEY),
    )
    write_inventory(
        path,
        render_inventory(nodes=[("a-master-1", "master", "10.0.0.2")], ssh_user="root", ssh_key_path=KEY),
    )
    assert load_yaml(path.read_text())["all"]["hosts"]["a-master-1"]["ip"] == "10.0.0.2"
    assert [p.name for p in tmp_path.iterdir()] == ["inventory.yml"]

"""The Ansible inventory of a cluster, in kubespray's groups, built from the plan or the module outputs.

Never from Terraform state: the module's `nodes` output is the contract. The file holds addresses,
roles and cluster variables; keys appear only as paths, and a value that looks like a secret is refused.
Every node name and address is checked again here (a record may be older than the command checks, or
edited in the store), and every value from a record is written `!unsafe`, so Ansible never renders it.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from kobot import automation_values, automation_yaml
from kobot.automation_values import UnsafeValueError
from kobot.cluster_spec import NodeRole
from workers.plan import ClusterPlan
from workers.terraform.models import NodeOutput

NodeRow = tuple[str, str, str]
"""(node name, role, address): the shape the cluster record keeps."""

InventorySource = ClusterPlan | Mapping[str, NodeOutput] | Sequence[NodeRow]

SECRET_KEY = re.compile(r"(password|passwd|secret|token|private_key$|api_key)", re.IGNORECASE)
"""Variable names that would put a secret in the file; `*_file` paths are fine."""

GROUPS = ("kube_control_plane", "kube_node", "etcd")


def node_rows(source: InventorySource) -> list[NodeRow]:
    """(name, role, address) rows, masters first, from a plan, Terraform outputs or rows."""
    if isinstance(source, ClusterPlan):
        rows = [(n.name, n.role.value, n.address) for n in source.nodes]
    elif isinstance(source, Mapping):
        rows = [(name, out.role, out.ip) for name, out in source.items()]
    else:
        rows = [(str(name), str(role), str(address)) for name, role, address in source]
    return sorted(rows, key=lambda row: (row[1] != NodeRole.MASTER.value, row[0]))


def render_inventory(
    *,
    nodes: InventorySource,
    ssh_user: str,
    ssh_key_path: Path | None,
    cluster_vars: Mapping[str, Any] | None = None,
    allow_local_hosts: bool = False,
    known_hosts_path: Path | None = None,
    gpu_nodes: Collection[str] = (),
) -> dict[str, Any]:
    """kubespray groups: kube_control_plane and etcd are the masters, kube_node the workers (or the
    masters when there is no worker), k8s_cluster both. Only with `allow_local_hosts` (the test-only
    setting) may a node be this machine, and then it uses Ansible's local connection. With
    `known_hosts_path` host keys are checked strictly against it; without, the runner's own policy
    applies (workers.ansible: accept a new key once, refuse a changed one). Nodes in `gpu_nodes` (and a
    plan's GPU workers) get `gpu: true`, which the GPU roles and containerd's nvidia runtime key on.

    Raises ValueError for a bad row (UnsafeValueError for a name or address kobot refuses)."""
    rows = _checked_rows(node_rows(nodes), allow_local_hosts=allow_local_hosts)
    gpu = set(gpu_nodes) | (
        {n.name for n in nodes.nodes if n.gpu} if isinstance(nodes, ClusterPlan) else set()
    )
    hosts: dict[str, dict[str, Any]] = {}
    for name, _role, address in rows:
        host: dict[str, Any] = automation_values.untrusted(
            {"ansible_host": address, "ip": address, "access_ip": address}
        )
        if allow_local_hosts and automation_values.is_local_address(address):
            host["ansible_connection"] = "local"
        if name in gpu:
            host["gpu"] = True
        hosts[name] = host
    masters = [name for name, role, _ in rows if role == NodeRole.MASTER.value]
    workers = [name for name, role, _ in rows if role == NodeRole.WORKER.value]
    variables: dict[str, Any] = {"ansible_user": ssh_user, "ansible_become": ssh_user != "root"}
    if ssh_key_path is not None:
        variables["ansible_ssh_private_key_file"] = str(ssh_key_path)
    if known_hosts_path is not None:
        variables["ansible_ssh_common_args"] = (
            f"-o UserKnownHostsFile={known_hosts_path} -o StrictHostKeyChecking=yes"
        )
    for key, value in (cluster_vars or {}).items():
        _check_not_secret(key, value)
        variables[key] = automation_values.untrusted(value)
    members = {"kube_control_plane": masters, "etcd": masters, "kube_node": workers or masters}
    return {
        "all": {
            "hosts": hosts,
            "vars": variables,
            "children": {
                **{group: {"hosts": {name: None for name in members[group]}} for group in GROUPS},
                "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
            },
        }
    }


def write_inventory(path: Path, inventory: Mapping[str, Any]) -> Path:
    """Write the inventory as YAML, readable by kobot's user only, replacing any older one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".inventory-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(automation_yaml.dump_yaml(inventory))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _checked_rows(rows: Sequence[NodeRow], *, allow_local_hosts: bool) -> list[NodeRow]:
    if not rows:
        raise ValueError("an inventory needs at least one node")
    seen_names: set[str] = set()
    seen_addresses: dict[str, str] = {}
    checked: list[NodeRow] = []
    for raw_name, role, raw_address in rows:
        name = automation_values.node_name(raw_name)
        if name != raw_name:
            raise UnsafeValueError(f"node name '{raw_name}' is not in canonical form (like {name})")
        if role not in (NodeRole.MASTER.value, NodeRole.WORKER.value):
            raise ValueError(f"node {name} has role {role!r}; roles are master and worker")
        if not raw_address:
            raise ValueError(f"node {name} has no address yet (were its hosts created?)")
        address = automation_values.host_address(raw_address, allow_local=allow_local_hosts)
        if name in seen_names:
            raise ValueError(f"node {name} is listed twice")
        if address in seen_addresses:
            raise ValueError(f"nodes {seen_addresses[address]} and {name} share the address {address}")
        seen_names.add(name)
        seen_addresses[address] = name
        checked.append((name, role, address))
    if not any(role == NodeRole.MASTER.value for _, role, _ in rows):
        raise ValueError("an inventory needs at least one master")
    return checked


def _check_not_secret(key: str, value: Any) -> None:
    if isinstance(value, SecretStr) or (SECRET_KEY.search(key) and not key.endswith("_file")):
        raise ValueError(
            f"variable {key} looks like a secret; pass secrets to Ansible by file path, not inventory"
        )
    if isinstance(value, Mapping):
        for inner_key, inner in value.items():
            _check_not_secret(f"{key}.{inner_key}", inner)

"""What a step hands to Ansible and Terraform for a cluster, derived from its record and checked again.

The record may be older than today's command checks or edited in the store: every value that reaches an
inventory, a play's variables or a Terraform module is checked here where it is written, and a value
kobot refuses fails the step with a message that says which and why.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kobot import automation_values
from kobot.automation_values import UnsafeValueError
from kobot.cluster_spec import OfflineRepository, Provider
from kobot.clusters import ClusterRecord, ClusterStore, NodeRecord
from kobot.errors import StepFailedError
from kobot.job_records import JobEventType
from kobot.settings import Settings
from workers.cluster_import_ssh import attempt_identity
from workers.cluster_secrets import KEEPALIVED_SECRET, cluster_secrets_for
from workers.context import StepContext
from workers.inventory import render_inventory, write_inventory

INVENTORY_FILE = "inventory.yml"

KEEPALIVED_AUTH_ENV = "KOBOT_KEEPALIVED_AUTH"
"""The environment variable the load_balancer role reads the VRRP password from."""

INVENTORY_RENDERED = "inventory"
"""Key in a step context's per-attempt scratch: the inventory this attempt wrote."""


@contextmanager
def refusing_unsafe_values(cluster: str, *, task: str) -> Iterator[None]:
    """A value kobot will not hand to automation fails the step with a message saying which and why."""
    try:
        yield
    except UnsafeValueError as exc:
        raise StepFailedError(
            f"kobot will not run automation for {cluster} with this value", task=task, error=str(exc)
        ) from None


def write_cluster_inventory(
    ctx: StepContext, record: ClusterRecord, *, nodes: Sequence[NodeRecord], path: Path
) -> Path:
    """The inventory of `nodes` of `record`, every value checked again (names that resolve to this
    machine included) and written inert, at `path`."""

    allow_local = ctx.settings.allow_local_hosts
    ssh_user, ssh_key_path = ctx.settings.ssh_user, ctx.settings.ssh_key_file
    if record.imported is not None:
        ssh_user, ssh_key_path = attempt_identity(ctx, record)
    with refusing_unsafe_values(record.name, task="render inventory"):
        inventory = render_inventory(
            nodes=[(n.name, n.role, n.address) for n in nodes],
            ssh_user=ssh_user,
            ssh_key_path=ssh_key_path,
            allow_local_hosts=allow_local,
            cluster_vars=cluster_vars(record),
            gpu_nodes={n.name for n in nodes if n.gpu},
        )
        automation_values.check_hosts_resolved((n.address for n in nodes), allow_local=allow_local)
    return write_inventory(path, inventory)


def render_cluster_inventory(ctx: StepContext) -> Path:
    """The inventory of every node of the cluster's record, written to this job's inventory file; later
    steps of this attempt use it through `inventory_path`."""
    record = ClusterStore(ctx.redis).require(ctx.cluster)
    path = write_cluster_inventory(ctx, record, nodes=record.nodes, path=ctx.work_dir / INVENTORY_FILE)
    ctx.scratch[INVENTORY_RENDERED] = path
    ctx.emit(JobEventType.LOG, message=f"inventory for {len(record.nodes)} nodes")
    return path


def inventory_path(ctx: StepContext) -> Path:
    """This job's inventory as this attempt rendered it. An attempt that resumes past the inventory step
    renders it again from the record first: a file already on disk (an earlier attempt's, an older
    kobot's without tags, or one edited in place) is never handed to Ansible unchecked."""
    rendered = ctx.scratch.get(INVENTORY_RENDERED)
    if isinstance(rendered, Path):
        return rendered
    return render_cluster_inventory(ctx)


def cluster_vars(record: ClusterRecord) -> dict[str, Any]:
    """Inventory variables from the record, each checked again (the record may have been edited)."""
    spec = record.spec
    vip = spec.api_vip
    return {
        "cluster_name": automation_values.cluster_name(record.name),
        "kube_version": automation_values.semver(spec.version),
        "kube_network_plugin": automation_values.dns_label(spec.cni.value, what="cni"),
        "kube_pods_subnet": automation_values.cidr(spec.pod_cidr, what="pod_cidr"),
        "kube_service_addresses": automation_values.cidr(spec.service_cidr, what="service_cidr"),
        "kube_proxy_mode": automation_values.dns_label(spec.kube_proxy_mode.value, what="kube_proxy_mode"),
        "container_manager": "containerd",
        "apiserver_loadbalancer_vip": automation_values.host_address(vip) if vip else "",
        **offline_vars(spec.offline_repo),
    }


def offline_vars(offline_repo: OfflineRepository | None) -> dict[str, Any]:
    """The roles' offline settings (packages, images, files and the files' recorded sha256) from the
    spec's `offline_repo`; none at all for a cluster that pulls from the internet, so the role defaults
    apply."""
    if offline_repo is None:
        return {}
    return {
        "offline_repo_url": offline_repo.package_repo_url,
        "offline_registry": offline_repo.image_registry,
        "offline_files_url": offline_repo.files_url,
        "offline_file_sha256": dict(offline_repo.file_sha256),
        # public: the CA containerd and preflight verify the registry with; its key never leaves kobot
        **({"offline_registry_ca": offline_repo.ca_certificate} if offline_repo.ca_certificate else {}),
    }


def load_balancer_secrets(ctx: StepContext) -> dict[str, str]:
    """What every play that renders keepalived needs in its environment (never in its variables): the
    cluster's VRRP password, made once and kept encrypted. create's load balancer stage and node_add,
    which renders keepalived again on every master, hand the same one."""
    password = cluster_secrets_for(ctx).get_or_create_password(cluster=ctx.cluster, name=KEEPALIVED_SECRET)
    return {KEEPALIVED_AUTH_ENV: password}


def play_vars(ctx: StepContext) -> dict[str, Any]:
    """kobot's own variables for every play; the site's ansible_extra_vars reach the run as trusted
    site variables (workers.ansible), the step's own extra vars as untrusted ones."""
    return {"kobot_job_id": automation_values.path_component(ctx.job_id, what="job id")}


def terraform_variables(
    settings: Settings,
    *,
    provider: str,
    nodes: dict[str, Any],
    api_vip: str | None = None,
    pod_cidr: str | None = None,
) -> dict[str, Any]:
    """The module's input: the site's variables for this provider plus the nodes map, whose every
    value is checked again here: it comes from a plan or a record, and Terraform names machines,
    disks and addresses after it. OpenStack also gets the VIP and the pod range: its port security
    drops every address a port does not own, so keepalived's VIP and routed pod traffic need
    allowed address pairs (terraform/modules/openstack/addresses.tf)."""
    variables = {**settings.terraform_variables.get(provider, {}), "nodes": checked_terraform_nodes(nodes)}
    if provider == Provider.OPENSTACK.value:
        variables["api_vip_cidr"] = _one_address_network(api_vip) if api_vip else ""
        variables["pod_cidr"] = automation_values.cidr(pod_cidr, what="pod_cidr") if pod_cidr else ""
    return variables


def _one_address_network(address: str) -> str:
    """`10.0.0.100/32` (or `/128`): the form OpenStack's allowed address pairs take."""
    checked = ipaddress.ip_address(automation_values.host_address(address))
    return f"{checked}/{checked.max_prefixlen}"


def record_terraform_variables(settings: Settings, record: ClusterRecord) -> dict[str, Any]:
    """`terraform_variables` for a recorded cluster: its nodes, VIP and pod range."""
    return terraform_variables(
        settings,
        provider=record.provider,
        nodes=terraform_nodes(record),
        api_vip=record.spec.api_vip,
        pod_cidr=record.spec.pod_cidr,
    )


def checked_terraform_nodes(nodes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The nodes map with names, roles, addresses, zones and sizes checked; raises UnsafeValueError."""
    checked: dict[str, dict[str, Any]] = {}
    for name, node in nodes.items():
        if automation_values.node_name(name) != name:
            raise UnsafeValueError(f"node name '{name}' is not in canonical form")
        role = node.get("role")
        if role not in ("master", "worker"):
            raise UnsafeValueError(f"node {name} has role {role!r}; roles are master and worker")
        ip = node.get("ip") or ""
        zone = node.get("zone") or ""
        sizes = {key: node.get(key) for key in ("cpu", "memory", "disk")}
        for key, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise UnsafeValueError(f"node {name} has {key} {size!r}; a positive whole number is needed")
        checked[name] = {
            "role": role,
            "ip": automation_values.host_address(ip) if ip else "",
            "zone": automation_values.dns_label(zone, what="zone") if zone else "",
            **sizes,
        }
    return checked


def plan_nodes_map(plan: Any) -> dict[str, dict[str, Any]]:
    """The `nodes` input for a plan that has not been recorded yet (for `plan cluster`)."""
    return {
        node.name: {
            "role": node.role.value if hasattr(node.role, "value") else node.role,
            "ip": node.address,
            "zone": node.zone or "",
            "cpu": node.cpu,
            "memory": node.memory_mb,
            "disk": node.disk_gb,
        }
        for node in plan.nodes
    }


def terraform_nodes(record: ClusterRecord) -> dict[str, dict[str, Any]]:
    """The `nodes` input for a recorded cluster, sized as its spec says (the spec fills a role it gives no
    size from `DEFAULT_NODE_SIZES`, the same figures the planner uses)."""
    sizes = record.spec.node_sizes
    nodes = {}
    for node in record.nodes:
        size = sizes[node.role]
        nodes[node.name] = {
            "role": node.role.value,
            "ip": node.address,
            "zone": node.zone or "",
            "cpu": size.cpu,
            "memory": size.memory_mb,
            "disk": size.disk_gb,
        }
    return nodes

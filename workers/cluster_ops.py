"""The built-in cluster operations and their steps (Day 1 create; Day 2 steps arrive per kind).

Each step is one idea: plan nodes, create hosts (IaaS only), render the inventory, wait for SSH,
then one playbook per install stage. Steps read what earlier ones produced from the cluster record
or the job's work dir, never from memory, so a retry in a new process can resume at any step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from kobot import automation_values, defaults
from kobot.automation_values import UnsafeValueError
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, HistoryEntry, NodeRecord
from kobot.errors import StepFailedError
from kobot.job_records import JobEventType, JobKind, JobSpec
from kobot.settings import Settings
from kobot.store import secret_key
from workers.cluster_secrets import ClusterSecrets
from workers.context import StepContext
from workers.inventory import render_inventory, write_inventory
from workers.operations import Operation, Step, operation
from workers.plan import plan_from_params
from workers.ssh import wait_for_ssh
from workers.terraform import workspace_for

INVENTORY_FILE = "inventory.yml"

KUBECONFIG_SECRET = "admin-kubeconfig"  # nosec B105  # a secret's name in the store, not its value
KEEPALIVED_SECRET = "keepalived-auth"  # nosec B105  # a secret's name in the store, not its value

INSTALL_STAGES: tuple[tuple[str, str, str], ...] = (
    ("base_os", "Base OS", "base_os.yml"),
    ("container_runtime", "Container runtime", "container_runtime.yml"),
    ("kubernetes_packages", "Kubernetes packages and images", "kubernetes_packages.yml"),
    ("load_balancer", "API load balancer", "load_balancer.yml"),
    ("control_plane", "Control plane", "control_plane.yml"),
    ("workers_join", "Workers join", "workers_join.yml"),
    ("cni", "Pod network", "cni.yml"),
    ("addons", "Addons", "addons.yml"),
    ("post", "Post-install checks and kubeconfig", "post.yml"),
)
"""(step name, title, entry playbook) of the install after preflight, in order; cluster_create.yml
runs the same stages in one go for people who use the playbooks without kobot."""


# --- steps -------------------------------------------------------------------------------------
def plan_nodes(ctx: StepContext) -> None:

    store = ClusterStore(ctx.redis)
    existing = store.get(ctx.cluster)
    if (
        existing is not None
        and existing.state is not ClusterState.FAILED
        and existing.creating_job != ctx.job_id
    ):
        # Two creates queued for one name: the second waited for the first and must not reinstall it.
        raise StepFailedError(
            f"cluster {ctx.cluster} already exists ({existing.state.value}); nothing was changed"
        )
    try:
        plan = plan_from_params(
            cluster=ctx.cluster,
            params=ctx.params,
            redis=ctx.redis,
            allow_local_hosts=ctx.settings.allow_local_hosts,
        )
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        raise StepFailedError(f"cannot plan {ctx.cluster}", error=problems) from None
    record = existing or ClusterRecord(name=ctx.cluster)
    record.creating_job = ctx.job_id
    record.provider = plan.spec.provider
    record.version = plan.spec.version
    record.spec = {**plan.spec.model_dump(mode="json"), "api_vip": plan.vip}
    record.state = ClusterState.CREATING
    record.nodes = [
        NodeRecord(name=node.name, role=node.role, address=node.address, zone=node.zone)
        for node in plan.nodes
    ]
    store.save(record)
    for line in plan.summary_lines():
        ctx.emit(JobEventType.LOG, message=line)


def provision_hosts(ctx: StepContext) -> None:

    store = ClusterStore(ctx.redis)
    record = store.require(ctx.cluster)
    workspace = workspace_for(settings=ctx.settings, cluster=ctx.cluster, provider=record.provider)
    with refusing_unsafe_values(ctx.cluster, task="terraform variables"):
        variables = terraform_variables(ctx.settings, provider=record.provider, nodes=terraform_nodes(record))
    outputs = workspace.apply(
        variables=variables,
        job_id=ctx.job_id,
        on_event=ctx.on_runner_event,
        should_cancel=ctx.should_cancel,
    )
    for node in record.nodes:
        out = outputs.get(node.name)
        if out is not None:
            node.address = out.ip
            node.state = "provisioned"
    store.save(record)


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
    with refusing_unsafe_values(record.name, task="render inventory"):
        inventory = render_inventory(
            nodes=[(n.name, n.role, n.address) for n in nodes],
            ssh_user=ctx.settings.ssh_user,
            ssh_key_path=ctx.settings.ssh_key_file,
            allow_local_hosts=allow_local,
            cluster_vars=cluster_vars(record),
        )
        automation_values.check_hosts_resolved((n.address for n in nodes), allow_local=allow_local)
    return write_inventory(path, inventory)


def render_inventory_step(ctx: StepContext) -> None:
    record = ClusterStore(ctx.redis).require(ctx.cluster)
    write_cluster_inventory(ctx, record, nodes=record.nodes, path=ctx.work_dir / INVENTORY_FILE)
    ctx.emit(JobEventType.LOG, message=f"inventory for {len(record.nodes)} nodes")


def wait_for_ssh_step(ctx: StepContext) -> None:
    wait_for_ssh_of(ctx, ClusterStore(ctx.redis).require(ctx.cluster).nodes)


def wait_for_ssh_of(ctx: StepContext, nodes: list[NodeRecord]) -> None:
    """Wait until every node answers on SSH (a Day 2 join waits only for the joining ones). Local
    hosts exist only under the test-only allow_local_hosts setting; they need no SSH."""

    allow_local = ctx.settings.allow_local_hosts
    hosts = [
        (node.address, 22)
        for node in nodes
        if not (allow_local and automation_values.is_local_address(node.address))
    ]
    if not hosts:
        ctx.emit(JobEventType.LOG, message="every host is local; no SSH to wait for")
        return
    wait_for_ssh(
        hosts=hosts,
        timeout=defaults.SSH_WAIT_TIMEOUT_SECONDS,
        should_cancel=ctx.should_cancel,
        allow_local=allow_local,
    )


def preflight(ctx: StepContext) -> None:
    ctx.run_playbook("preflight.yml", inventory=inventory_path(ctx), extravars=play_vars(ctx))


def _stage(playbook: str) -> Any:
    def run(ctx: StepContext) -> None:
        ctx.run_playbook(playbook, inventory=inventory_path(ctx), extravars=play_vars(ctx))

    return run


def load_balancer(ctx: StepContext) -> None:
    password = cluster_secrets_for(ctx).get_or_create_password(cluster=ctx.cluster, name=KEEPALIVED_SECRET)
    ctx.run_playbook(
        "load_balancer.yml",
        inventory=inventory_path(ctx),
        extravars=play_vars(ctx),
        secrets={"KOBOT_KEEPALIVED_AUTH": password},
    )


def post_install(ctx: StepContext) -> None:
    """Smoke test and fetch the admin kubeconfig, which is encrypted at once and its file removed."""
    fetched = ctx.work_dir / "admin.conf"
    try:
        ctx.run_playbook(
            "post.yml",
            inventory=inventory_path(ctx),
            extravars={**play_vars(ctx), "kubeconfig_dest": str(fetched)},
        )
        if fetched.exists():
            cluster_secrets_for(ctx).put(
                cluster=ctx.cluster, name=KUBECONFIG_SECRET, value=fetched.read_bytes()
            )
            ctx.emit(JobEventType.LOG, message="admin kubeconfig stored encrypted")
    finally:
        fetched.unlink(missing_ok=True)


def cluster_secrets_for(ctx: StepContext) -> ClusterSecrets:
    return ClusterSecrets(redis=ctx.redis, secret=secret_key(ctx.settings))


STAGE_RUNNERS: dict[str, Any] = {"load_balancer": load_balancer, "post": post_install}
"""Stages that need more than their playbook (secrets in, kubeconfig out)."""


# --- record hooks ------------------------------------------------------------------------------
def _created(ctx: StepContext) -> None:
    store = ClusterStore(ctx.redis)
    record = store.require(ctx.cluster)
    record.state = ClusterState.RUNNING if INSTALL_STAGES else ClusterState.PENDING
    for node in record.nodes:
        node.state = "ready" if INSTALL_STAGES else "checked"
    record.add_history(
        HistoryEntry(job_id=ctx.job_id, kind=JobKind.CLUSTER_CREATE.value, outcome="succeeded")
    )
    store.save(record)


def _create_failed(ctx: StepContext) -> None:
    store = ClusterStore(ctx.redis)
    record = store.get(ctx.cluster)
    if record is None or record.creating_job != ctx.job_id:
        return  # not this job's cluster (a second create of a taken name): leave it as it is
    record.state = ClusterState.FAILED
    record.add_history(HistoryEntry(job_id=ctx.job_id, kind=JobKind.CLUSTER_CREATE.value, outcome="failed"))
    store.save(record)


@operation(JobKind.CLUSTER_CREATE.value)
def cluster_create(spec: JobSpec) -> Operation:
    steps = [Step("plan", "Plan nodes", plan_nodes)]
    if spec.params.get("provider", "manual") != "manual":
        steps.append(Step("provision", "Create hosts (Terraform)", provision_hosts))
    steps += [
        Step("inventory", "Render inventory", render_inventory_step),
        Step("wait_ssh", "Wait for SSH", wait_for_ssh_step),
        Step("preflight", "Preflight checks", preflight),
    ]
    steps += [
        Step(name, title, STAGE_RUNNERS.get(name) or _stage(playbook))
        for name, title, playbook in INSTALL_STAGES
    ]
    return Operation(
        kind=JobKind.CLUSTER_CREATE.value,
        steps=tuple(steps),
        on_success=_created,
        on_failure=_create_failed,
        final_note=None
        if INSTALL_STAGES
        else "hosts passed preflight; the install stages are not wired in yet",
    )


# --- helpers -----------------------------------------------------------------------------------
def inventory_path(ctx: StepContext) -> Path:
    """This job's inventory; rendered again from the cluster record when retention removed the job's
    directory before a retry."""
    path = ctx.work_dir / INVENTORY_FILE
    if not path.exists() and ctx.step.name not in ("inventory", "plan", "provision"):
        render_inventory_step(ctx)
    return path


def cluster_vars(record: ClusterRecord) -> dict[str, Any]:
    """Inventory variables from the record, each checked again (the record may have been edited)."""
    spec = record.spec

    def checked(key: str, check: Any, default: str | None = None) -> str | None:
        value = spec.get(key, default)
        return None if value is None else str(check(value))

    vip = spec.get("api_vip")
    return {
        "cluster_name": automation_values.cluster_name(record.name),
        "kube_version": checked("version", automation_values.semver),
        "kube_network_plugin": checked("cni", lambda v: automation_values.dns_label(v, what="cni")),
        "kube_pods_subnet": checked("pod_cidr", lambda v: automation_values.cidr(v, what="pod_cidr")),
        "kube_service_addresses": checked(
            "service_cidr", lambda v: automation_values.cidr(v, what="service_cidr")
        ),
        "kube_proxy_mode": checked(
            "kube_proxy_mode", lambda v: automation_values.dns_label(v, what="kube_proxy_mode"), "ipvs"
        ),
        "container_manager": "containerd",
        "apiserver_loadbalancer_vip": automation_values.host_address(vip) if vip else "",
    }


def play_vars(ctx: StepContext) -> dict[str, Any]:
    """kobot's own variables for every play; the site's ansible_extra_vars reach the run as trusted
    site variables (workers.ansible), the step's own extra vars as untrusted ones."""
    return {"kobot_job_id": automation_values.path_component(ctx.job_id, what="job id")}


def terraform_variables(settings: Settings, *, provider: str, nodes: dict[str, Any]) -> dict[str, Any]:
    """The module's input: the site's variables for this provider plus the nodes map, whose every
    value is checked again here: it comes from a plan or a record, and Terraform names machines,
    disks and addresses after it."""
    return {**settings.terraform_variables.get(provider, {}), "nodes": checked_terraform_nodes(nodes)}


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
    sizes = record.spec.get("node_sizes", {})
    nodes = {}
    for node in record.nodes:
        size = sizes.get(node.role, {})
        nodes[node.name] = {
            "role": node.role,
            "ip": node.address,
            "zone": node.zone or "",
            "cpu": size.get("cpu", 4),
            "memory": size.get("memory_mb", 8192),
            "disk": size.get("disk_gb", 80),
        }
    return nodes

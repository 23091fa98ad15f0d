"""The built-in cluster operations and their steps (Day 1 create; Day 2 steps arrive per kind).

Each step is one idea: plan nodes, create hosts (IaaS only), render the inventory, wait for SSH,
then one playbook per install stage. Steps read what earlier ones produced from the cluster record
or the job's work dir, never from memory, so a retry in a new process can resume at any step.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, HistoryEntry, NodeRecord, NodeState
from kobot.errors import StepFailedError
from kobot.job_records import JobEventType, JobKind, JobSpec
from workers import playbook_names
from workers.cluster_dry_run import dry_run_operation, is_dry_run
from workers.cluster_inputs import (
    inventory_path,
    play_vars,
    record_terraform_variables,
    refusing_unsafe_values,
)
from workers.cluster_secrets import KEEPALIVED_SECRET, KUBECONFIG_SECRET, cluster_secrets_for
from workers.cluster_steps import render_inventory_step, wait_for_ssh_step
from workers.context import StepContext
from workers.operations import Operation, Step, operation
from workers.plan import plan_from_params
from workers.terraform import workspace_for

INSTALL_STAGES: tuple[tuple[str, str, str], ...] = (
    ("base_os", "Base OS", playbook_names.BASE_OS),
    ("container_runtime", "Container runtime", playbook_names.CONTAINER_RUNTIME),
    ("kubernetes_packages", "Kubernetes packages and images", playbook_names.KUBERNETES_PACKAGES),
    ("load_balancer", "API load balancer", playbook_names.LOAD_BALANCER),
    ("control_plane", "Control plane", playbook_names.CONTROL_PLANE),
    ("workers_join", "Workers join", playbook_names.WORKERS_JOIN),
    ("cni", "Pod network", playbook_names.CNI),
    ("addons", "Addons", playbook_names.ADDONS),
    ("post", "Post-install checks and kubeconfig", playbook_names.POST),
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
    record.spec = plan.spec.shape(api_vip=plan.vip)
    record.state = ClusterState.CREATING
    record.nodes = [
        NodeRecord(name=node.name, role=node.role, address=node.address, zone=node.zone, gpu=node.gpu)
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
        variables = record_terraform_variables(ctx.settings, record)
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
            node.state = NodeState.PROVISIONED
    store.save(record)


def preflight(ctx: StepContext) -> None:
    ctx.run_playbook(playbook_names.PREFLIGHT, inventory=inventory_path(ctx), extravars=play_vars(ctx))


def _stage(playbook: str) -> Any:
    def run(ctx: StepContext) -> None:
        ctx.run_playbook(playbook, inventory=inventory_path(ctx), extravars=play_vars(ctx))

    return run


def load_balancer(ctx: StepContext) -> None:
    password = cluster_secrets_for(ctx).get_or_create_password(cluster=ctx.cluster, name=KEEPALIVED_SECRET)
    ctx.run_playbook(
        playbook_names.LOAD_BALANCER,
        inventory=inventory_path(ctx),
        extravars=play_vars(ctx),
        secrets={"KOBOT_KEEPALIVED_AUTH": password},
    )


def post_install(ctx: StepContext) -> None:
    """Smoke test and fetch the admin kubeconfig, which is encrypted at once and its file removed."""
    fetched = ctx.work_dir / "admin.conf"
    try:
        ctx.run_playbook(
            playbook_names.POST,
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


STAGE_RUNNERS: dict[str, Any] = {"load_balancer": load_balancer, "post": post_install}
"""Stages that need more than their playbook (secrets in, kubeconfig out)."""


# --- record hooks ------------------------------------------------------------------------------
def _created(ctx: StepContext) -> None:
    store = ClusterStore(ctx.redis)
    record = store.require(ctx.cluster)
    record.state = ClusterState.RUNNING if INSTALL_STAGES else ClusterState.PENDING
    for node in record.nodes:
        node.state = NodeState.READY if INSTALL_STAGES else NodeState.CHECKED
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
    if is_dry_run(spec):
        return dry_run_operation(spec, stages=INSTALL_STAGES)
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

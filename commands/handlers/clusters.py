"""Handlers of the commands about whole clusters that exist: list, show, upgrade, delete.

Planning and creating a cluster, with their Terraform preview, are in `commands.handlers.cluster_create`.
"""

from __future__ import annotations

from commands.context import CommandContext, CommandResult, reply
from commands.definitions.clusters import (
    ClusterDeleteArgs,
    ClusterListArgs,
    ClusterShowArgs,
    ClusterUpgradeArgs,
)
from commands.handlers.submit import day2_job
from commands.registry import handles
from kobot.clusters import ClusterRecord
from kobot.job_records import JobKind
from kobot.messages import Field


@handles(ClusterListArgs)
async def list_clusters(ctx: CommandContext, args: ClusterListArgs) -> CommandResult:
    records = ctx.runtime.clusters.all()
    if not records:
        return reply(
            "Clusters", body="No clusters yet. `plan cluster NAME ...` shows what one would look like."
        )
    return reply("Clusters", fields=tuple(Field(label=r.name, value=cluster_line(r)) for r in records))


def cluster_line(record: ClusterRecord) -> str:
    """One cluster in a line: state, node counts, version, provider."""
    return (
        f"{record.state.value} · {record.count('master')} masters · {record.count('worker')} workers"
        f" · v{record.version or '?'} · {record.provider}"
    )


@handles(ClusterShowArgs)
async def show_cluster(ctx: CommandContext, args: ClusterShowArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    fields = [Field(label="State", value=cluster_line(record))]
    fields += [
        Field(label=n.name, value=f"{n.role} · {n.address} · {n.zone or '-'} · {n.state}")
        for n in record.nodes
    ]
    if record.history:
        last = record.history[-1]
        fields.append(Field(label="Last job", value=f"{last.kind} job {last.job_id} {last.outcome}"))
    return reply(f"Cluster {record.name}", fields=tuple(fields))


@handles(ClusterDeleteArgs)
async def delete_cluster(ctx: CommandContext, args: ClusterDeleteArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    lines = [
        f"destroy {record.count('master')} masters and {record.count('worker')} workers of {record.name}"
    ]
    return day2_job(ctx, args, kind=JobKind.CLUSTER_DELETE, lines=lines)


@handles(ClusterUpgradeArgs)
async def upgrade_cluster(ctx: CommandContext, args: ClusterUpgradeArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    lines = [
        f"kubernetes {record.version} → {args.version}",
        "etcd snapshot first; masters one by one; workers in batches",
    ]
    return day2_job(ctx, args, kind=JobKind.CLUSTER_UPGRADE, lines=lines)

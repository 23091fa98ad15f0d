"""Handlers of the commands about whole clusters that exist: list, show, upgrade, delete.

Planning and creating a cluster, with their Terraform preview, are in `commands.handlers.cluster_create`.
"""

from __future__ import annotations

import asyncio

from commands.context import CommandContext, CommandResult, reply
from commands.definitions.clusters import (
    ClusterDeleteArgs,
    ClusterListArgs,
    ClusterShowArgs,
    ClusterUpgradeArgs,
)
from commands.handlers.submit import day2_job
from commands.registry import handles
from kobot import defaults
from kobot.clusters import ClusterRecord
from kobot.job_records import JobKind
from kobot.messages import Field
from workers.day2_ops.upgrade_rules import UpgradeBatches, UpgradeRefusedError, check_upgrade, upgrade_batches
from workers.offline_repository import kubeadm_in_repository


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
    """Refused here, before anyone approves, when kubeadm would refuse it or the cluster's offline
    repository lacks the version; the plan then shows the path and the order nodes are drained in."""
    record = ctx.runtime.clusters.require(ctx.cluster())
    target = check_upgrade(cluster=record.name, current=record.version, target=args.version)
    lines = [f"path: kubernetes {record.version} → {target} (one minor at most, as kubeadm allows)"]
    if record.spec.offline_repo is not None:
        answer = await asyncio.to_thread(
            kubeadm_in_repository,
            repo=record.spec.offline_repo,
            os=record.spec.os,
            arch=record.spec.arch,
            version=str(target),
        )
        if not answer.found:
            raise UpgradeRefusedError(
                f"not upgrading {record.name} to {target}: {answer.line(str(target))}. "
                "Add the packages to the mirror, or pick a version it holds"
            )
        lines.append(answer.line(str(target)))
    lines += upgrade_plan_lines(upgrade_batches(record))
    return day2_job(ctx, args, kind=JobKind.CLUSTER_UPGRADE, lines=lines)


def upgrade_plan_lines(batches: UpgradeBatches) -> list[str]:
    """The order the job touches nodes in; long worker lists end with a count of the batches not shown."""
    lines = [
        "1. etcd snapshot, kept by kobot",
        "2. control plane, one master at a time (API servers before any kubelet): "
        + (", ".join(batches.masters) or "none"),
    ]
    shown = batches.workers[: defaults.UPGRADE_PLAN_BATCHES_SHOWN]
    lines.append(
        f"3. workers in {len(batches.workers)} drained batches (cordon, drain, upgrade, uncordon)"
        if batches.workers
        else "3. no workers"
    )
    lines += [f"   batch {i}: {', '.join(batch)}" for i, batch in enumerate(shown, start=1)]
    if len(batches.workers) > len(shown):
        lines.append(f"   … and {len(batches.workers) - len(shown)} more batches of the same size")
    return lines

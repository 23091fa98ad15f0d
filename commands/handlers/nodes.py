"""Handlers of the node and etcd commands: scale workers, add/remove/replace a node, back up and restore
etcd. Each answers with a day-2 job whose plan says what will change (`commands.handlers.submit`)."""

from __future__ import annotations

from commands.context import CommandContext, CommandResult, reply
from commands.definitions.nodes import (
    EtcdBackupArgs,
    EtcdRestoreArgs,
    NodeAddArgs,
    NodeRemoveArgs,
    NodeReplaceArgs,
    WorkersScaleArgs,
)
from commands.handlers.submit import day2_job
from commands.registry import handles
from kobot.clusters import ClusterRecord
from kobot.errors import KobotError
from kobot.job_records import JobKind
from kobot.messages import Tone


@handles(WorkersScaleArgs)
async def scale_workers(ctx: CommandContext, args: WorkersScaleArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    current = record.count("worker")
    target = args.target(current=current)
    if target < 0:
        raise KobotError(f"{record.name} has {current} workers; cannot remove {current - target}")
    if target == current:
        return reply(f"{record.name} already has {current} workers", tone=Tone.INFO)
    return day2_job(ctx, args, kind=JobKind.WORKERS_SCALE, lines=[f"workers {current} → {target}"])


@handles(NodeAddArgs)
async def add_node(ctx: CommandContext, args: NodeAddArgs) -> CommandResult:
    return day2_job(
        ctx,
        args,
        kind=JobKind.NODE_ADD,
        lines=[f"add a {args.role} node" + (f" at {args.host}" if args.host else "")],
    )


def _no_such_node(record: ClusterRecord, node: str) -> KobotError:
    return KobotError(f"{record.name} has no node {node} (nodes: {', '.join(n.name for n in record.nodes)})")


@handles(NodeRemoveArgs)
async def remove_node(ctx: CommandContext, args: NodeRemoveArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    if not any(n.name == args.node for n in record.nodes):
        raise _no_such_node(record, args.node)
    return day2_job(ctx, args, kind=JobKind.NODE_REMOVE, lines=[f"drain and remove {args.node}"])


@handles(NodeReplaceArgs)
async def replace_node(ctx: CommandContext, args: NodeReplaceArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    node = next((n for n in record.nodes if n.name == args.node), None)
    if node is None:
        raise _no_such_node(record, args.node)
    return day2_job(
        ctx, args, kind=JobKind.NODE_REPLACE, lines=[f"replace {node.role} {args.node} with a fresh node"]
    )


@handles(EtcdBackupArgs)
async def backup_etcd(ctx: CommandContext, args: EtcdBackupArgs) -> CommandResult:
    return day2_job(ctx, args, kind=JobKind.ETCD_BACKUP, lines=["etcd snapshot"])


@handles(EtcdRestoreArgs)
async def restore_etcd(ctx: CommandContext, args: EtcdRestoreArgs) -> CommandResult:
    return day2_job(
        ctx, args, kind=JobKind.ETCD_RESTORE, lines=[f"stop API servers, restore etcd from {args.backup}"]
    )

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
from kobot.clusters import ClusterRecord, NodeRecord, NodeState
from kobot.errors import KobotError
from kobot.job_records import JobKind
from kobot.messages import Tone
from workers.backup_targets import target_named


@handles(WorkersScaleArgs)
async def scale_workers(ctx: CommandContext, args: WorkersScaleArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    current = record.count("worker")
    target = args.target(current=current)
    if target < 0:
        raise KobotError(f"{record.name} has {current} workers; cannot remove {current - target}")
    if target == current:
        return reply(f"{record.name} already has {current} workers", tone=Tone.INFO)
    lines = [f"workers {current} → {target}"]
    if args.gpu_workers is not None:
        gpus = sum(1 for n in record.nodes if n.gpu and n.role == "worker")
        if not gpus <= args.gpu_workers <= gpus + max(target - current, 0):
            raise KobotError(
                f"{record.name} has {gpus} GPU workers and only new workers can add to them: "
                f"gpu_workers may be {gpus} to {gpus + max(target - current, 0)} here"
            )
        lines.append(f"GPU workers {gpus} → {args.gpu_workers} (driver, toolkit, nvidia runtime)")
    return day2_job(ctx, args, kind=JobKind.WORKERS_SCALE, lines=lines)


@handles(NodeAddArgs)
async def add_node(ctx: CommandContext, args: NodeAddArgs) -> CommandResult:
    lines = [
        f"add a {args.role} node"
        + (" with a GPU" if args.gpu else "")
        + (f" at {args.host}" if args.host else "")
    ]
    if args.role == "master":
        record = ctx.runtime.clusters.require(ctx.cluster())
        lines += master_add_lines(record, first_of_two=args.first_of_two)
    return day2_job(ctx, args, kind=JobKind.NODE_ADD, lines=lines)


SMALLEST_SPARE_MASTERS = 3
"""The fewest masters from which one can leave etcd and the rest still hold the majority (2 of 3)."""


def etcd_members(record: ClusterRecord) -> list[NodeRecord]:
    """Masters that joined (a planned or provisioned one never became an etcd member)."""
    return [n for n in record.nodes if n.role == "master" and n.state in (NodeState.READY, NodeState.CHECKED)]


def quorum(members: int) -> int:
    """etcd's majority of `members`: the votes every write and every membership change needs."""
    return members // 2 + 1


def master_add_lines(record: ClusterRecord, *, first_of_two: bool) -> list[str]:
    """Plan lines of a master add; refused when it would leave an even count outside the two-step."""
    now = record.count("master")
    after = now + 1
    if after % 2 == 0 and not first_of_two:
        raise KobotError(
            f"{record.name} has {now} masters; one more makes {after}, an even count: etcd's majority of "
            f"{after} is {quorum(after)}, so it tolerates no more failures than {now} did, with one more "
            f"member that can fail. Add two: `add master {record.name} host=A --first-of-two`, then "
            f"`add master {record.name} host=B`."
        )
    if after % 2 == 1 and first_of_two:
        raise KobotError(
            f"{record.name} has {now} masters; one more makes {after}, already odd: drop --first-of-two"
        )
    lines = [
        f"masters {now} → {after}: etcd member added (majority {quorum(after)} of {after}), "
        "load balancer and API endpoints updated by the join"
    ]
    if first_of_two:
        lines.append(f"first of two: {after} masters is even until the next `add master {record.name}` runs")
    return lines


def master_leave_refusal(record: ClusterRecord, node: NodeRecord, *, verb: str) -> str | None:
    """Why taking `node` out of etcd would drop below quorum, or None.

    The masters left must alone hold the majority of the members there are now: the node may be dead
    (why it is replaced or removed), and its member is removed before a replacement joins, so it
    cannot vote for its own removal and no new member votes yet."""
    members = etcd_members(record)
    if node not in members:
        return None
    survivors = len(members) - 1
    if survivors >= quorum(len(members)):
        return None
    if survivors == 0:
        why = f"{node.name} is the only etcd member of {record.name}; without it etcd has no data"
    else:
        why = (
            f"{record.name} has {len(members)} masters; etcd needs {quorum(len(members))} of them to "
            f"change its membership, and without {node.name} only {survivors} remain"
        )
    return (
        f"not going to {verb} {node.name}: {why}. Grow the control plane to {SMALLEST_SPARE_MASTERS} "
        f"masters first (`add master {record.name} host=...`), then {verb} it; if {node.name}'s etcd is "
        f"lost for good, `restore etcd {record.name} backup=<id>`."
    )


def _no_such_node(record: ClusterRecord, node: str) -> KobotError:
    return KobotError(f"{record.name} has no node {node} (nodes: {', '.join(n.name for n in record.nodes)})")


@handles(NodeRemoveArgs)
async def remove_node(ctx: CommandContext, args: NodeRemoveArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    node = next((n for n in record.nodes if n.name == args.node), None)
    if node is None:
        raise _no_such_node(record, args.node)
    lines = [f"drain and remove {args.node}"]
    if node.role == "master":
        refusal = master_leave_refusal(record, node, verb="remove")
        if refusal is not None:
            raise KobotError(refusal)
        lines += master_leave_lines(record, node)
    return day2_job(ctx, args, kind=JobKind.NODE_REMOVE, lines=lines)


def master_leave_lines(record: ClusterRecord, node: NodeRecord) -> list[str]:
    members = len(etcd_members(record))
    left = members - 1 if node in etcd_members(record) else members
    lines = [f"etcd members {members} → {left}: {node.name}'s member removed (majority {quorum(left)})"]
    if left % 2 == 0:
        lines.append(f"{left} masters tolerate {left - quorum(left)} failures, as {left - 1} would")
    return lines


@handles(NodeReplaceArgs)
async def replace_node(ctx: CommandContext, args: NodeReplaceArgs) -> CommandResult:
    record = ctx.runtime.clusters.require(ctx.cluster())
    node = next((n for n in record.nodes if n.name == args.node), None)
    if node is None:
        raise _no_such_node(record, args.node)
    fresh = f"the machine at {args.host}" if args.host else "a fresh node"
    lines = [f"replace {node.role} {args.node} with {fresh}"]
    if node.role == "master":
        refusal = master_leave_refusal(record, node, verb="replace")
        if refusal is not None:
            raise KobotError(refusal)
        members = len(etcd_members(record))
        lines.append(
            f"etcd keeps its majority ({quorum(members)} of {members}) from the other masters throughout"
        )
        lines.append(f"{args.node}'s etcd member is removed first; its successor joins after")
    return day2_job(ctx, args, kind=JobKind.NODE_REPLACE, lines=lines)


@handles(EtcdBackupArgs)
async def backup_etcd(ctx: CommandContext, args: EtcdBackupArgs) -> CommandResult:
    # a target the settings lack is answered now, naming the configured ones, not by a failed job
    target = target_named(ctx.runtime.settings, args.target)
    lines = [f"etcd snapshot, kept at {target.describe()}"]
    return day2_job(ctx, args, kind=JobKind.ETCD_BACKUP, lines=lines)


@handles(EtcdRestoreArgs)
async def restore_etcd(ctx: CommandContext, args: EtcdRestoreArgs) -> CommandResult:
    return day2_job(
        ctx, args, kind=JobKind.ETCD_RESTORE, lines=[f"stop API servers, restore etcd from {args.backup}"]
    )

"""Steps that the create and the Day 2 operations share: render the inventory, wait for SSH."""

from __future__ import annotations

from kobot import automation_values, defaults
from kobot.clusters import ClusterStore, NodeRecord
from kobot.job_records import JobEventType
from workers.cluster_inputs import render_cluster_inventory
from workers.context import StepContext
from workers.ssh import wait_for_ssh


def render_inventory_step(ctx: StepContext) -> None:
    render_cluster_inventory(ctx)


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

"""The machines of IaaS clusters: Terraform makes them match the record after nodes join or leave."""

from __future__ import annotations

from kobot.clusters import ClusterRecord, NodeState
from workers.cluster_inputs import record_terraform_variables, refusing_unsafe_values
from workers.context import StepContext
from workers.day2_ops.record_edits import cluster_store
from workers.terraform import workspace_for


def creates_machines(record: ClusterRecord) -> bool:
    # an imported cluster's machines are not kobot's, whatever its provider says
    return record.imported is None and record.provider not in ("manual", "")


def apply_machines(ctx: StepContext, record: ClusterRecord) -> None:

    workspace = workspace_for(settings=ctx.settings, cluster=ctx.cluster, provider=record.provider)
    with refusing_unsafe_values(ctx.cluster, task="terraform variables"):
        variables = record_terraform_variables(ctx.settings, record)
    outputs = workspace.apply(
        variables=variables,
        job_id=ctx.job_id,
        on_event=ctx.on_runner_event,
        should_cancel=ctx.should_cancel,
    )
    store = cluster_store(ctx)
    current = store.require(ctx.cluster)
    for node in current.nodes:
        out = outputs.get(node.name)
        if out is not None and node.state is NodeState.PLANNED:
            node.address, node.state = out.ip, NodeState.PROVISIONED
    store.save(current)

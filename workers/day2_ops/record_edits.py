"""Reading and editing the cluster record from a Day 2 step: its nodes, their states and the counts."""

from __future__ import annotations

from collections.abc import Sequence

from kobot.clusters import ClusterRecord, ClusterStore, NodeRecord, NodeState
from kobot.errors import StepFailedError
from workers.context import StepContext


def cluster_store(ctx: StepContext) -> ClusterStore:
    return ClusterStore(ctx.redis)


def node_index(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def find_node(record: ClusterRecord, name: str) -> NodeRecord:
    for node in record.nodes:
        if node.name == name:
            return node
    raise StepFailedError(f"{record.name} has no node {name}")


def recount(record: ClusterRecord) -> None:
    record.spec = record.spec.model_copy(
        update={
            "workers": record.count("worker"),
            "masters": record.count("master"),
            "gpu_workers": sum(1 for n in record.nodes if n.gpu and n.role == "worker"),
        }
    )


def mark_nodes(ctx: StepContext, names: Sequence[str], node_state: NodeState) -> None:
    store = cluster_store(ctx)
    record = store.require(ctx.cluster)
    for node in record.nodes:
        if node.name in names:
            node.state = node_state
    store.save(record)

"""What steps hand to Terraform for a cluster's record: sizes come from one source."""

from __future__ import annotations

from kobot.cluster_spec import DEFAULT_NODE_SIZES, NodeRole
from kobot.clusters import ClusterRecord, NodeRecord
from workers.cluster_inputs import terraform_nodes


def test_a_record_without_node_sizes_gets_the_plans_default_size_for_each_role() -> None:
    record = ClusterRecord(
        name="dev-x",
        provider="vsphere",
        spec={"version": "1.31.4"},
        nodes=[
            NodeRecord(name="dev-x-master-1", role="master", address="192.0.2.10"),
            NodeRecord(name="dev-x-worker-1", role="worker", address="192.0.2.11"),
        ],
    )
    nodes = terraform_nodes(record)
    for name, role in (("dev-x-master-1", NodeRole.MASTER), ("dev-x-worker-1", NodeRole.WORKER)):
        size = DEFAULT_NODE_SIZES[role]
        assert (nodes[name]["cpu"], nodes[name]["memory"], nodes[name]["disk"]) == (
            size.cpu,
            size.memory_mb,
            size.disk_gb,
        )


def test_sizes_in_the_record_win_over_the_defaults() -> None:
    record = ClusterRecord(
        name="dev-x",
        spec={"node_sizes": {"worker": {"cpu": 2, "memory_mb": 4096, "disk_gb": 40}}},
        nodes=[NodeRecord(name="dev-x-worker-1", role="worker", address="192.0.2.11")],
    )
    node = terraform_nodes(record)["dev-x-worker-1"]
    assert (node["cpu"], node["memory"], node["disk"]) == (2, 4096, 40)

"""What steps hand to Ansible and Terraform for a cluster's record, derived from its spec."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kobot.cluster_spec import DEFAULT_NODE_SIZES, NodeRole
from kobot.clusters import ClusterRecord, NodeRecord
from workers.cluster_inputs import cluster_vars, terraform_nodes


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


def test_the_offline_repository_of_the_spec_reaches_the_inventory_variables() -> None:
    record = ClusterRecord(
        name="dev-x",
        spec={
            "version": "1.31.4",
            "offline_repo": {
                "package_repo_url": "http://192.0.2.5/repo/",
                "image_registry": "192.0.2.5:5000",
                "files_url": "http://192.0.2.5/files",
            },
        },
    )
    variables = cluster_vars(record)
    assert variables["offline_repo_url"] == "http://192.0.2.5/repo"
    assert variables["offline_registry"] == "192.0.2.5:5000"
    assert variables["offline_files_url"] == "http://192.0.2.5/files"


def test_a_cluster_without_an_offline_repository_keeps_the_role_defaults() -> None:
    variables = cluster_vars(ClusterRecord(name="dev-x", spec={"version": "1.31.4"}))
    assert not {"offline_repo_url", "offline_registry", "offline_files_url"} & set(variables)


def test_an_edited_offline_repository_in_the_record_is_refused_when_it_loads() -> None:
    with pytest.raises(ValidationError, match="not an http"):
        ClusterRecord(
            name="dev-x",
            spec={
                "offline_repo": {
                    "package_repo_url": "file:///etc",
                    "image_registry": "192.0.2.5:5000",
                    "files_url": "http://192.0.2.5/files",
                }
            },
        )

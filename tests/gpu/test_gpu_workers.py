"""`gpu_workers=N` from chat reaches the inventory: create, scale and add node take it, the plan marks
the GPU workers, the cluster record keeps which nodes have one, and the inventory says `gpu: true`
for exactly those, which the NVIDIA driver role, containerd's nvidia runtime and the node label key on."""

from __future__ import annotations

import pytest
from redis import Redis

from commands.parser import parse
from kobot.cluster_spec import ClusterSpec
from kobot.clusters import ClusterRecord, NodeRecord
from kobot.errors import CommandError
from workers.day2_ops.record_edits import recount
from workers.inventory import render_inventory
from workers.plan import plan_cluster, plan_from_params, plan_scale

HOSTS = "10.1.0.1,10.1.0.2,10.1.0.3,10.1.0.4"


def gpu_hosts(inventory: dict[str, object]) -> set[str]:
    hosts = inventory["all"]["hosts"]  # type: ignore[index]
    return {name for name, host in hosts.items() if host.get("gpu")}


def test_create_from_chat_takes_gpu_workers_and_the_inventory_marks_exactly_those(redis: Redis) -> None:
    parsed = parse(f"create cluster dev masters=1 workers=3 gpu_workers=2 hosts={HOSTS}")
    assert parsed.args["gpu_workers"] == 2
    plan = plan_from_params(cluster="dev", params=parsed.args, redis=redis, reserve=False)
    assert [(w.name, w.gpu) for w in plan.workers] == [
        ("dev-worker-1", True),
        ("dev-worker-2", True),
        ("dev-worker-3", False),
    ]
    assert any("GPU workers: dev-worker-1" in line for line in plan.summary_lines())
    inventory = render_inventory(nodes=plan, ssh_user="root", ssh_key_path=None)
    assert gpu_hosts(inventory) == {"dev-worker-1", "dev-worker-2"}


def test_the_record_keeps_gpu_nodes_and_its_inventory_says_so() -> None:
    nodes = [
        NodeRecord(name="dev-master-1", role="master", address="10.1.0.1"),
        NodeRecord(name="dev-worker-1", role="worker", address="10.1.0.2", gpu=True),
        NodeRecord(name="dev-worker-2", role="worker", address="10.1.0.3"),
    ]
    record = ClusterRecord(name="dev", nodes=nodes)
    again = ClusterRecord.model_validate_json(record.model_dump_json())
    assert [n.gpu for n in again.nodes] == [False, True, False]
    recount(again)
    assert again.spec.gpu_workers == 1 and again.spec.workers == 2
    inventory = render_inventory(
        nodes=[(n.name, n.role, n.address) for n in again.nodes],
        ssh_user="root",
        ssh_key_path=None,
        gpu_nodes={n.name for n in again.nodes if n.gpu},
    )
    assert gpu_hosts(inventory) == {"dev-worker-1"}


@pytest.mark.parametrize(
    "text", ["create cluster dev masters=1 workers=1 gpu_workers=2 hosts=10.1.0.1,10.1.0.2"]
)
def test_more_gpu_workers_than_workers_is_refused_naming_both(text: str) -> None:
    with pytest.raises(CommandError, match="gpu_workers=2 but only workers=1"):
        parse(text)


def test_scale_adds_gpu_workers_only_among_the_new_ones() -> None:
    spec = ClusterSpec(
        name="dev", masters=1, workers=2, gpu_workers=1, hosts=("10.1.0.1", "10.1.0.2", "10.1.0.3")
    )
    plan = plan_cluster(spec=spec)
    assert parse("scale workers 4 gpu_workers=2 on dev").args["gpu_workers"] == 2
    grown = plan_scale(plan=plan, workers=4, hosts=("10.1.0.4", "10.1.0.5"), gpu_workers=2)
    assert [(n.name, n.gpu) for n in grown.add] == [("dev-worker-3", True), ("dev-worker-4", False)]
    assert grown.after.spec.gpu_workers == 2
    unchanged = plan_scale(plan=plan, workers=3, hosts=("10.1.0.4",))
    assert [n.gpu for n in unchanged.add] == [False] and unchanged.after.spec.gpu_workers == 1
    with pytest.raises(ValueError, match="only new workers"):
        plan_scale(plan=plan, workers=3, hosts=("10.1.0.4",), gpu_workers=3)
    with pytest.raises(ValueError, match="has 1 GPU workers"):
        plan_scale(plan=plan, workers=3, hosts=("10.1.0.4",), gpu_workers=0)
    shrunk = plan_scale(plan=plan, workers=1)
    assert shrunk.after.spec.gpu_workers == 1  # dev-worker-2 (no GPU) leaves first


def test_add_node_takes_gpu_for_a_worker_only() -> None:
    assert parse("add node dev host=10.1.0.9 --gpu").args["gpu"] is True
    assert parse("add node dev host=10.1.0.9").args["gpu"] is False
    with pytest.raises(CommandError, match="--gpu is for workers"):
        parse("add master dev host=10.1.0.9 --gpu")

"""`upgrade`, `add master`, `remove node` and `replace node` refuse what would break a cluster before
anyone approves, and show what they will do: through the real dispatcher, policy and store (real Valkey),
with the offline package mirror as a loopback peer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot.cluster_spec import ClusterShape, OfflineRepository, OsFamily
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord, NodeState
from kobot.conversations import InboundMessage
from kobot.messages import MessageKind
from tests.peers.package_mirror import PackageMirrorPeer
from tests.support.dispatching import OPERATOR, OPERATOR_ON_PROD, ROOM, dispatching_runtime, reply_to


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(
        redis_url=redis_url, data_dir=data_dir, policy=OPERATOR_ON_PROD, policy_dir=tmp_path
    )
    yield rt
    rt.close()


@pytest.fixture
def mirror() -> Iterator[PackageMirrorPeer]:
    with PackageMirrorPeer() as peer:
        yield peer


def cluster(
    runtime: Runtime,
    *,
    masters: int = 3,
    workers: int = 3,
    version: str = "1.30.5",
    offline: str | None = None,
    sick_master: bool = False,
) -> ClusterRecord:
    nodes = [
        NodeRecord(name=f"master-{i}", role="master", address=f"m{i}.prod.test", state=NodeState.READY)
        for i in range(1, masters + 1)
    ]
    if sick_master:
        nodes.append(
            NodeRecord(name="master-9", role="master", address="m9.prod.test", state=NodeState.PLANNED)
        )
    nodes += [
        NodeRecord(name=f"worker-{i}", role="worker", address=f"w{i}.prod.test", state=NodeState.READY)
        for i in range(1, workers + 1)
    ]
    repo = (
        OfflineRepository(
            package_repo_url=offline, image_registry="registry.prod.test:5000", files_url=offline
        )
        if offline
        else None
    )
    record = ClusterRecord(
        name="prod",
        version=version,
        state=ClusterState.RUNNING,
        nodes=nodes,
        spec=ClusterShape(
            version=version, masters=masters, workers=workers, offline_repo=repo, os=OsFamily.ROCKY9
        ),
    )
    runtime.clusters.save(record)
    return record


def nothing_queued(runtime: Runtime) -> bool:
    return runtime.jobs.records.active_ids() == [] and len(runtime.queue) == 0


# --- upgrade ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("upgrade prod 1.30.2", "kubeadm does not downgrade"),
        ("upgrade prod 1.29.15", "kubeadm does not downgrade"),
        ("upgrade prod 1.30.5", "prod already runs 1.30.5; nothing to upgrade"),
        ("升级 prod 1.32.1", "1.30.5 → 1.31.12 → 1.32.1"),
    ],
)
async def test_upgrade_refuses_what_kubeadm_refuses_before_any_approval(
    runtime: Runtime, text: str, expected: str
) -> None:
    cluster(runtime)
    answer = await reply_to(runtime, text)
    assert answer.kind is not MessageKind.APPROVAL
    assert expected in answer.to_text()
    assert nothing_queued(runtime)


async def test_a_skipped_minor_names_the_command_to_run_first(runtime: Runtime) -> None:
    cluster(runtime)
    assert "Run `upgrade prod 1.31.12` first" in (await reply_to(runtime, "upgrade prod to 1.32.1")).to_text()


async def test_the_upgrade_approval_shows_the_path_and_every_drain_batch(runtime: Runtime) -> None:
    cluster(runtime, workers=7)
    card = await reply_to(runtime, "upgrade prod 1.31.2")
    assert card.kind is MessageKind.APPROVAL, card.to_text()
    text = card.to_text()
    assert "path: kubernetes 1.30.5 → 1.31.2" in text
    assert "one master at a time (API servers before any kubelet): master-1, master-2, master-3" in text
    assert "workers in 4 drained batches" in text
    for batch in ("batch 1: worker-1, worker-2", "batch 3: worker-5, worker-6", "batch 4: worker-7"):
        assert batch in text
    assert nothing_queued(runtime), "an upgrade waits for approval"


async def test_upgrade_asks_the_offline_mirror_and_refuses_a_version_it_lacks_peer(
    runtime: Runtime, mirror: PackageMirrorPeer
) -> None:
    mirror.serve_rpm([("kubeadm", "1.31.2"), ("kubelet", "1.31.4")])
    cluster(runtime, offline=mirror.base_url)

    refused = (await reply_to(runtime, "upgrade prod 1.31.4")).to_text()
    assert "not upgrading prod to 1.31.4" in refused and "the index does not list it" in refused
    assert nothing_queued(runtime)

    card = await reply_to(runtime, "upgrade prod 1.31.2")
    assert card.kind is MessageKind.APPROVAL
    assert "offline repository holds kubeadm 1.31.2" in card.to_text()
    assert "/repo/repodata/repomd.xml" in mirror.requests.all()


async def test_upgrade_refuses_when_the_offline_mirror_does_not_answer_peer(
    runtime: Runtime, mirror: PackageMirrorPeer
) -> None:
    cluster(runtime, offline=mirror.base_url)
    mirror.fail_next(status=502)
    answer = (await reply_to(runtime, "upgrade prod 1.31.2")).to_text()
    assert "not confirmed" in answer and "answered HTTP 502" in answer
    assert nothing_queued(runtime)


# --- masters -----------------------------------------------------------------------------------------
async def test_adding_a_worker_queues_at_once_but_adding_a_master_needs_approval(runtime: Runtime) -> None:
    cluster(runtime, masters=1)
    await Dispatcher(runtime=runtime).on_message(
        InboundMessage(identity=OPERATOR, conversation=ROOM, text="add node prod host=w9.prod.test")
    )
    assert len(runtime.queue) == 1, "a worker is a change: queued without approval"

    card = await reply_to(runtime, "add master prod host=m2.prod.test --first-of-two")
    assert card.kind is MessageKind.APPROVAL, card.to_text()
    assert "masters 1 → 2" in card.to_text() and "first of two" in card.to_text()
    assert len(runtime.queue) == 1, "the master waits for approval"


async def test_a_master_that_would_leave_an_even_count_is_refused_with_the_two_step(runtime: Runtime) -> None:
    cluster(runtime, masters=3)
    answer = (await reply_to(runtime, "添加节点 prod 角色=master 主机=m4.prod.test")).to_text()
    assert "one more makes 4, an even count" in answer
    assert "`add master prod host=A --first-of-two`, then `add master prod host=B`" in answer
    assert nothing_queued(runtime)


async def test_the_second_of_two_needs_no_flag_and_a_flag_on_an_odd_result_is_refused(
    runtime: Runtime,
) -> None:
    cluster(runtime, masters=4)
    assert (
        "already odd: drop --first-of-two"
        in (await reply_to(runtime, "add master prod host=m5.prod.test --first-of-two")).to_text()
    )
    card = await reply_to(runtime, "add master prod host=m5.prod.test")
    assert card.kind is MessageKind.APPROVAL and "masters 4 → 5" in card.to_text()


async def test_first_of_two_is_for_masters_only(runtime: Runtime) -> None:
    cluster(runtime)
    assert (
        "--first-of-two is for role=master"
        in (await reply_to(runtime, "add node prod --first-of-two")).to_text()
    )


@pytest.mark.parametrize("verb", ["remove", "replace"])
@pytest.mark.parametrize(("masters", "why"), [(1, "only etcd member"), (2, "only 1 remain")])
async def test_taking_a_master_out_below_quorum_is_refused_with_the_reason(
    runtime: Runtime, verb: str, masters: int, why: str
) -> None:
    cluster(runtime, masters=masters)
    answer = (await reply_to(runtime, f"{verb} node master-1 on prod")).to_text()
    assert f"not going to {verb} master-1" in answer and why in answer
    assert "Grow the control plane to 3 masters first" in answer
    assert nothing_queued(runtime)


@pytest.mark.parametrize("verb", ["remove", "replace"])
async def test_taking_one_of_three_masters_out_keeps_quorum_and_goes_to_approval(
    runtime: Runtime, verb: str
) -> None:
    cluster(runtime, masters=3)
    card = await reply_to(runtime, f"{verb} node master-2 on prod")
    assert card.kind is MessageKind.APPROVAL, card.to_text()
    expected = "etcd members 3 → 2" if verb == "remove" else "majority (2 of 3) from the other masters"
    assert expected in card.to_text()


async def test_a_master_that_never_joined_etcd_does_not_count_for_quorum(runtime: Runtime) -> None:
    cluster(runtime, masters=1, sick_master=True)
    assert (await reply_to(runtime, "remove node master-9 on prod")).kind is MessageKind.APPROVAL
    assert "only etcd member" in (await reply_to(runtime, "remove node master-1 on prod")).to_text()

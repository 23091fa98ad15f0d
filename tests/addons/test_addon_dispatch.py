"""Addon commands through the real dispatcher, policy and store (real Valkey): what an addon cannot do
on this cluster, or lacks to do it, is answered at once and nothing is queued; a credential is never
asked for, shown or put into the job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot.cluster_spec import ClusterShape
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord, NodeState
from kobot.conversations import InboundMessage
from kobot.messages import OutgoingMessage
from kobot.settings_addons import AddonSettings
from tests.support.dispatching import OPERATOR, OPERATOR_ON_PROD, ROOM, dispatching_runtime, reply_to

BIGIP_PASSWORD = "bigip-pa55-never-in-chat"
F5 = "install f5 bigip=https://bigip1.example.test partition=k8s on prod"


def runtime_with(redis_url: str, data_dir: Path, tmp_path: Path, *, gpu: bool, credentials: bool) -> Runtime:
    given = {"bigip-username": SecretStr("cis"), "bigip-password": SecretStr(BIGIP_PASSWORD)}
    addons = AddonSettings(
        chart_repository="http://127.0.0.1:9/charts", credentials=given if credentials else {}
    )
    runtime = dispatching_runtime(
        redis_url=redis_url, data_dir=data_dir, policy=OPERATOR_ON_PROD, policy_dir=tmp_path, addons=addons
    )
    nodes = [
        NodeRecord(name="prod-master-1", role="master", address="10.1.0.1", state=NodeState.READY),
        NodeRecord(name="prod-worker-1", role="worker", address="10.1.0.2", state=NodeState.READY, gpu=gpu),
    ]
    runtime.clusters.save(
        ClusterRecord(
            name="prod",
            version="1.30.5",
            state=ClusterState.RUNNING,
            nodes=nodes,
            spec=ClusterShape(version="1.30.5", masters=1, workers=1, gpu_workers=int(gpu)),
        )
    )
    return runtime


@pytest.fixture
def plain(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    runtime = runtime_with(redis_url, data_dir, tmp_path, gpu=False, credentials=False)
    yield runtime
    runtime.close()


@pytest.fixture
def equipped(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    runtime = runtime_with(redis_url, data_dir, tmp_path, gpu=True, credentials=True)
    yield runtime
    runtime.close()


async def say(runtime: Runtime, text: str) -> OutgoingMessage:
    return await reply_to(runtime, text)


def queued(runtime: Runtime) -> int:
    return len(runtime.queue)


async def test_gpu_on_a_cluster_without_gpu_workers_is_refused_saying_how_to_add_them(plain: Runtime) -> None:
    answer = (await say(plain, "install gpu on prod")).to_text()
    assert "prod has no GPU workers" in answer and "scale workers N gpu_workers=M on prod" in answer
    assert queued(plain) == 0


async def test_f5_without_its_login_is_refused_naming_the_setting_never_asking_in_chat(
    plain: Runtime,
) -> None:
    answer = (await say(plain, F5)).to_text()
    assert "needs the credential bigip-username" in answer and "KOBOT_ADDONS__CREDENTIALS" in answer
    assert queued(plain) == 0


async def test_with_gpu_workers_and_the_login_set_the_jobs_queue_and_carry_no_credential(
    equipped: Runtime,
) -> None:
    dispatcher = Dispatcher(runtime=equipped)
    for text in ("install gpu on prod", F5):
        await dispatcher.on_message(InboundMessage(identity=OPERATOR, conversation=ROOM, text=text))
    records = equipped.jobs.records.recent(limit=5)
    assert sorted(r.spec.params["addon"] for r in records) == ["f5", "gpu"]
    assert {r.spec.kind for r in records} == {"addon.install"}  # one runs, one waits for the cluster
    [f5] = [r for r in records if r.spec.params["addon"] == "f5"]
    assert f5.spec.params["values"] == {"bigip": "https://bigip1.example.test", "partition": "k8s"}
    assert all(BIGIP_PASSWORD not in r.model_dump_json() for r in records)

"""A channel bound to a cluster from chat (`use prod here`), and the only cluster a person can see, fill in
a command's missing cluster; permissions still follow that cluster (real policy, real stores)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot.clusters import ClusterRecord, ClusterState
from kobot.conversations import Conversation, Identity, InboundMessage
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import dispatching_runtime

ROOM = Conversation(platform="slack", conversation_id="C0OPS")
OPERATOR = Identity(platform="slack", user_id="U1", display_name="Olga")
DEV_ONLY = Identity(platform="slack", user_id="U2", display_name="Dev")
VIEWER = Identity(platform="slack", user_id="U3", display_name="Vic")

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U1"]
    clusters: ["*"]
  - role: operator
    subjects: ["slack:U2"]
    clusters: ["dev"]
  - role: viewer
    subjects: ["slack:U3"]
    clusters: ["*"]
"""


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    for name in ("dev", "prod"):
        rt.clusters.save(ClusterRecord(name=name, state=ClusterState.RUNNING))
    yield rt
    rt.close()


def replies(rt: Runtime) -> list[str]:
    adapter = rt.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    return [f"{d.message.title}: {d.message.body}" for d in adapter.deliveries]


async def say(rt: Runtime, who: Identity, text: str) -> str:
    await Dispatcher(runtime=rt).on_message(InboundMessage(identity=who, conversation=ROOM, text=text))
    return replies(rt)[-1]


def queued(rt: Runtime) -> list[tuple[str, str]]:
    return [
        (job.spec.kind, job.spec.cluster)
        for job in (rt.jobs.records.require(i) for i in rt.jobs.records.active_ids())
    ]


async def test_use_here_binds_the_channel_and_unbind_removes_it(runtime: Runtime) -> None:
    assert "Which cluster?" in await say(runtime, OPERATOR, "scale workers 3")

    assert "This channel now uses prod" in await say(runtime, OPERATOR, "use prod here")
    await say(runtime, OPERATOR, "scale workers 3")
    assert queued(runtime) == [("workers.scale", "prod")]
    assert "now uses dev" in await say(runtime, OPERATOR, "绑定 dev")

    assert "no longer uses dev" in await say(runtime, OPERATOR, "unbind")
    assert "Which cluster?" in await say(runtime, OPERATOR, "scale workers 3")
    assert "no binding made in chat" in await say(runtime, OPERATOR, "解绑")


async def test_binding_needs_the_right_to_change_that_cluster_and_the_cluster_must_exist(
    runtime: Runtime,
) -> None:
    assert (await say(runtime, VIEWER, "use prod here")).startswith("Not allowed")
    assert (await say(runtime, DEV_ONLY, "bind this channel to prod")).startswith("Not allowed")
    assert "there is no cluster staging" in await say(runtime, OPERATOR, "use staging here")
    assert "Which cluster?" in await say(runtime, VIEWER, "show")


async def test_a_binding_grants_nothing_and_only_who_may_change_it_unbinds_it(runtime: Runtime) -> None:
    await say(runtime, OPERATOR, "use prod here")

    assert (await say(runtime, VIEWER, "scale workers 3")).startswith("Not allowed")
    assert "needs the right to change prod" in await say(runtime, DEV_ONLY, "unbind")
    assert "This channel now uses prod" not in await say(runtime, OPERATOR, "show")
    assert queued(runtime) == []


async def test_the_only_visible_cluster_is_used_and_the_person_is_told(runtime: Runtime) -> None:
    await say(runtime, DEV_ONLY, "scale workers 3")

    assert any(reply.startswith("Using dev: the only cluster you can see") for reply in replies(runtime))
    assert queued(runtime) == [("workers.scale", "dev")]

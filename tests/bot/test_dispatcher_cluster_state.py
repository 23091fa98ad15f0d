"""A Day 2 change of a cluster that is not there to change is refused at once, with what to do, instead of
being queued to fail at its first step (real policy, real stores)."""

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

ROOM = Conversation(platform="slack", conversation_id="C0DEV")
OPERATOR = Identity(platform="slack", user_id="U9", display_name="Dana")

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U9"]
    clusters: ["dev"]
"""


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    yield rt
    rt.close()


def last(rt: Runtime) -> str:
    adapter = rt.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    message = adapter.deliveries[-1].message
    return f"{message.title}: {message.body}"


def create_job(runtime: Runtime) -> str:
    job = runtime.jobs.submit(
        runtime.jobs.new_spec(
            kind="test.steps",
            cluster="dev",
            params={"marker": "/nonexistent"},
            requested_by=OPERATOR,
            reply_to=ROOM,
        )
    )
    return job.job_id


async def say(runtime: Runtime, text: str) -> str:
    await Dispatcher(runtime=runtime).on_message(
        InboundMessage(identity=OPERATOR, conversation=ROOM, text=text)
    )
    return last(runtime)


async def test_scaling_a_cluster_whose_create_was_cancelled_is_refused_with_what_to_do(
    runtime: Runtime,
) -> None:
    job_id = create_job(runtime)
    runtime.jobs.cancel(job_id)
    runtime.clusters.save(ClusterRecord(name="dev", state=ClusterState.CREATING, creating_job=job_id))
    before = runtime.jobs.records.active_ids()

    answer = await say(runtime, "扩容 dev 工作节点 5")

    assert f"its create (job {job_id}) cancelled" in answer
    assert f"retry job {job_id}" in answer and "delete cluster dev" in answer
    assert runtime.jobs.records.active_ids() == before, "nothing is queued"


async def test_a_change_queued_behind_a_create_that_still_runs_is_accepted(runtime: Runtime) -> None:
    job_id = create_job(runtime)
    runtime.clusters.save(ClusterRecord(name="dev", state=ClusterState.CREATING, creating_job=job_id))

    await Dispatcher(runtime=runtime).on_message(
        InboundMessage(identity=OPERATOR, conversation=ROOM, text="scale workers 5 on dev")
    )

    queued = [runtime.jobs.records.require(i) for i in runtime.jobs.records.active_ids() if i != job_id]
    assert [(job.spec.kind, job.spec.cluster) for job in queued] == [("workers.scale", "dev")]


@pytest.mark.parametrize(
    ("state", "expected"),
    [(ClusterState.FAILED, "dev is failed"), (ClusterState.DELETING, "dev is being deleted")],
)
async def test_a_failed_or_deleting_cluster_refuses_changes_but_not_delete(
    runtime: Runtime, state: ClusterState, expected: str
) -> None:
    runtime.clusters.save(ClusterRecord(name="dev", state=state))

    assert expected in await say(runtime, "scale workers 5 on dev")
    assert expected not in await say(runtime, "delete cluster dev")

"""Permissions follow the cluster a command touches, including a job's cluster (real policy, real stores)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot.conversations import Conversation, Identity, InboundMessage
from kobot.job_records import JobState
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import dispatching_runtime

ROOM = Conversation(platform="slack", conversation_id="C0DEV")
DEV_OPERATOR = Identity(platform="slack", user_id="U9", display_name="Dana")

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U9"]
    clusters: ["dev-*"]
approvals:
  - commands: ["notify"]
    approvals: 1
    approver_role: admin
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


async def test_a_job_is_guarded_by_its_clusters_permissions(runtime: Runtime) -> None:
    prod_job = runtime.jobs.submit(
        runtime.jobs.new_spec(
            kind="test.steps",
            cluster="prod-eu",
            params={"marker": "/nonexistent"},
            requested_by=Identity(platform="terminal", user_id="root"),
            reply_to=Conversation(platform="terminal", conversation_id="local"),
        )
    )
    dispatcher = Dispatcher(runtime=runtime)
    for text in (
        f"cancel job {prod_job.job_id}",
        f"job status {prod_job.job_id}",
        f"retry job {prod_job.job_id}",
    ):
        await dispatcher.on_message(InboundMessage(identity=DEV_OPERATOR, conversation=ROOM, text=text))
        assert last(runtime).startswith("Not allowed"), (text, last(runtime))
    assert runtime.jobs.records.require(prod_job.job_id).state is JobState.QUEUED

    dev_job = runtime.jobs.submit(
        runtime.jobs.new_spec(
            kind="test.steps",
            cluster="dev-1",
            params={"marker": "/nonexistent"},
            requested_by=DEV_OPERATOR,
            reply_to=ROOM,
        )
    )
    await dispatcher.on_message(
        InboundMessage(identity=DEV_OPERATOR, conversation=ROOM, text=f"cancel job {dev_job.job_id}")
    )
    assert runtime.jobs.records.require(dev_job.job_id).state is JobState.CANCELLED


async def test_an_approval_rule_on_a_command_that_acts_at_once_refuses_it(runtime: Runtime) -> None:
    await Dispatcher(runtime=runtime).on_message(
        InboundMessage(identity=DEV_OPERATOR, conversation=ROOM, text="notify dev-1 job here")
    )
    assert last(runtime).startswith("Not allowed") and "approval" in last(runtime)

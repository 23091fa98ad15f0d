"""The Cancel button on a job's progress message, clicked through the dispatcher (real policy, real store).

A click counts only with kobot's signature for exactly that job, from the job's conversation, and then
only as far as typing `cancel job N` would: the same policy decides and the same audit entries follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import job_buttons
from bot.approvals import signing
from bot.approvals.models import ApprovalDecision
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from commands.job_card import CANCEL_ACTION, render_job
from kobot.conversations import ButtonClick, Conversation, Identity
from kobot.job_records import JobRecord, JobState
from tests.bot.recording_adapter import RecordingAdapter
from tests.support.dispatching import dispatching_runtime

ROOM = Conversation(platform="slack", conversation_id="C0DEV")
OTHER_ROOM = Conversation(platform="slack", conversation_id="C0ELSEWHERE")
OPERATOR = Identity(platform="slack", user_id="U9", display_name="Dana")
PROD_ONLY = Identity(platform="slack", user_id="U7", display_name="Pat")
STRANGER = Identity(platform="slack", user_id="U5", display_name="Sam")

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U9"]
    clusters: ["dev-*"]
  - role: operator
    subjects: ["slack:U7"]
    clusters: ["prod-*"]
"""


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    yield rt
    rt.close()


def submit(rt: Runtime, *, cluster: str = "dev-1") -> JobRecord:
    return rt.jobs.submit(
        rt.jobs.new_spec(
            kind="test.steps",
            cluster=cluster,
            params={"marker": "/nonexistent"},
            requested_by=OPERATOR,
            reply_to=ROOM,
        )
    )


def button_value(rt: Runtime, record: JobRecord) -> str:
    """The value of the Cancel button the notifier puts on this job's message."""
    return job_buttons.cancel_value(key=job_buttons.derive_key(rt.secret), record=record)


def click(value: str, *, who: Identity = OPERATOR, where: Conversation = ROOM) -> ButtonClick:
    return ButtonClick(identity=who, conversation=where, action_id=CANCEL_ACTION, value=value)


def last(rt: Runtime) -> str:
    adapter = rt.adapters["slack"]
    assert isinstance(adapter, RecordingAdapter)
    message = adapter.deliveries[-1].message
    return f"{message.title}: {message.body}"


def state(rt: Runtime, record: JobRecord) -> JobState:
    return rt.jobs.records.require(record.job_id).state


async def test_a_click_by_someone_allowed_cancels_and_is_audited(runtime: Runtime) -> None:
    job = submit(runtime)
    await Dispatcher(runtime=runtime).on_click(click(button_value(runtime, job)))
    assert state(runtime, job) is JobState.CANCELLED
    assert last(runtime).startswith(f"Cancelling job {job.job_id}")
    audit = runtime.audit
    [clicked] = audit.query(action="job.cancel.click")
    assert (clicked.actor, clicked.cluster, clicked.detail["job"]) == ("slack:U9", "dev-1", job.job_id)
    [typed] = audit.query(action="command")
    assert typed.detail["command"] == "job.cancel" and typed.result == "answered"


async def test_a_click_by_someone_not_allowed_is_refused_with_the_policys_reason(runtime: Runtime) -> None:
    job = submit(runtime)
    dispatcher = Dispatcher(runtime=runtime)
    for who in (PROD_ONLY, STRANGER):
        await dispatcher.on_click(click(button_value(runtime, job), who=who))
        assert last(runtime).startswith("Not allowed: "), last(runtime)
        assert len(last(runtime)) > len("Not allowed: "), "the reason is given"
    assert state(runtime, job) is JobState.QUEUED
    refused = runtime.audit.query(action="command.refused")
    assert {e.actor for e in refused} == {"slack:U7", "slack:U5"}
    assert {e.cluster for e in refused} == {"dev-1"}


async def test_forged_payloads_and_buttons_of_another_job_are_refused(runtime: Runtime) -> None:
    job = submit(runtime)
    other = submit(runtime, cluster="dev-2")
    good = button_value(runtime, job)
    signature = good.partition(".")[2]
    approval_key = signing.derive_key(runtime.secret)
    refusals = {
        f"{job.job_id}.{'0' * 64}": f"not issued for job {job.job_id}",
        # the signature of one job's button does not name another job
        f"{other.job_id}.{signature}": f"not issued for job {other.job_id}",
        # signed with the same secret, but for an approval: another purpose, another key
        job_buttons.cancel_value(key=approval_key, record=job): f"not issued for job {job.job_id}",
        signing.encode(
            key=approval_key,
            request_id=job.job_id,
            decision=ApprovalDecision.APPROVE,
            plan_hash="x",
            expires=1,
        ): "not a valid Cancel button",
        "cancel job 1": "not a valid Cancel button",
        f"999.{signature}": "Job 999 does not exist",
    }
    dispatcher = Dispatcher(runtime=runtime)
    for value, reason in refusals.items():
        await dispatcher.on_click(click(value))
        assert last(runtime).startswith("Not cancelled: ") and reason in last(runtime), (value, last(runtime))
    assert state(runtime, job) is JobState.QUEUED
    assert state(runtime, other) is JobState.QUEUED
    refused = runtime.audit.query(action="job.cancel.refused")
    assert len(refused) == len(refusals)
    assert runtime.audit.query(action="job.cancel.click") == []


async def test_a_genuine_button_clicked_from_another_conversation_is_refused(runtime: Runtime) -> None:
    job = submit(runtime)
    await Dispatcher(runtime=runtime).on_click(click(button_value(runtime, job), where=OTHER_ROOM))
    assert last(runtime) == f"Not cancelled: Job {job.job_id} belongs to another conversation."
    assert state(runtime, job) is JobState.QUEUED


async def test_a_job_that_reuses_an_id_does_not_honour_the_old_jobs_button(runtime: Runtime) -> None:
    job = submit(runtime)
    old_value = button_value(runtime, job)
    later = job.spec.created_at.replace(year=job.spec.created_at.year + 1)
    reborn = job.model_copy(update={"spec": job.spec.model_copy(update={"created_at": later})})
    assert not job_buttons.verify(key=job_buttons.derive_key(runtime.secret), value=old_value, record=reborn)


def test_the_button_is_on_a_job_that_has_not_ended_and_never_on_one_that_has(runtime: Runtime) -> None:
    job = submit(runtime)
    value = button_value(runtime, job)
    [button] = render_job(job, cancel_value=value).buttons
    assert (button.label, button.action_id, button.value) == ("Cancel", CANCEL_ACTION, value)
    assert render_job(job).buttons == (), "no button without a signed value"
    runtime.jobs.cancel(job.job_id)
    ended = runtime.jobs.records.require(job.job_id)
    assert render_job(ended, cancel_value=value).buttons == ()

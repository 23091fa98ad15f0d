"""An approved request's job is queued exactly once, even when the process dies between writing the
decision and queueing the job, or between queueing the job and recording that it did (real Valkey, the
real dispatcher, approval store and job queue).

A crash is reproduced by doing exactly the writes the dead process got to do, and no more; the recovery
is the housekeeping round every kobot serve runs (`ApprovalFlow.run_unrun`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.approvals import ApprovalRequest, ApprovalStatus
from bot.dispatcher import Dispatcher
from bot.runtime import Runtime
from kobot import keys
from kobot.conversations import ButtonClick
from kobot.job_records import JobState
from kobot.messages import MessageKind
from tests.bot.test_dispatcher_approvals import ALICE, BOB, CAROL, POLICY, ROOM, chat, click, say
from tests.support.dispatching import dispatching_runtime


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(redis_url=redis_url, data_dir=data_dir, policy=POLICY, policy_dir=tmp_path)
    yield rt
    rt.close()


def _decide_only(rt: Runtime, *approvers: ButtonClick) -> ApprovalRequest:
    """What a click handler writes before it queues the job: the decision, and nothing after it."""
    outcome = None
    for approver in approvers:
        outcome = rt.approvals.decide(click=approver)
    assert outcome is not None and outcome.request is not None
    assert outcome.status is ApprovalStatus.APPROVED
    return outcome.request


def _approve_clicks(rt: Runtime) -> list[ButtonClick]:
    card = next(d for d in chat(rt).deliveries if d.message.kind is MessageKind.APPROVAL)
    button = next(b for b in card.message.buttons if b.label == "Approve")
    return [
        ButtonClick(
            identity=who, conversation=ROOM, action_id=button.action_id, value=button.value, message=card.ref
        )
        for who in (BOB, CAROL)
    ]


def _jobs(rt: Runtime) -> list[str]:
    return [record.job_id for record in rt.jobs.records.recent(limit=50)]


async def test_a_crash_after_the_decision_leaves_the_job_to_the_sweep_which_queues_it_once(
    runtime: Runtime, data_dir: Path
) -> None:
    await say(Dispatcher(runtime=runtime), ALICE, f"test risky demo marker={data_dir}")
    request = _decide_only(runtime, *_approve_clicks(runtime))
    assert _jobs(runtime) == [], "the process died before queueing"

    # two processes' housekeeping at once, then again: one job, bound to the approval
    first, second = Dispatcher(runtime=runtime), Dispatcher(runtime=runtime)
    await asyncio.gather(first.approvals.run_unrun(), second.approvals.run_unrun())
    await first.approvals.run_unrun()

    [job_id] = _jobs(runtime)
    job = runtime.jobs.records.require(job_id)
    assert job.state is JobState.QUEUED and job.spec.requested_by == ALICE
    assert len(runtime.queue) == 1
    bound = runtime.approvals.approval_of_job(job_id=job_id)
    assert bound is not None and bound.request_id == request.request_id
    assert runtime.redis.zcard(keys.APPROVALS_UNRUN) == 0


async def test_a_crash_after_queueing_the_job_does_not_queue_it_again(
    runtime: Runtime, data_dir: Path
) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, ALICE, f"test risky demo marker={data_dir}")
    request = _decide_only(runtime, *_approve_clicks(runtime))
    # the dead process had reserved the job id, queued the job, and died before recording it
    job_id = runtime.approvals.reserve_job(request_id=request.id, new_job_id=runtime.jobs.records.next_id)
    replanned = await dispatcher.approvals._replan(request)
    assert replanned is not None
    dispatcher.runs.submit(
        identity=ALICE, conversation=ROOM, job=replanned, command_text=request.command_text, job_id=job_id
    )

    await dispatcher.approvals.run_unrun()

    assert _jobs(runtime) == [job_id] and len(runtime.queue) == 1
    assert runtime.approvals.approval_of_job(job_id=job_id) is not None
    assert runtime.redis.zcard(keys.APPROVALS_UNRUN) == 0


async def test_a_click_that_queues_the_job_leaves_nothing_for_the_sweep(
    runtime: Runtime, data_dir: Path
) -> None:
    dispatcher = Dispatcher(runtime=runtime)
    await say(dispatcher, ALICE, f"test risky demo marker={data_dir}")
    await click(dispatcher, runtime, BOB, "Approve")
    await click(dispatcher, runtime, CAROL, "Approve")
    assert len(_jobs(runtime)) == 1

    await dispatcher.approvals.run_unrun()
    assert len(_jobs(runtime)) == 1 and len(runtime.queue) == 1
    assert runtime.redis.zcard(keys.APPROVALS_UNRUN) == 0

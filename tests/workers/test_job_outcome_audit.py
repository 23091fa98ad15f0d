"""Every job outcome lands in the audit trail exactly once (job.outcome), whoever ends the job: the worker
that ran it, a cancel, or the recovery sweep that found its worker dead."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from redis import Redis

from kobot import keys
from kobot.audit import AuditAction, AuditEntry, AuditLog
from kobot.job_records import JobState
from tests.workers.jobkit import ALICE, HERE, job_service, job_settings, reload, run_queue, spec
from workers.recovery import sweep


def _outcomes(redis: Redis, redis_url: str, job_id: str) -> list[AuditEntry]:
    entries = AuditLog(redis=redis, store_url=redis_url).query(
        action=AuditAction.JOB_OUTCOME.value, limit=1000
    )
    return [entry for entry in entries if entry.detail.get("job") == job_id]


def test_a_job_the_worker_ends_is_audited_once_with_who_asked_and_where(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    record = service.submit(spec(service, kind="test.crash"))
    run_queue(service)

    assert reload(service, record).state is JobState.FAILED
    [entry] = _outcomes(redis, redis_url, record.job_id)
    assert entry.result == "failed" and entry.cluster == "demo"
    assert entry.actor == ALICE.key and entry.where == HERE.key
    assert entry.detail["kind"] == "test.crash" and entry.detail["attempt"] == 1
    assert "hunter2" not in entry.model_dump_json(), "the step's exception text stays in the worker log"


def test_a_cancelled_job_is_audited_and_a_second_finish_is_not(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    record = service.submit(spec(service, kind="test.crash"))
    service.cancel(record.job_id)
    # a late finish (a worker that did not see the cancel) changes nothing and writes nothing
    assert not service.finish(reload(service, record), state=JobState.SUCCEEDED, summary="late")

    assert [entry.result for entry in _outcomes(redis, redis_url, record.job_id)] == ["cancelled"]


def test_a_job_the_sweep_fails_is_audited(redis_url: str, redis: Redis, data_dir: Path) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    record = service.submit(spec(service, kind="test.crash"))
    redis.delete("rq:queue:kobot", f"rq:job:{keys.rq_job_id(record.job_id, 1)}")  # lost in a crash
    queued = reload(service, record)
    queued.updated_at -= timedelta(minutes=1)
    redis.set(f"kobot:job:{record.job_id}", queued.model_dump_json())

    assert sweep(service) == [record.job_id]
    assert sweep(service) == []
    [entry] = _outcomes(redis, redis_url, record.job_id)
    assert entry.result == "failed" and "queue entry was lost" in entry.detail["summary"]

"""Backup schedules against a real Valkey and the real JobService: due runs become ordinary etcd.backup
jobs, a missed stretch runs once, two schedulers never both submit, a run still going is not doubled."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from redis import Redis

from kobot.job_records import JobKind, JobState
from tests.workers.jobkit import ALICE, HERE, job_service, job_settings
from workers.backup_schedule import BackupSchedule, ScheduleStore, next_slot, run_due

START = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


def _schedule(redis: Redis, **overrides: object) -> BackupSchedule:
    values: dict[str, object] = {
        "cluster": "prod",
        "at": time(2, 0),
        "keep": 14,
        "target": "local",
        "requested_by": ALICE,
        "reply_to": HERE,
        "next_run_at": next_slot(every="day", at=time(2, 0), timezone="UTC", after=START),
    }
    values.update(overrides)
    schedule = BackupSchedule.model_validate(values)
    ScheduleStore(redis).save(schedule)
    return schedule


def test_next_slot_is_strictly_after_and_follows_the_time_zone() -> None:
    assert next_slot(every="day", at=time(2, 0), timezone="UTC", after=START) == START.replace(hour=2)
    at_two = START.replace(hour=2)
    assert next_slot(every="day", at=time(2, 0), timezone="UTC", after=at_two) == at_two + timedelta(days=1)
    # 02:00 in Shanghai (UTC+8) is 18:00 UTC the day before
    assert next_slot(every="day", at=time(2, 0), timezone="Asia/Shanghai", after=START) == datetime(
        2026, 3, 1, 18, 0, tzinfo=UTC
    )
    assert next_slot(every="hour", at=time(0, 15), timezone="UTC", after=START) == START.replace(minute=15)


def test_due_schedule_submits_one_backup_job_with_target_and_keep(
    redis: Redis, redis_url: str, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    _schedule(redis)
    assert run_due(service=service, now=START) == []
    [job_id] = run_due(service=service, now=START.replace(hour=2))
    record = service.records.require(job_id)
    assert record.spec.kind == JobKind.ETCD_BACKUP.value
    assert record.spec.params == {"target": "local", "keep": 14, "scheduled": True}
    assert record.spec.reply_to == HERE
    stored = ScheduleStore(redis).get("prod")
    assert stored is not None and stored.last_job_id == job_id
    assert stored.next_run_at == START.replace(hour=2) + timedelta(days=1)


def test_missed_runs_while_down_run_once_not_once_per_day(
    redis: Redis, redis_url: str, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    _schedule(redis)
    five_days_later = START + timedelta(days=5, hours=3)
    assert len(run_due(service=service, now=five_days_later)) == 1
    service.finish(service.records.require(ScheduleStore(redis).get("prod").last_job_id or ""),  # type: ignore[union-attr]
                   state=JobState.SUCCEEDED, summary="done")  # fmt: skip
    assert run_due(service=service, now=five_days_later + timedelta(minutes=1)) == []
    stored = ScheduleStore(redis).get("prod")
    assert stored is not None and stored.next_run_at == datetime(2026, 3, 7, 2, 0, tzinfo=UTC)


def test_two_schedulers_at_once_submit_one_job(redis: Redis, redis_url: str, data_dir: Path) -> None:
    settings = job_settings(redis_url, data_dir)
    first, second = job_service(settings, redis), job_service(settings, Redis.from_url(redis_url))
    _schedule(redis)
    due = START.replace(hour=2)
    submitted = run_due(service=first, now=due) + run_due(service=second, now=due)
    assert len(submitted) == 1


def test_a_run_still_going_is_skipped_not_queued_behind(redis: Redis, redis_url: str, data_dir: Path) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    _schedule(redis, every="hour", at=time(0, 0), next_run_at=START)
    [first] = run_due(service=service, now=START)
    assert service.records.require(first).state is JobState.QUEUED
    assert run_due(service=service, now=START + timedelta(hours=1)) == []
    stored = ScheduleStore(redis).get("prod")
    assert stored is not None and stored.last_job_id == first
    assert stored.next_run_at == START + timedelta(hours=2)
    service.finish(service.records.require(first), state=JobState.SUCCEEDED, summary="done")
    assert len(run_due(service=service, now=START + timedelta(hours=2))) == 1

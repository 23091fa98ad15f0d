"""Backup schedules: one per cluster, kept in Redis, turned into ordinary etcd.backup jobs when due.

RQ 3's CronScheduler registers its jobs from a config file in a process of its own, and keeps no
per-cluster state a chat command could change; kobot's schedules are data instead, read each round by
`run_due` in every long-running kobot process. A schedule stores its next run: a round that finds it
due submits one job and moves it to the first slot after now, so runs missed while kobot was down
happen once, not once per missed slot. The check-and-move is one WATCH/MULTI transaction, so two kobot
processes never both submit the same run, and a run whose previous job has not finished is skipped:
with the cluster lock (one job per cluster) a cluster never has two backups at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from redis import Redis
from redis.exceptions import WatchError

from kobot import defaults, keys
from kobot.conversations import Conversation, Identity
from kobot.job_records import JobKind, JobSpec
from kobot.settings_backups import LOCAL_TARGET
from kobot.store import synced
from workers.service import JobService

log = logging.getLogger(__name__)

Period = Literal["day", "hour"]


class BackupSchedule(BaseModel):
    """`backup prod every day at 02:00 keep 14 target=offsite`, as stored."""

    cluster: str
    every: Period = "day"
    at: time = time(2, 0)
    """Time of day for `day`; only its minute counts for `hour`."""
    timezone: str = "UTC"
    keep: int | None = Field(default=None, ge=1, le=defaults.BACKUP_KEEP_MAX)
    target: str = LOCAL_TARGET
    requested_by: Identity
    reply_to: Conversation
    next_run_at: datetime
    last_job_id: str | None = None

    def describe(self) -> str:
        when = f"every day at {self.at:%H:%M}" if self.every == "day" else f"every hour at :{self.at:%M}"
        keep = f", keep {self.keep}" if self.keep else ", keep all"
        upcoming = f"{self.next_run_at:%Y-%m-%d %H:%M} UTC"
        return f"{self.cluster}: {when} {self.timezone} to {self.target}{keep}; next {upcoming}"


def next_slot(*, every: Period, at: time, timezone: str, after: datetime) -> datetime:
    """The first scheduled moment strictly after `after` (aware, returned in UTC)."""
    zone = ZoneInfo(timezone)
    local = after.astimezone(zone)
    if every == "hour":
        slot = local.replace(minute=at.minute, second=0, microsecond=0)
        while slot <= local:
            slot += timedelta(hours=1)
    else:
        day = local.date()
        slot = datetime.combine(day, at, tzinfo=zone)
        while slot <= local:
            day += timedelta(days=1)
            slot = datetime.combine(day, at, tzinfo=zone)
    return slot.astimezone(ZoneInfo("UTC"))


class ScheduleStore:
    """The schedules hash: cluster → JSON."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def save(self, schedule: BackupSchedule) -> None:
        self.redis.hset(keys.BACKUP_SCHEDULES, schedule.cluster, schedule.model_dump_json())

    def get(self, cluster: str) -> BackupSchedule | None:
        raw: bytes | None = self.redis.hget(keys.BACKUP_SCHEDULES, cluster)  # type: ignore[assignment]
        return None if raw is None else BackupSchedule.model_validate_json(raw)

    def delete(self, cluster: str) -> bool:
        return bool(self.redis.hdel(keys.BACKUP_SCHEDULES, cluster))

    def all(self) -> list[BackupSchedule]:
        raws: dict[bytes, bytes] = self.redis.hgetall(keys.BACKUP_SCHEDULES)  # type: ignore[assignment]
        return sorted(
            (BackupSchedule.model_validate_json(raw) for raw in raws.values()), key=lambda s: s.cluster
        )


def run_due(*, service: JobService, now: datetime) -> list[str]:
    """Submit one etcd.backup job for every schedule due at `now`; the ids of the jobs submitted."""
    submitted: list[str] = []
    for schedule in ScheduleStore(service.redis).all():
        if schedule.next_run_at <= now:
            spec = _claim(service=service, cluster=schedule.cluster, now=now)
            if spec is not None:
                service.submit(spec)
                submitted.append(spec.job_id)
    return submitted


def _claim(*, service: JobService, cluster: str, now: datetime) -> JobSpec | None:
    """Move a due schedule to its next slot and reserve its job, in one transaction; None when another
    process did it first, or the last run is still going (that slot is skipped, not queued up)."""
    redis = service.redis
    with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(keys.BACKUP_SCHEDULES)  # type: ignore[no-untyped-call]
                raw: str | bytes | None = synced(pipe.hget(keys.BACKUP_SCHEDULES, cluster))
                if raw is None:
                    return None
                schedule = BackupSchedule.model_validate_json(raw)
                if schedule.next_run_at > now:
                    pipe.unwatch()
                    return None
                schedule.next_run_at = next_slot(
                    every=schedule.every, at=schedule.at, timezone=schedule.timezone, after=now
                )
                spec: JobSpec | None = None
                if _still_running(service, schedule.last_job_id):
                    log.warning(
                        "backup of %s skipped: job %s has not finished", cluster, schedule.last_job_id
                    )
                else:
                    spec = service.new_spec(
                        kind=JobKind.ETCD_BACKUP.value,
                        cluster=cluster,
                        params={"target": schedule.target, "keep": schedule.keep, "scheduled": True},
                        requested_by=schedule.requested_by,
                        reply_to=schedule.reply_to,
                        command_text=f"scheduled backup of {cluster}",
                    )
                    schedule.last_job_id = spec.job_id
                pipe.multi()
                pipe.hset(keys.BACKUP_SCHEDULES, cluster, schedule.model_dump_json())
                pipe.execute()
                return spec
            except WatchError:
                continue


def _still_running(service: JobService, job_id: str | None) -> bool:
    if job_id is None:
        return False
    record = service.records.get(job_id)
    return record is not None and not record.state.finished

"""Backup schedules: one per cluster, kept in Redis, turned into ordinary etcd.backup jobs when due.

The slot arithmetic and the claim are `workers.schedule_slots` (shared with the health-check schedule).
A run whose previous job has not finished is skipped: with the cluster lock (one job per cluster) a
cluster never has two backups at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, time

from pydantic import Field
from redis import Redis

from kobot import defaults, keys
from kobot.conversations import Conversation, Identity
from kobot.job_records import JobKind, JobSpec
from kobot.settings_backups import LOCAL_TARGET
from workers.schedule_slots import Period, SlotSchedule, SlotStore, next_slot
from workers.service import JobService

log = logging.getLogger(__name__)

__all__ = ["BackupSchedule", "Period", "ScheduleStore", "next_slot", "run_due"]


class BackupSchedule(SlotSchedule):
    """`backup prod every day at 02:00 keep 14 target=offsite`, as stored."""

    at: time = time(2, 0)
    keep: int | None = Field(default=None, ge=1, le=defaults.BACKUP_KEEP_MAX)
    target: str = LOCAL_TARGET
    requested_by: Identity
    reply_to: Conversation
    last_job_id: str | None = None

    def describe(self) -> str:
        when = self.when()
        keep = f", keep {self.keep}" if self.keep else ", keep all"
        upcoming = f"{self.next_run_at:%Y-%m-%d %H:%M} UTC"
        return f"{self.cluster}: {when} {self.timezone} to {self.target}{keep}; next {upcoming}"


class ScheduleStore(SlotStore[BackupSchedule]):
    """The backup schedules hash: cluster → JSON."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis=redis, key=keys.BACKUP_SCHEDULES, model=BackupSchedule)


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
    reserved: list[JobSpec] = []

    def advance(schedule: BackupSchedule) -> None:
        reserved.clear()  # a retried transaction runs this again
        schedule.next_run_at = schedule.following(now)
        if _still_running(service, schedule.last_job_id):
            log.warning("backup of %s skipped: job %s has not finished", cluster, schedule.last_job_id)
            return
        spec = service.new_spec(
            kind=JobKind.ETCD_BACKUP.value,
            cluster=cluster,
            params={"target": schedule.target, "keep": schedule.keep, "scheduled": True},
            requested_by=schedule.requested_by,
            reply_to=schedule.reply_to,
            command_text=f"scheduled backup of {cluster}",
        )
        schedule.last_job_id = spec.job_id
        reserved.append(spec)

    claimed = ScheduleStore(service.redis).claim_due(cluster=cluster, now=now, advance=advance)
    return reserved[0] if claimed is not None and reserved else None


def _still_running(service: JobService, job_id: str | None) -> bool:
    if job_id is None:
        return False
    record = service.records.get(job_id)
    return record is not None and not record.state.finished

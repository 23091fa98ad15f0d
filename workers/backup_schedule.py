"""Backup schedules: one per cluster, kept in Redis, turned into ordinary etcd.backup jobs when due.

The slot arithmetic and the claim are `workers.schedule_slots` (shared with the health-check schedule).
A run whose previous job has not finished is skipped: with the cluster lock (one job per cluster) a
cluster never has two backups at once.
"""

from __future__ import annotations

from datetime import datetime, time

from pydantic import Field
from redis import Redis

from kobot import defaults, keys
from kobot.conversations import Conversation, Identity
from kobot.job_records import JobKind, JobSpec
from kobot.settings_backups import LOCAL_TARGET
from workers.schedule_slots import JobSlotSchedule, Period, SlotStore, job_ended, next_slot, run_due_jobs
from workers.service import JobService

__all__ = ["BackupSchedule", "Period", "ScheduleStore", "next_slot", "run_due"]


class BackupSchedule(JobSlotSchedule):
    """`backup prod every day at 02:00 keep 14 target=offsite`, as stored."""

    at: time = time(2, 0)
    keep: int | None = Field(default=None, ge=1, le=defaults.BACKUP_KEEP_MAX)
    target: str = LOCAL_TARGET
    requested_by: Identity
    reply_to: Conversation

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

    def backup(schedule: BackupSchedule) -> JobSpec:
        return service.new_spec(
            kind=JobKind.ETCD_BACKUP.value,
            cluster=schedule.cluster,
            params={"target": schedule.target, "keep": schedule.keep, "scheduled": True},
            requested_by=schedule.requested_by,
            reply_to=schedule.reply_to,
            command_text=f"scheduled backup of {schedule.cluster}",
        )

    return run_due_jobs(
        store=ScheduleStore(service.redis),
        now=now,
        what="backup",
        new_spec=backup,
        ended=lambda job_id: job_ended(service.records, job_id),
        submit=service.submit,
    )

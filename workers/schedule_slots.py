"""What every per-cluster schedule shares (backups, health checks): a slot, the next one, and a claim.

RQ 3's CronScheduler registers its jobs from a config file in a process of its own, and keeps no
per-cluster state a chat command could change; kobot's schedules are data instead, one hash field per
cluster, read each round by the scheduler loop of every long-running kobot process. A schedule stores its
next run: a round that finds it due claims it by moving it to the first slot after now, so runs missed
while kobot was down happen once, not once per missed slot. The check-and-move is one WATCH/MULTI
transaction, so two kobot processes never both run the same slot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Generic, Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

from redis import Redis
from redis.exceptions import WatchError

from kobot.deferred_models import DeferredModel
from kobot.job_records import JobRecord, JobSpec
from kobot.store import synced

log = logging.getLogger(__name__)

Period = Literal["day", "hour"]


class SlotSchedule(DeferredModel):
    """When a per-cluster schedule runs: every day at `at`, or every hour at `at`'s minute."""

    cluster: str
    every: Period = "day"
    at: time = time(2, 0)
    """Time of day for `day`; only its minute counts for `hour`."""
    timezone: str = "UTC"
    next_run_at: datetime

    def when(self) -> str:
        return f"every day at {self.at:%H:%M}" if self.every == "day" else f"every hour at :{self.at:%M}"

    def following(self, now: datetime) -> datetime:
        return next_slot(every=self.every, at=self.at, timezone=self.timezone, after=now)


S = TypeVar("S", bound=SlotSchedule)


class SlotStore(Generic[S]):
    """One hash of schedules: cluster -> JSON of `model`."""

    def __init__(self, *, redis: Redis, key: str, model: type[S]) -> None:
        self.redis = redis
        self.key = key
        self.model = model

    def save(self, schedule: S) -> None:
        self.redis.hset(self.key, schedule.cluster, schedule.model_dump_json())

    def get(self, cluster: str) -> S | None:
        raw: bytes | None = self.redis.hget(self.key, cluster)  # type: ignore[assignment]
        return None if raw is None else self.model.model_validate_json(raw)

    def delete(self, cluster: str) -> bool:
        return bool(self.redis.hdel(self.key, cluster))

    def all(self) -> list[S]:
        raws: dict[bytes, bytes] = self.redis.hgetall(self.key)  # type: ignore[assignment]
        return sorted((self.model.model_validate_json(raw) for raw in raws.values()), key=lambda s: s.cluster)

    def update(self, cluster: str, change: Callable[[S], bool]) -> S | None:
        """Change the cluster's stored schedule in one WATCH/MULTI transaction: `change` edits it in place
        and says whether to write it. The schedule written, or None when it is gone or `change` declined.
        `change` may run more than once (a retried transaction). A read-then-save outside a transaction
        would overwrite what the scheduler loop of another process wrote in between (its last job)."""
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self.key)  # type: ignore[no-untyped-call]
                    raw: str | bytes | None = synced(pipe.hget(self.key, cluster))
                    if raw is None:
                        pipe.unwatch()
                        return None
                    schedule = self.model.model_validate_json(raw)
                    if not change(schedule):
                        pipe.unwatch()
                        return None
                    pipe.multi()
                    pipe.hset(self.key, cluster, schedule.model_dump_json())
                    pipe.execute()
                    return schedule
                except WatchError:
                    continue

    def put(self, schedule: S, *, keep: Callable[[S, S], None]) -> S | None:
        """Store `schedule` in one transaction; when one is stored already, `keep(stored, schedule)` first
        carries over what must survive the replacement. The schedule it replaced, or None."""
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self.key)  # type: ignore[no-untyped-call]
                    raw: str | bytes | None = synced(pipe.hget(self.key, schedule.cluster))
                    previous = None if raw is None else self.model.model_validate_json(raw)
                    if previous is not None:
                        keep(previous, schedule)
                    pipe.multi()
                    pipe.hset(self.key, schedule.cluster, schedule.model_dump_json())
                    pipe.execute()
                    return previous
                except WatchError:
                    continue

    def claim_due(self, *, cluster: str, now: datetime, advance: Callable[[S], None]) -> S | None:
        """Claim the cluster's schedule when it is due at `now`: `advance` moves it on (its next slot, what
        the run records) and it is written back in one transaction. None when it is not due, gone, or
        another process claimed it first. `advance` may run more than once (a retried transaction)."""

        def due(schedule: S) -> bool:
            if schedule.next_run_at > now:
                return False
            advance(schedule)
            return True

        return self.update(cluster, due)


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


class JobSlotSchedule(SlotSchedule):
    """A schedule whose slots become jobs (backups, CIS scans): it remembers the last one it submitted."""

    last_job_id: str | None = None


J = TypeVar("J", bound=JobSlotSchedule)


class JobRecords(Protocol):
    """What a schedule reads of its last job (workers.job_store.JobStore)."""

    def get(self, job_id: str) -> JobRecord | None: ...


def job_ended(records: JobRecords, job_id: str) -> bool:
    """The job finished, or is gone (expired): either way the next may start."""
    record = records.get(job_id)
    return record is None or record.state.finished


def run_due_jobs(
    *,
    store: SlotStore[J],
    now: datetime,
    what: str,
    new_spec: Callable[[J], JobSpec],
    ended: Callable[[str], bool],
    submit: Callable[[JobSpec], object],
) -> list[str]:
    """Submit one job (`new_spec`) for every schedule of `store` due at `now`; the ids submitted.

    The slot moves on and the job is reserved in one transaction, so of two processes only one submits
    it; a slot whose previous job has not `ended` is skipped, not queued up behind it (`what` names the
    job in the log line that says so)."""
    submitted: list[str] = []
    for schedule in store.all():
        if schedule.next_run_at > now:
            continue
        spec = claim_job_slot(
            store=store, cluster=schedule.cluster, now=now, what=what, new_spec=new_spec, ended=ended
        )
        if spec is not None:
            submit(spec)
            submitted.append(spec.job_id)
    return submitted


def claim_job_slot(
    *,
    store: SlotStore[J],
    cluster: str,
    now: datetime,
    what: str,
    new_spec: Callable[[J], JobSpec],
    ended: Callable[[str], bool],
) -> JobSpec | None:
    """Move the cluster's due schedule to its next slot and reserve its job, in one transaction; None when
    it is not due, another process did it first, or its last job has not ended (that slot is skipped)."""
    reserved: list[JobSpec] = []

    def advance(schedule: J) -> None:
        reserved.clear()  # a retried transaction runs this again
        schedule.next_run_at = schedule.following(now)
        if schedule.last_job_id is not None and not ended(schedule.last_job_id):
            log.warning("%s of %s skipped: job %s has not ended", what, cluster, schedule.last_job_id)
            return
        spec = new_spec(schedule)
        schedule.last_job_id = spec.job_id
        reserved.append(spec)

    claimed = store.claim_due(cluster=cluster, now=now, advance=advance)
    return reserved[0] if claimed is not None and reserved else None

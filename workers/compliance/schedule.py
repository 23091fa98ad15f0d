"""Scan schedules: one per cluster (`scan prod every week on monday at 03:00`), turned into ordinary
cis.scan jobs when due by the scheduler loop of every long-running kobot process.

The slot arithmetic and the due-claim are `workers.schedule_slots`, shared with backups and health
checks; a weekly schedule is a daily one that lets pass the days that are not its weekday. A scheduled
scan posts only what changed: its job answers to no chat (`SCHEDULED_SCAN_CHAT`, which no adapter
serves, so no progress card is posted each week), and once it has ended `changes_to_post` hands the
loop one message for the schedule's conversation when the scan found something new or fixed (or is
the first), or failed. Each ended job is reported once, by the first process that runs its chat
platform; a post that fails is released and tried again the next round.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from redis import Redis

from kobot import keys
from kobot.chat import ChatAdapter
from kobot.conversations import Conversation, Identity
from kobot.errors import KobotError
from kobot.job_records import JobKind, JobSpec, JobState
from kobot.messages import MessageKind, OutgoingMessage, Tone
from workers.compliance.cards import change_card
from workers.compliance.results import ScanStore
from workers.schedule_slots import JobSlotSchedule, SlotStore, job_ended, next_slot, run_due_jobs
from workers.service import JobService

log = logging.getLogger(__name__)

Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)

SCHEDULED_SCAN_PLATFORM = "schedule"
"""The platform of a scheduled scan's `reply_to`: no chat adapter has this name, so the job's progress
card is posted nowhere; the schedule's own conversation hears only of changes."""


def scheduled_scan_chat(cluster: str) -> Conversation:
    return Conversation(platform=SCHEDULED_SCAN_PLATFORM, conversation_id=f"cis:{cluster}")


class ScanSchedule(JobSlotSchedule):
    """`scan prod every week on monday at 03:00`, as stored: daily (`on` None) or weekly."""

    at: time = time(3, 0)
    on: Weekday | None = None
    """The weekday of a weekly schedule, in the schedule's time zone."""
    requested_by: Identity
    reply_to: Conversation
    reported_job_id: str | None = None
    """The last scheduled job whose outcome was handed to the loop to post (or found unchanged)."""

    def when(self) -> str:
        if self.on is not None:
            return f"every week on {self.on} at {self.at:%H:%M}"
        return super().when()

    def following(self, now: datetime) -> datetime:
        slot = next_slot(every="day", at=self.at, timezone=self.timezone, after=now)
        if self.on is None:
            return slot
        zone = ZoneInfo(self.timezone)
        while WEEKDAYS[slot.astimezone(zone).weekday()] != self.on:
            slot = next_slot(every="day", at=self.at, timezone=self.timezone, after=slot)
        return slot

    def describe(self) -> str:
        upcoming = f"{self.next_run_at:%Y-%m-%d %H:%M} UTC"
        return f"{self.cluster}: {self.when()} {self.timezone}, changes posted here; next {upcoming}"


class ScanScheduleStore(SlotStore[ScanSchedule]):
    """The scan schedules hash: cluster → JSON."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis=redis, key=keys.CIS_SCHEDULES, model=ScanSchedule)


def run_due(*, service: JobService, now: datetime) -> list[str]:
    """Submit one cis.scan job for every scan schedule due at `now`; the ids of the jobs submitted. A
    slot whose previous scan has not ended is skipped (the cluster lock would queue it behind anyway)."""

    def scan(schedule: ScanSchedule) -> JobSpec:
        return service.new_spec(
            kind=JobKind.CIS_SCAN.value,
            cluster=schedule.cluster,
            params={"scheduled": True},
            requested_by=schedule.requested_by,
            reply_to=scheduled_scan_chat(schedule.cluster),
            command_text=f"scheduled scan of {schedule.cluster}",
        )

    return run_due_jobs(
        store=ScanScheduleStore(service.redis),
        now=now,
        what="scan",
        new_spec=scan,
        ended=lambda job_id: job_ended(service.records, job_id),
        submit=service.submit,
    )


@dataclass(frozen=True)
class ScanChange:
    """A message for the schedule's conversation about one ended scheduled scan."""

    cluster: str
    conversation: Conversation
    message: OutgoingMessage
    job_id: str


def changes_to_post(*, service: JobService, platforms: Collection[str]) -> list[ScanChange]:
    """For every schedule whose last scan has ended and was not reported yet, and whose conversation is on
    one of `platforms` (the adapters this process runs): claim it as reported and, when it changed
    something, failed or is the cluster's first, the message to post. A process without the schedule's
    platform (a terminal `kobot chat`) leaves it to one that has it."""
    changes: list[ScanChange] = []
    for schedule in ScanScheduleStore(service.redis).all():
        job_id = schedule.last_job_id
        if job_id is None or job_id == schedule.reported_job_id:
            continue
        if schedule.reply_to.platform not in platforms:
            continue
        record = service.records.get(job_id)
        if record is not None and not record.state.finished:
            continue
        if not _claim_report(service.redis, cluster=schedule.cluster, job_id=job_id):
            continue
        message = _change_message(service, cluster=schedule.cluster, job_id=job_id)
        if message is not None:
            changes.append(
                ScanChange(
                    cluster=schedule.cluster, conversation=schedule.reply_to, message=message, job_id=job_id
                )
            )
    return changes


def _change_message(service: JobService, *, cluster: str, job_id: str) -> OutgoingMessage | None:
    record = service.records.get(job_id)
    if record is None or record.state is not JobState.SUCCEEDED:
        state = "gone" if record is None else record.state.value
        return OutgoingMessage(
            kind=MessageKind.REPLY,
            title=f"Scheduled CIS scan of {cluster} {state}",
            tone=Tone.DANGER,
            body=(record.error or record.summary) if record is not None else None,
            footer=f"show job {job_id}; retry job {job_id} runs it again",
        )
    result = ScanStore(service.redis).get(cluster=cluster, scan_id=job_id)
    if result is None or (result.diff.previous_id is not None and not result.diff.changed):
        return None
    return change_card(result)


def _claim_report(redis: Redis, *, cluster: str, job_id: str) -> bool:
    """Set the schedule's reported job to `job_id` unless another process did; True for the one that did."""

    def claim(schedule: ScanSchedule) -> bool:
        if schedule.reported_job_id == job_id or schedule.last_job_id != job_id:
            return False
        schedule.reported_job_id = job_id
        return True

    return ScanScheduleStore(redis).update(cluster, claim) is not None


def _release_report(redis: Redis, *, cluster: str, job_id: str) -> None:
    """Undo `_claim_report` after the post failed, so a later round (of any process) tries again."""

    def release(schedule: ScanSchedule) -> bool:
        if schedule.reported_job_id != job_id:
            return False
        schedule.reported_job_id = None
        return True

    ScanScheduleStore(redis).update(cluster, release)


async def scheduler_round(*, service: JobService, adapters: Mapping[str, ChatAdapter], now: datetime) -> None:
    """One round of the scan scheduler loop: submit what is due, then post what ended with a change to
    the conversation each schedule was set in (through its platform's adapter). A change whose post
    fails is released, so the next round tries it again rather than losing it."""
    await asyncio.to_thread(run_due, service=service, now=now)
    changes = await asyncio.to_thread(changes_to_post, service=service, platforms=frozenset(adapters))
    for change in changes:
        adapter = adapters[change.conversation.platform]
        try:
            await adapter.send(change.conversation, change.message)
        except Exception as exc:
            # any failure (a KobotError, a timeout, a dropped connection): the change must not be lost
            why = exc.user_message if isinstance(exc, KobotError) else type(exc).__name__
            log.warning("scan %s: its change was not posted (%s); tried again next round", change.job_id, why)
            await asyncio.to_thread(
                _release_report, service.redis, cluster=change.cluster, job_id=change.job_id
            )

"""Scan schedules: weekly slots in the schedule's time zone, one job per due slot (a missed stretch runs
once, two processes never both submit, a scan still going is skipped), a scheduled scan that posts no
progress card, and only a changed, first or failed scan posted to the schedule's conversation, once.
Real Valkey and the real job service; the chat is a recording adapter. The commands go through the real
dispatcher and policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from redis import Redis

from bot.runtime import Runtime
from kobot.clusters import ClusterRecord, ClusterState, NodeRecord, NodeState
from kobot.conversations import Conversation, MessageRef
from kobot.job_records import JobKind, JobState
from kobot.messages import OutgoingMessage, Tone
from tests.bot.recording_adapter import RecordingAdapter
from tests.compliance.reports import MASTER, MASTER_HARDENED, report
from tests.support.dispatching import OPERATOR, OPERATOR_ON_PROD, ROOM, dispatching_runtime, reply_to
from tests.workers.jobkit import job_service, job_settings
from workers.compliance.results import ScanStore, build_result, diff_scans
from workers.compliance.schedule import (
    SCHEDULED_SCAN_PLATFORM,
    ScanSchedule,
    ScanScheduleStore,
    changes_to_post,
    run_due,
    scheduler_round,
)
from workers.service import JobService

MONDAY_3AM = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
"""A Monday."""


def _schedule(**overrides: object) -> ScanSchedule:
    values: dict[str, object] = {
        "cluster": "prod",
        "on": "monday",
        "at": time(3, 0),
        "requested_by": OPERATOR,
        "reply_to": ROOM,
        "next_run_at": MONDAY_3AM,
    }
    values.update(overrides)
    return ScanSchedule.model_validate(values)


@pytest.fixture
def service(redis_url: str, redis: Redis, data_dir: Path) -> JobService:
    return job_service(job_settings(redis_url, data_dir), redis)


# --- slots ------------------------------------------------------------------------------------------------
def test_weekly_slot_is_the_next_weekday_at_its_time() -> None:
    weekly = _schedule()
    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert weekly.following(wednesday) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert weekly.following(MONDAY_3AM - timedelta(minutes=1)) == MONDAY_3AM
    assert weekly.following(MONDAY_3AM) == MONDAY_3AM + timedelta(days=7)
    assert _schedule(on=None).following(MONDAY_3AM) == MONDAY_3AM + timedelta(days=1)


def test_weekly_slot_counts_the_weekday_in_the_schedule_time_zone() -> None:
    shanghai = _schedule(timezone="Asia/Shanghai")
    # Monday 03:00 in Shanghai is Sunday 19:00 UTC
    assert shanghai.following(MONDAY_3AM) == datetime(2026, 12, 6, 19, 0, tzinfo=UTC)
    assert shanghai.when() == "every week on monday at 03:00"


# --- due runs -----------------------------------------------------------------------------------------------
def test_a_due_schedule_submits_one_scan_that_answers_to_no_chat(service: JobService) -> None:
    store = ScanScheduleStore(service.redis)
    store.save(_schedule())
    assert run_due(service=service, now=MONDAY_3AM - timedelta(seconds=1)) == []
    [job_id] = run_due(service=service, now=MONDAY_3AM)
    record = service.records.require(job_id)
    assert record.spec.kind == JobKind.CIS_SCAN.value
    assert record.spec.params == {"scheduled": True}
    assert record.spec.reply_to.platform == SCHEDULED_SCAN_PLATFORM, "no progress card in any chat"
    assert record.spec.requested_by == OPERATOR
    moved = store.get("prod")
    assert moved is not None and moved.last_job_id == job_id
    assert moved.next_run_at == MONDAY_3AM + timedelta(days=7)
    assert run_due(service=service, now=MONDAY_3AM) == [], "the slot is taken"


def test_missed_weeks_run_once_and_a_scan_still_going_skips_its_slot(service: JobService) -> None:
    store = ScanScheduleStore(service.redis)
    store.save(_schedule())
    five_weeks_later = MONDAY_3AM + timedelta(days=35, hours=5)
    [job_id] = run_due(service=service, now=five_weeks_later)
    schedule = store.get("prod")
    assert schedule is not None and schedule.next_run_at == MONDAY_3AM + timedelta(days=42)

    # the scan has not ended by its next slot: that slot is skipped, not queued up
    assert run_due(service=service, now=schedule.next_run_at) == []
    skipped = store.get("prod")
    assert skipped is not None and skipped.last_job_id == job_id
    assert skipped.next_run_at == MONDAY_3AM + timedelta(days=49)
    service.finish(service.records.require(job_id), state=JobState.SUCCEEDED, summary="done")
    assert len(run_due(service=service, now=skipped.next_run_at)) == 1


def test_two_processes_submit_a_due_scan_once(
    redis_url: str, redis: Redis, data_dir: Path, service: JobService
) -> None:
    other = job_service(job_settings(redis_url, data_dir), Redis.from_url(redis_url))
    ScanScheduleStore(redis).save(_schedule())
    submitted = run_due(service=service, now=MONDAY_3AM) + run_due(service=other, now=MONDAY_3AM)
    assert len(submitted) == 1
    other.redis.close()


# --- only changes are posted -------------------------------------------------------------------------------
def _ended_scan(
    service: JobService, *, state: JobState, report_path: Path | None, previous: str | None
) -> str:
    """A scheduled scan job that ended in `state`, its scan kept when `report_path` is given."""
    ScanScheduleStore(service.redis).save(_schedule(next_run_at=datetime.now(UTC)))
    [job_id] = run_due(service=service, now=datetime.now(UTC) + timedelta(seconds=1))
    if report_path is not None:
        store = ScanStore(service.redis)
        result = build_result(
            scan_id=job_id,
            cluster="prod",
            reports={"master-1": report(report_path, node="master-1")},
            kube_bench_version="0.15.6",
        )
        result.diff = diff_scans(
            previous=store.get(cluster="prod", scan_id=previous) if previous else None, current=result
        )
        store.save(result)
    service.finish(
        service.records.require(job_id),
        state=state,
        summary="x",
        error="boom" if state is JobState.FAILED else None,
    )
    return job_id


SLACK_ONLY = frozenset({"slack"})


def _first_posted(service: JobService) -> OutgoingMessage:
    [change] = changes_to_post(service=service, platforms=SLACK_ONLY)
    assert change.conversation == ROOM
    assert changes_to_post(service=service, platforms=SLACK_ONLY) == [], "each ended scan is reported once"
    return change.message


def test_first_changed_and_failed_scans_are_posted_once_and_an_unchanged_one_not(service: JobService) -> None:
    first = _ended_scan(service, state=JobState.SUCCEEDED, report_path=MASTER, previous=None)
    posted = _first_posted(service)
    assert posted.title == "CIS scan of prod changed"
    assert "First scan of this cluster" in (posted.body or "")

    same = _ended_scan(service, state=JobState.SUCCEEDED, report_path=MASTER, previous=first)
    assert changes_to_post(service=service, platforms=SLACK_ONLY) == [], "no change, nothing posted"
    schedule = ScanScheduleStore(service.redis).get("prod")
    assert schedule is not None and schedule.reported_job_id == same

    hardened = _ended_scan(service, state=JobState.SUCCEEDED, report_path=MASTER_HARDENED, previous=same)
    posted = _first_posted(service)
    assert posted.tone is Tone.WARNING
    assert "newly failing 1.2.15 on master-1" in (posted.body or "")
    assert posted.footer == f"show scan prod {hardened}"

    failed = _ended_scan(service, state=JobState.FAILED, report_path=None, previous=None)
    posted = _first_posted(service)
    assert (posted.title, posted.tone, posted.body) == (
        "Scheduled CIS scan of prod failed",
        Tone.DANGER,
        "boom",
    )
    assert posted.footer is not None and f"retry job {failed}" in posted.footer


def test_a_scan_still_running_is_not_reported(service: JobService) -> None:
    ScanScheduleStore(service.redis).save(_schedule())
    run_due(service=service, now=MONDAY_3AM)
    assert changes_to_post(service=service, platforms=SLACK_ONLY) == []
    schedule = ScanScheduleStore(service.redis).get("prod")
    assert schedule is not None and schedule.reported_job_id is None


async def test_the_scheduler_round_posts_a_change_through_the_schedule_platforms_adapter(
    service: JobService,
) -> None:
    slack = RecordingAdapter("slack")
    _ended_scan(service, state=JobState.SUCCEEDED, report_path=MASTER, previous=None)
    await scheduler_round(service=service, adapters={"slack": slack}, now=datetime.now(UTC))
    [delivery] = slack.deliveries
    assert delivery.ref.conversation_id == ROOM.conversation_id
    assert delivery.message.title == "CIS scan of prod changed"
    await scheduler_round(service=service, adapters={"slack": slack}, now=datetime.now(UTC))
    assert len(slack.deliveries) == 1


async def test_a_process_without_the_schedules_platform_leaves_the_change_to_one_with_it(
    service: JobService,
) -> None:
    """The loop runs in every long-running process, a terminal `kobot chat` too: it must not take the
    change it cannot post."""
    _ended_scan(service, state=JobState.SUCCEEDED, report_path=MASTER, previous=None)
    terminal = RecordingAdapter("terminal")
    await scheduler_round(service=service, adapters={"terminal": terminal}, now=datetime.now(UTC))
    await scheduler_round(service=service, adapters={}, now=datetime.now(UTC))
    assert terminal.deliveries == []
    slack = RecordingAdapter("slack")
    await scheduler_round(service=service, adapters={"slack": slack}, now=datetime.now(UTC))
    [delivery] = slack.deliveries
    assert delivery.message.title == "CIS scan of prod changed"


class _DroppingAdapter(RecordingAdapter):
    """Slack whose first send dies on the connection (not a KobotError)."""

    def __init__(self) -> None:
        super().__init__("slack")
        self.drops = 1

    async def send(self, conversation: Conversation, message: OutgoingMessage) -> MessageRef:
        if self.drops:
            self.drops -= 1
            raise ConnectionResetError("connection reset by peer")
        return await super().send(conversation, message)


@pytest.mark.parametrize("failure", ["refused", "connection"])
async def test_a_change_whose_post_fails_is_posted_the_next_round(service: JobService, failure: str) -> None:
    _ended_scan(service, state=JobState.SUCCEEDED, report_path=MASTER, previous=None)
    slack = _DroppingAdapter()
    if failure == "refused":
        slack.drops, slack.refuse_next = 0, 1
    await scheduler_round(service=service, adapters={"slack": slack}, now=datetime.now(UTC))
    assert slack.deliveries == []
    await scheduler_round(service=service, adapters={"slack": slack}, now=datetime.now(UTC))
    [delivery] = slack.deliveries
    assert delivery.message.title == "CIS scan of prod changed"
    await scheduler_round(service=service, adapters={"slack": slack}, now=datetime.now(UTC))
    assert len(slack.deliveries) == 1, "posted once"


# --- the commands -----------------------------------------------------------------------------------------


@pytest.fixture
def runtime(redis_url: str, data_dir: Path, tmp_path: Path) -> Iterator[Runtime]:
    rt = dispatching_runtime(
        redis_url=redis_url, data_dir=data_dir, policy=OPERATOR_ON_PROD, policy_dir=tmp_path
    )
    rt.clusters.save(
        ClusterRecord(
            name="prod",
            version="1.31.4",
            state=ClusterState.RUNNING,
            nodes=[NodeRecord(name="master-1", role="master", address="m1.prod.test", state=NodeState.READY)],
        )
    )
    yield rt
    rt.close()


async def test_schedule_commands_set_show_and_stop_a_weekly_scan(runtime: Runtime) -> None:
    answer = await reply_to(runtime, "scan prod every week on monday at 03:00")
    assert (answer.title, answer.tone) == ("CIS scans of prod scheduled", Tone.SUCCESS)
    schedule = ScanScheduleStore(runtime.redis).get("prod")
    assert schedule is not None and (schedule.on, schedule.at) == ("monday", time(3, 0))
    assert schedule.next_run_at.weekday() == 0 and schedule.next_run_at > datetime.now(UTC)
    assert schedule.reply_to == ROOM
    assert "prod: every week on monday at 03:00 UTC, changes posted here" in (answer.body or "")
    assert runtime.jobs.records.recent(limit=5) == [], "setting a schedule queues nothing"

    shown = await reply_to(runtime, "扫描计划 prod")
    assert "every week on monday at 03:00" in (shown.body or "")
    refused = await reply_to(runtime, "scan prod every week at 03:00")
    assert "a weekly scan needs its day: `on monday`" in refused.to_text()
    stopped = await reply_to(runtime, "scan prod off")
    assert stopped.title == "Scheduled CIS scans of prod stopped"
    assert ScanScheduleStore(runtime.redis).get("prod") is None
    again = await reply_to(runtime, "取消定时扫描 prod")
    assert "prod has no CIS scan schedule" in again.to_text()


async def test_show_scan_answers_without_scans_and_names_the_kept_ones(runtime: Runtime) -> None:
    none_yet = await reply_to(runtime, "show scan prod")
    assert "prod has no CIS scan yet; run one with `scan prod`" in none_yet.to_text()
    result = build_result(
        scan_id="41", cluster="prod", reports={"master-1": report(MASTER)}, kube_bench_version="0.15.6"
    )
    ScanStore(runtime.redis).save(result)
    missing = await reply_to(runtime, "show scan prod 99")
    assert "prod has no scan 99; kept scans: 41" in missing.to_text()
    card = await reply_to(runtime, "扫描结果 prod #41")
    assert card.title == "CIS scan 41 of prod"


async def test_a_scan_schedule_takes_its_time_zone_like_health_checks(runtime: Runtime) -> None:
    answer = await reply_to(runtime, "scan prod every week on monday at 03:00 tz=Asia/Shanghai")
    assert answer.title == "CIS scans of prod scheduled", answer
    schedule = ScanScheduleStore(runtime.redis).get("prod")
    assert schedule is not None and schedule.timezone == "Asia/Shanghai"
    # Monday 03:00 in Shanghai is Sunday 19:00 UTC
    assert (schedule.next_run_at.weekday(), schedule.next_run_at.hour) == (6, 19)
    assert "every week on monday at 03:00 Asia/Shanghai" in (answer.body or "")
    refused = await reply_to(runtime, "scan prod every day at 04:00 tz=Mars/Base")
    assert "unknown time zone 'Mars/Base': an IANA name such as UTC, Asia/Shanghai" in refused.to_text()

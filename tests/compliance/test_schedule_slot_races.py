"""The schedule hash's transactions against a second client that writes the same hash between WATCH and
EXEC, as the scheduler loop of another kobot process does: a due slot is claimed once, and replacing a
schedule keeps the job another process has just recorded. Real Valkey, two connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta

import pytest
from redis import Redis

from kobot.job_records import JobSpec
from tests.support.dispatching import OPERATOR, ROOM
from workers.compliance.schedule import ScanSchedule, ScanScheduleStore
from workers.schedule_slots import claim_job_slot

DUE = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def _schedule(**overrides: object) -> ScanSchedule:
    values: dict[str, object] = {
        "cluster": "prod",
        "on": "monday",
        "at": time(3, 0),
        "requested_by": OPERATOR,
        "reply_to": ROOM,
        "next_run_at": DUE,
    }
    values.update(overrides)
    return ScanSchedule.model_validate(values)


@pytest.fixture
def other(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


def test_a_slot_claimed_by_another_client_between_watch_and_exec_is_claimed_once(
    redis: Redis, other: Redis
) -> None:
    store, rival = ScanScheduleStore(redis), ScanScheduleStore(other)
    store.save(_schedule())
    claims: list[str] = []

    def advance(schedule: ScanSchedule) -> None:
        if not claims:
            # the other process claims the same slot while this one holds its WATCH
            assert rival.claim_due(cluster="prod", now=DUE, advance=rival_advance) is not None
        schedule.next_run_at = schedule.following(DUE)
        schedule.last_job_id = "mine"
        claims.append("mine")

    def rival_advance(schedule: ScanSchedule) -> None:
        schedule.next_run_at = schedule.following(DUE)
        schedule.last_job_id = "theirs"
        claims.append("theirs")

    assert store.claim_due(cluster="prod", now=DUE, advance=advance) is None, "the slot was taken"
    stored = store.get("prod")
    assert stored is not None and stored.last_job_id == "theirs"
    assert stored.next_run_at == DUE + timedelta(days=7)
    # this side's advance ran in the attempt EXEC threw away; the retry found the slot no longer due
    assert claims == ["theirs", "mine"]


def test_replacing_a_schedule_keeps_the_job_another_process_recorded_meanwhile(
    redis: Redis, other: Redis
) -> None:
    store = ScanScheduleStore(redis)
    store.save(_schedule(last_job_id="40", reported_job_id="40"))
    rounds: list[str | None] = []

    def keep(stored: ScanSchedule, replacement: ScanSchedule) -> None:
        rounds.append(stored.last_job_id)
        if len(rounds) == 1:
            # the scheduler loop elsewhere submits scan 41 while the replacement is being written
            ScanScheduleStore(other).update("prod", _record_job("41"))
        replacement.last_job_id, replacement.reported_job_id = stored.last_job_id, stored.reported_job_id

    replaced = store.put(_schedule(at=time(4, 0)), keep=keep)
    assert replaced is not None and replaced.last_job_id == "41"
    stored = store.get("prod")
    assert stored is not None and (stored.at, stored.last_job_id, stored.reported_job_id) == (
        time(4, 0),
        "41",
        "40",
    )
    assert rounds == ["40", "41"]


def _record_job(job_id: str) -> Callable[[ScanSchedule], bool]:
    def record(schedule: ScanSchedule) -> bool:
        schedule.last_job_id = job_id
        return True

    return record


def test_a_job_slot_retried_after_a_conflicting_write_reserves_one_job(redis: Redis, other: Redis) -> None:
    """`new_spec` runs again when EXEC finds the hash changed; only the job of the write that landed is
    returned and recorded (the first attempt's is dropped, never submitted)."""
    store = ScanScheduleStore(redis)
    store.save(_schedule(last_job_id="40"))
    made: list[JobSpec] = []

    def new_spec(schedule: ScanSchedule) -> JobSpec:
        if not made:
            # another process changes the schedule (not its slot) meanwhile
            ScanScheduleStore(other).update("prod", _record_job("40"))
        spec = JobSpec(
            job_id=str(41 + len(made)),
            kind="cis.scan",
            cluster="prod",
            requested_by=OPERATOR,
            reply_to=ROOM,
            command_text="scheduled scan of prod",
        )
        made.append(spec)
        return spec

    spec = claim_job_slot(
        store=store, cluster="prod", now=DUE, what="scan", new_spec=new_spec, ended=lambda _: True
    )
    assert [s.job_id for s in made] == ["41", "42"]
    assert spec is not None and spec.job_id == "42"
    stored = store.get("prod")
    assert stored is not None and stored.last_job_id == "42"
    still_going = claim_job_slot(
        store=store,
        cluster="prod",
        now=stored.next_run_at,
        what="scan",
        new_spec=new_spec,
        ended=lambda _: False,
    )
    assert still_going is None, "a slot whose last job has not ended is skipped"
    skipped = store.get("prod")
    assert skipped is not None and skipped.last_job_id == "42" and skipped.next_run_at > stored.next_run_at

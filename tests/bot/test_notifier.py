"""The notifier against a real Valkey event stream and real jobs: one message, throttled, never lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from redis import Redis

from bot import job_buttons
from bot.notifier import Notifier
from commands.job_card import CANCEL_ACTION
from kobot import keys
from kobot.messages import Tone
from tests.bot.recording_adapter import RecordingAdapter
from tests.workers.jobkit import job_service, job_settings, run_queue, spec


async def _until(predicate, *, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_one_message_per_job_edited_to_its_final_state(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    adapter = RecordingAdapter()
    notifier = Notifier(redis=redis, adapter=adapter, edit_interval=0.3)
    await notifier.start()
    try:
        marker = data_dir / "marker"
        marker.touch()
        record = service.submit(spec(service, kind="test.steps", marker=str(marker)))
        await asyncio.to_thread(run_queue, service)
        await _until(
            lambda: any(d.message.tone is Tone.SUCCESS for d in adapter.deliveries), timeout=10, what="final"
        )
    finally:
        await notifier.stop()

    sends = [d for d in adapter.deliveries if d.kind == "send"]
    assert len(sends) == 1, "exactly one message per job"
    assert sends[0].message.title == f"Job {record.job_id} · test steps demo"
    assert all(d.ref == sends[0].ref for d in adapter.deliveries)
    gaps = [b.at - a.at for a, b in zip(adapter.deliveries, adapter.deliveries[1:], strict=False)]
    assert all(gap >= 0.3 - 0.02 for gap in gaps), f"edits closer than the interval: {gaps}"
    final = adapter.deliveries[-1].message
    assert final.status and final.status.startswith("succeeded in")
    assert redis.xpending(keys.GLOBAL_EVENTS, "notifier:terminal")["pending"] == 0


async def test_refused_deliveries_are_retried_and_nothing_is_acked_early(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    adapter = RecordingAdapter()
    adapter.refuse_next = 3
    adapter.retry_after = 0.2
    notifier = Notifier(redis=redis, adapter=adapter, edit_interval=0.1)
    await notifier.start()
    try:
        marker = data_dir / "marker"
        marker.touch()
        service.submit(spec(service, kind="test.steps", marker=str(marker)))
        await _until(lambda: adapter.refused == 3, timeout=5, what="three refusals")
        assert redis.xpending(keys.GLOBAL_EVENTS, "notifier:terminal")["pending"] > 0
        await asyncio.to_thread(run_queue, service)
        await _until(
            lambda: any(d.message.tone is Tone.SUCCESS for d in adapter.deliveries), timeout=10, what="final"
        )
    finally:
        await notifier.stop()
    assert len([d for d in adapter.deliveries if d.kind == "send"]) == 1
    assert redis.xpending(keys.GLOBAL_EVENTS, "notifier:terminal")["pending"] == 0


async def test_events_of_other_platforms_are_left_to_their_notifiers(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    slack = RecordingAdapter("slack")
    notifier = Notifier(redis=redis, adapter=slack, edit_interval=0.1)
    await notifier.start()
    try:
        marker = data_dir / "marker"
        marker.touch()
        service.submit(spec(service, kind="test.steps", marker=str(marker)))  # replies to the terminal
        await asyncio.sleep(0.5)
    finally:
        await notifier.stop()
    assert slack.deliveries == []
    assert redis.xpending(keys.GLOBAL_EVENTS, "notifier:slack")["pending"] == 0


async def test_a_restarted_notifier_delivers_what_its_predecessor_never_did(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    marker = data_dir / "marker"
    marker.touch()
    service.submit(spec(service, kind="test.steps", marker=str(marker)))
    await asyncio.to_thread(run_queue, service)  # the job ran while no notifier was up
    adapter = RecordingAdapter()
    notifier = Notifier(redis=redis, adapter=adapter, edit_interval=0.1)
    await notifier.start()
    try:
        await _until(
            lambda: any(d.message.tone is Tone.SUCCESS for d in adapter.deliveries), timeout=5, what="final"
        )
    finally:
        await notifier.stop()
    assert [d.kind for d in adapter.deliveries] == ["send"], "one message showing the final state"


async def test_a_job_carries_its_signed_cancel_button_until_it_ends(
    redis_url: str, redis: Redis, data_dir: Path
) -> None:
    service = job_service(job_settings(redis_url, data_dir), redis)
    adapter = RecordingAdapter()
    secret = b"s" * 32
    notifier = Notifier(redis=redis, adapter=adapter, edit_interval=0.05, secret=secret)
    await notifier.start()
    try:
        marker = data_dir / "marker"
        marker.touch()
        record = service.submit(spec(service, kind="test.steps", marker=str(marker)))
        await _until(lambda: adapter.deliveries, timeout=5, what="the queued job's message")
        await asyncio.to_thread(run_queue, service)
        await _until(
            lambda: any(d.message.tone is Tone.SUCCESS for d in adapter.deliveries), timeout=10, what="final"
        )
    finally:
        await notifier.stop()
    messages = [d.message for d in adapter.deliveries]
    before_end = [m for m in messages if m.tone is not Tone.SUCCESS]
    ended = [m for m in messages if m.tone is Tone.SUCCESS]
    assert before_end, "the job was shown before it ended"
    key = job_buttons.derive_key(secret)
    for message in before_end:
        [button] = message.buttons
        assert button.action_id == CANCEL_ACTION
        assert job_buttons.verify(key=key, value=button.value, record=record)
    assert ended and all(m.buttons == () for m in ended), "the button goes when the job ends"

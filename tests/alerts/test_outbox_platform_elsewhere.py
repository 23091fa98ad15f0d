"""An outbox entry for a platform a process does not run is handed back, not dropped (real Valkey).

Two kobot processes share one store: `kobot serve` runs Slack, a terminal `kobot chat` beside it runs
none. Whichever claims an alert's entry first, the Slack channel gets it; an entry no process can
deliver goes only after PLATFORM_ELSEWHERE_ATTEMPTS_MAX hand-backs. The adapter records deliveries in
place of Slack: what is tested is which process delivers, not Slack's wire.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis as AsyncRedis

from alerts import defaults
from alerts.delivery import Deliverer
from alerts.models import Notice
from alerts.store import AlertStore
from kobot.messages import OutgoingMessage
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.bot.recording_adapter import RecordingAdapter

SLACK = RouteTarget(platform="slack", conversation_id="C0OPS")
SECRET = b"s" * 32


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[AsyncRedis, AsyncRedis]]:
    first = AsyncRedis.from_url(redis_url, decode_responses=True)
    second = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        yield first, second
    finally:
        await first.aclose()
        await second.aclose()


def _deliverer(
    redis: AsyncRedis, owner: str, adapters: dict[str, RecordingAdapter], clock: Clock
) -> Deliverer:
    return Deliverer(
        store=AlertStore(redis=redis, owner=owner),
        adapters=adapters,
        secret=SECRET,
        settings=AlertsSettings(),
        clock=clock,
    )


async def _notice(redis: AsyncRedis, clock: Clock, target: RouteTarget = SLACK) -> None:
    notice = Notice(
        notice_id="n1",
        cluster="prod",
        event="job_failed",
        message=OutgoingMessage(title="job 7 failed"),
        targets=[target],
    )
    await AlertStore(redis=redis, owner="writer").add_notice(notice, due=clock.now)


async def test_an_entry_taken_by_a_process_without_its_platform_reaches_the_one_with_it(
    redis_pair: tuple[AsyncRedis, AsyncRedis],
) -> None:
    first, second = redis_pair
    clock = Clock()
    slack = RecordingAdapter(platform="slack")
    terminal = _deliverer(first, "terminal", {}, clock)
    serve = _deliverer(second, "serve", {"slack": slack}, clock)
    await _notice(first, clock)

    assert await terminal.deliver_due() == 1, "the terminal process took the entry first"
    assert await serve.deliver_due() == 0, "handed back for a moment, not at once"
    clock.now += defaults.PLATFORM_ELSEWHERE_RETRY_SECONDS + 0.1
    assert await serve.deliver_due() == 1
    assert [d.message.title for d in slack.deliveries] == ["job 7 failed"]
    assert await AlertStore(redis=first, owner="check").outbox_size() == 0


async def test_an_entry_no_process_can_deliver_is_dropped_only_after_its_hand_backs(
    redis_pair: tuple[AsyncRedis, AsyncRedis], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "PLATFORM_ELSEWHERE_ATTEMPTS_MAX", 3)
    first, _ = redis_pair
    clock = Clock()
    terminal = _deliverer(first, "terminal", {}, clock)
    await _notice(first, clock, RouteTarget(platform="wecom", conversation_id="user:alice"))
    store = AlertStore(redis=first, owner="check")
    for _ in range(2):
        assert await terminal.deliver_due() == 1
        assert await store.outbox_size() == 1
        clock.now += defaults.PLATFORM_ELSEWHERE_RETRY_SECONDS + 0.1
    assert await terminal.deliver_due() == 1
    assert await store.outbox_size() == 0

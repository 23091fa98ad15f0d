"""Two kobot processes sharing one store never take the same due outbox entry (real Valkey)."""

from __future__ import annotations

import time

from redis.asyncio import Redis as AsyncRedis

from alerts import defaults
from alerts.models import Notice
from alerts.store import AlertStore
from kobot.messages import OutgoingMessage
from kobot.settings_alerts import RouteTarget


async def test_due_entries_are_claimed_by_one_process_and_come_back_after_the_claim(redis_url: str) -> None:
    first_redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    second_redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        first, second = AlertStore(redis=first_redis), AlertStore(redis=second_redis)
        now = time.time()
        for n in range(10):
            targets = [RouteTarget(platform="slack", conversation_id=f"C{n}")]
            notice = Notice(
                notice_id=f"n{n}",
                cluster="prod",
                event="job_failed",
                message=OutgoingMessage(title=f"notice {n}"),
                targets=targets,
            )
            await first.add_notice(notice, due=now)
        taken_first = {e.member for e in await first.due(now=now, limit=6)}
        taken_second = {e.member for e in await second.due(now=now, limit=10)}
        assert len(taken_first) == 6 and len(taken_second) == 4
        assert not taken_first & taken_second
        assert await second.due(now=now) == [], "claimed entries are not due for anyone else"
        later = now + defaults.CLAIM_SECONDS + 1
        back = {e.member for e in await second.due(now=later, limit=20)}
        assert back == taken_first | taken_second, "a claim that was never finished hands the entry back"
    finally:
        await first_redis.aclose()
        await second_redis.aclose()

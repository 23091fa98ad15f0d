"""The replay record and the redelivery record of one Slack request: one round trip, exact semantics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from bot.chat.slack import defaults
from bot.chat.slack.guard import Delivery, RequestGuard, event_key, replay_key


@pytest.fixture
async def guard(redis_url: str) -> AsyncIterator[RequestGuard]:
    client = AsyncRedis.from_url(redis_url)
    yield RequestGuard(signing_secret="s3cret", redis=client)
    await client.aclose()


def _script_calls(redis: Redis) -> int:
    stats = redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha"))


async def test_first_delivery_writes_both_records_in_one_round_trip(
    guard: RequestGuard, redis: Redis
) -> None:
    # the process's first call loads the script (EVALSHA refused, then EVAL); every later one is one EVALSHA
    await guard.first_delivery(replay_key("1699999999", "v0=00"), delivery_key=None)
    pair, event = replay_key("1700000000", "v0=aa"), event_key("Ev1")
    redis.config_resetstat()
    assert await guard.first_delivery(pair, delivery_key=event) is Delivery.FIRST
    assert _script_calls(redis) == 1
    assert redis.exists(pair, event) == 2
    assert 0 < int(redis.ttl(pair)) <= defaults.REPLAY_TTL_SECONDS
    assert defaults.REPLAY_TTL_SECONDS < int(redis.ttl(event)) <= defaults.EVENT_ID_TTL_SECONDS


async def test_the_same_pair_again_is_a_replay_elsewhere(guard: RequestGuard, redis: Redis) -> None:
    pair = replay_key("1700000000", "v0=bb")
    assert await guard.first_delivery(pair, delivery_key=event_key("Ev2")) is Delivery.FIRST
    assert await guard.first_delivery(pair, delivery_key=event_key("Ev2")) is Delivery.REPLAYED_ELSEWHERE


async def test_a_replayed_pair_never_marks_its_event_as_seen(guard: RequestGuard, redis: Redis) -> None:
    # another process holds the pair and has not written the event yet: the event stays its to handle
    pair, event = replay_key("1700000000", "v0=cc"), event_key("Ev3")
    redis.set(pair, b"1")
    assert await guard.first_delivery(pair, delivery_key=event) is Delivery.REPLAYED_ELSEWHERE
    assert not redis.exists(event)


async def test_a_new_pair_with_a_handled_event_is_a_redelivery(guard: RequestGuard, redis: Redis) -> None:
    event = event_key("Ev4")
    assert await guard.first_delivery(replay_key("1700000000", "v0=dd"), delivery_key=event) is Delivery.FIRST
    again = await guard.first_delivery(replay_key("1700000001", "v0=ee"), delivery_key=event)
    assert again is Delivery.DELIVERED_AGAIN


async def test_a_request_without_event_id_records_the_pair_alone(guard: RequestGuard, redis: Redis) -> None:
    pair = replay_key("1700000000", "v0=ff")
    assert await guard.first_delivery(pair, delivery_key=None) is Delivery.FIRST
    assert await guard.first_delivery(pair, delivery_key=None) is Delivery.REPLAYED_ELSEWHERE
    assert redis.keys("kobot:slack:event:*") == []

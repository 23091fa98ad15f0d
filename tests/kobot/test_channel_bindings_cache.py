"""A process reads a channel's binding from the store at most once per bound, and never serves a binding
its own bind or unbind replaced; another process (another connection here) sees a change within the bound.
Real Valkey; the store's own command counters say how many reads reached it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from redis import Redis

from kobot.channel_bindings import ChannelBindings
from kobot.defaults import CHANNEL_BINDING_CACHE_SECONDS

ROOM = "slack:C0OPS"


def _gets(redis: Redis) -> int:
    stats = redis.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


@pytest.fixture
def other_process(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    client.close()


def test_repeated_reads_reach_the_store_once(redis: Redis) -> None:
    bindings = ChannelBindings(redis)
    bindings.bind(ROOM, "prod")
    before = _gets(redis)
    assert [ChannelBindings(redis).get(ROOM) for _ in range(50)] == ["prod"] * 50
    assert _gets(redis) - before == 1


def test_bind_and_unbind_in_this_process_are_seen_at_once(redis: Redis) -> None:
    bindings = ChannelBindings(redis)
    assert bindings.get(ROOM) is None
    ChannelBindings(redis).bind(ROOM, "prod")
    assert bindings.get(ROOM) == "prod"
    ChannelBindings(redis).bind(ROOM, "staging")
    assert bindings.get(ROOM) == "staging"
    assert ChannelBindings(redis).unbind(ROOM) == "staging"
    assert bindings.get(ROOM) is None


def test_another_process_sees_a_change_within_the_bound(redis: Redis, other_process: Redis) -> None:
    here = ChannelBindings(redis)
    assert here.get(ROOM) is None
    ChannelBindings(other_process).bind(ROOM, "prod")
    deadline = time.monotonic() + CHANNEL_BINDING_CACHE_SECONDS + 0.5
    while here.get(ROOM) != "prod":
        assert time.monotonic() < deadline, "the binding made elsewhere was not seen within the bound"
        time.sleep(0.05)
    ChannelBindings(other_process).unbind(ROOM)
    deadline = time.monotonic() + CHANNEL_BINDING_CACHE_SECONDS + 0.5
    while here.get(ROOM) is not None:
        assert time.monotonic() < deadline, "the unbind made elsewhere was not seen within the bound"
        time.sleep(0.05)

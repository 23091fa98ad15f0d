"""DingTalk adapter fixtures: a started peer and an adapter (settings from tests.support) feeding a sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from alerts.store import AlertStore
from bot.chat.dingtalk.adapter import DingTalkAdapter
from tests.chat.alert_outbox import outbox_redis
from tests.chat.sinks import RecordingSink
from tests.peers.dingtalk import DingTalkPeer
from tests.support.dingtalk import ROBOT_WINDOW_SECONDS, settings_for


@pytest.fixture
def peer() -> Iterator[DingTalkPeer]:
    with DingTalkPeer(robot_window=ROBOT_WINDOW_SECONDS) as running:
        yield running


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def adapter(peer: DingTalkPeer, redis: Redis, sink: RecordingSink) -> AsyncIterator[DingTalkAdapter]:
    dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=redis)
    await dingtalk.start(sink)
    yield dingtalk
    await dingtalk.stop()


@pytest.fixture
async def plain_adapter(
    peer: DingTalkPeer, redis: Redis, sink: RecordingSink
) -> AsyncIterator[DingTalkAdapter]:
    """No card template: markdown per stage, no buttons."""
    dingtalk = DingTalkAdapter(settings=settings_for(peer, template=False), redis=redis)
    await dingtalk.start(sink)
    yield dingtalk
    await dingtalk.stop()


@pytest.fixture
async def alert_redis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """The alert outbox's connection to the test Valkey."""
    async with outbox_redis(redis_url) as redis:
        yield redis


@pytest.fixture
def store(alert_redis: AsyncRedis) -> AlertStore:
    """The alert outbox, on the test Valkey."""
    return AlertStore(redis=alert_redis)

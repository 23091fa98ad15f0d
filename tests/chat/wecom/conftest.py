"""WeCom fixtures: the local peer, settings (from tests.support) pointing at it, the adapter, its routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from alerts.store import AlertStore
from bot.chat.wecom.adapter import WeComAdapter
from kobot.settings_wecom import WeComSettings
from tests.chat.alert_outbox import outbox_redis
from tests.chat.sinks import RecordingSink
from tests.peers.wecom import WeComPeer
from tests.support.wecom import settings_for


@pytest.fixture
def wecom_peer() -> Iterator[WeComPeer]:
    with WeComPeer().running() as peer:
        yield peer


@pytest.fixture
def wecom_settings(wecom_peer: WeComPeer) -> WeComSettings:
    return settings_for(wecom_peer)


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def adapter(
    wecom_settings: WeComSettings, redis: Redis, sink: RecordingSink
) -> AsyncIterator[WeComAdapter]:
    adapter = WeComAdapter(settings=wecom_settings, redis=redis)
    await adapter.start(sink)
    yield adapter
    await adapter.stop()


@pytest.fixture
async def paced(
    wecom_settings: WeComSettings, redis: Redis, sink: RecordingSink, wecom_peer: WeComPeer
) -> AsyncIterator[WeComAdapter]:
    """The adapter on the peer's clock: its waits move that clock instead of passing real time."""
    adapter = WeComAdapter(settings=wecom_settings, redis=redis, clock=wecom_peer.now, sleep=wecom_peer.sleep)
    await adapter.start(sink)
    yield adapter
    await adapter.stop()


@pytest.fixture
async def http(adapter: WeComAdapter) -> AsyncIterator[httpx.AsyncClient]:
    """The adapter's routes mounted the way create_app mounts them, called over ASGI."""
    app = FastAPI()
    router = adapter.router()
    app.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kobot.test"
    ) as client:
        yield client


@pytest.fixture
async def alert_redis(redis_url: str) -> AsyncIterator[AsyncRedis]:
    """The alert outbox's connection to the test Valkey."""
    async with outbox_redis(redis_url) as redis:
        yield redis


@pytest.fixture
def store(alert_redis: AsyncRedis) -> AlertStore:
    """The alert outbox, on the test Valkey."""
    return AlertStore(redis=alert_redis)

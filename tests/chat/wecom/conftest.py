"""WeCom fixtures: the local peer, settings pointing at it, the adapter, and its routes behind ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis import Redis

from bot.chat.wecom.adapter import WeComAdapter
from kobot.settings_wecom import WeComSettings
from tests.chat.sinks import RecordingSink
from tests.peers.wecom import WeComPeer


@pytest.fixture
def wecom_peer() -> Iterator[WeComPeer]:
    with WeComPeer().running() as peer:
        yield peer


def settings_for(peer: WeComPeer, **overrides: object) -> WeComSettings:
    values: dict[str, object] = {
        "corp_id": peer.corp_id,
        "agent_id": peer.agent_id,
        "secret": SecretStr(peer.secret),
        "token": SecretStr(peer.token),
        "encoding_aes_key": SecretStr(peer.encoding_aes_key),
        "smart_bot_token": SecretStr(peer.smart_bot_token),
        "smart_bot_encoding_aes_key": SecretStr(peer.smart_bot_aes_key),
        "robot_webhook_key": SecretStr(peer.robot_key),
        "api_base_url": peer.base_url,
    }
    return WeComSettings.model_validate({**values, **overrides})


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
async def http(adapter: WeComAdapter) -> AsyncIterator[httpx.AsyncClient]:
    """The adapter's routes mounted the way create_app mounts them, called over ASGI."""
    app = FastAPI()
    router = adapter.router()
    app.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kobot.test"
    ) as client:
        yield client

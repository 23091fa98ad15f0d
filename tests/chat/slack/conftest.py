"""Slack adapter fixtures: a started peer and an adapter (settings from tests.support) feeding a sink."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.api_direct import DirectCallbacksApp
from bot.chat.slack.adapter import SlackAdapter
from tests.chat.sinks import RecordingSink
from tests.peers.slack import SlackPeer
from tests.support.slack import settings_for


@pytest.fixture
def signing_secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with SlackPeer(
        bot_token=f"xoxb-{secrets.token_hex(12)}", app_token=f"xapp-{secrets.token_hex(12)}"
    ) as running:
        yield running


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
async def adapter(
    peer: SlackPeer, signing_secret: str, redis_url: str, sink: RecordingSink
) -> AsyncIterator[SlackAdapter]:
    slack = SlackAdapter(settings=settings_for(peer, signing_secret), redis_url=redis_url)
    await slack.start(sink)
    yield slack
    await slack.stop()


@pytest.fixture
async def http(adapter: SlackAdapter) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app that mounts the adapter's router as create_app does: its events are
    answered at the app's entry, the path production requests take."""
    app = DirectCallbacksApp()
    router = adapter.router()
    assert router is not None
    app.include_callbacks(router)
    assert app.direct_paths == {"/slack/events"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kobot.test"
    ) as client:
        yield client

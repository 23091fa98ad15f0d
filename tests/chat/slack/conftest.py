"""Slack adapter fixtures: a started peer, settings pointing at it, an adapter feeding a recording sink."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from bot.chat.slack.adapter import SlackAdapter
from kobot.settings_slack import SlackSettings
from tests.chat.sinks import RecordingSink
from tests.peers.slack import SlackPeer


@pytest.fixture
def signing_secret() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with SlackPeer(
        bot_token=f"xoxb-{secrets.token_hex(12)}", app_token=f"xapp-{secrets.token_hex(12)}"
    ) as running:
        yield running


def settings_for(
    peer: SlackPeer, signing_secret: str, *, socket_mode: bool = False, budget: float | None = None
) -> SlackSettings:
    """Settings pointing at the peer; the rate-limit budget is the production default unless given."""
    settings = SlackSettings(
        bot_token=SecretStr(peer.bot_token),
        signing_secret=SecretStr(signing_secret),
        app_token=SecretStr(peer.app_token) if socket_mode and peer.app_token else None,
        api_base_url=peer.api_url,
    )
    return settings if budget is None else settings.model_copy(update={"rate_limit_budget_seconds": budget})


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
    """An HTTP client for the app that mounts the adapter's router, as create_app does."""
    app = FastAPI()
    router = adapter.router()
    assert router is not None
    app.include_router(router)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kobot.test"
    ) as client:
        yield client

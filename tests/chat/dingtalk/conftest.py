"""DingTalk adapter fixtures: a started peer, settings pointing at it, an adapter feeding a recording sink."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from redis import Redis

from bot.chat.dingtalk.adapter import DingTalkAdapter
from kobot.settings_dingtalk import DingTalkRobot, DingTalkSettings
from tests.chat.sinks import RecordingSink
from tests.peers.dingtalk import DingTalkPeer

TEMPLATE_ID = "kobot.progress.schema"
ROBOT_WINDOW_SECONDS = 1.0
"""The peer and the adapter share a shortened budget window so a burst runs in seconds."""


def settings_for(
    peer: DingTalkPeer,
    *,
    template: bool = True,
    client_secret: str | None = None,
    robot_secret: str | None = None,
    budget: int = 20,
    **extra: Any,
) -> DingTalkSettings:
    token, secret = next(iter(peer.robots.items()))
    return DingTalkSettings(
        client_id=peer.client_id,
        client_secret=SecretStr(client_secret or peer.client_secret),
        card_template_id=TEMPLATE_ID if template else None,
        openapi_endpoint=peer.endpoint,
        robots={
            "ops": DingTalkRobot(
                webhook_url=SecretStr(peer.robot_webhook_url(token)), secret=SecretStr(robot_secret or secret)
            )
        },
        robot_budget_per_window=budget,
        robot_budget_window_seconds=ROBOT_WINDOW_SECONDS,
        **extra,
    )


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

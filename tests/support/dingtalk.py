"""kobot's DingTalk settings pointing at a running `DingTalkPeer`."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from kobot.settings_dingtalk import DingTalkRobot, DingTalkSettings
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

"""kobot's Slack settings pointing at a running `SlackPeer`, the peer itself, and a signed mention."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator

import httpx
from pydantic import SecretStr

from bot.chat.slack.defaults import EVENTS_PATH
from kobot.settings_slack import SlackSettings
from tests.peers.slack import SlackPeer, event_callback, mention_event, signed_headers


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


@contextlib.contextmanager
def running_slack_peer() -> Iterator[SlackPeer]:
    """A started Slack peer with fresh bot and app tokens."""
    with SlackPeer(
        bot_token=f"xoxb-{secrets.token_hex(12)}", app_token=f"xapp-{secrets.token_hex(12)}"
    ) as peer:
        yield peer


async def post_mention(
    kobot: httpx.AsyncClient, *, signing_secret: str, text: str, user: str, channel: str = "C0OPS"
) -> str:
    """`@kobot text` from `user` in `channel`, signed as Slack signs it; kobot must take it (200). Returns
    the message's ts, which kobot's reply threads under."""
    event = mention_event(text=f"<@U0KOBOT> {text}", user=user, channel=channel)
    body = json.dumps(event_callback(event)).encode()
    headers = {"Content-Type": "application/json", **signed_headers(signing_secret=signing_secret, body=body)}
    assert (await kobot.post(EVENTS_PATH, content=body, headers=headers)).status_code == 200
    return str(event["ts"])

"""kobot's Slack settings pointing at a running `SlackPeer`."""

from __future__ import annotations

from pydantic import SecretStr

from kobot.settings_slack import SlackSettings
from tests.peers.slack import SlackPeer


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

"""Slack settings: present only when the team uses Slack."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr


class SlackSettings(BaseModel):
    """Bot token and signing secret; an app token switches to Socket Mode."""

    bot_token: SecretStr
    signing_secret: SecretStr
    app_token: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    """Only tests point this elsewhere (a local peer speaking Slack's Web API)."""

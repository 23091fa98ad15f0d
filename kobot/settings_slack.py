"""Slack settings: present only when the team uses Slack."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

RATE_LIMIT_BUDGET_SECONDS = 120.0
"""Total time one call may spend waiting out 429s before DeliveryError hands the retry to the caller."""


class SlackSettings(BaseModel):
    """Bot token and signing secret; an app token switches to Socket Mode."""

    bot_token: SecretStr
    signing_secret: SecretStr
    app_token: SecretStr | None = None
    api_base_url: str = "https://slack.com/api/"
    """Only tests point this elsewhere (a local peer speaking Slack's Web API)."""
    rate_limit_budget_seconds: float = Field(default=RATE_LIMIT_BUDGET_SECONDS, gt=0, le=3600)
    """How long one message may wait out Slack's 429s before the caller is told to retry later."""

"""DingTalk settings: present only when the team uses DingTalk."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr


class DingTalkSettings(BaseModel):
    """Stream-mode app credentials, optional card template and custom robot."""

    client_id: str
    client_secret: SecretStr
    robot_code: str | None = None
    card_template_id: str | None = None
    robot_webhook_url: SecretStr | None = None
    robot_secret: SecretStr | None = None
    openapi_endpoint: str = "https://api.dingtalk.com"
    """Only tests point this elsewhere (a local peer speaking DingTalk's Open API and stream gateway)."""

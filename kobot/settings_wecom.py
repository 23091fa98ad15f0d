"""WeCom (企业微信) settings: present only when the team uses WeCom."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class WeComSettings(BaseModel):
    """Self-built app credentials and callback crypto; optional smart bot and group robot."""

    corp_id: str
    agent_id: int
    secret: SecretStr
    token: SecretStr
    encoding_aes_key: SecretStr
    smart_bot_token: SecretStr | None = None
    smart_bot_encoding_aes_key: SecretStr | None = None
    robot_webhook_key: SecretStr | None = None
    api_base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    """Only tests point this elsewhere (a local peer speaking WeCom's API)."""
    robot_webhooks: dict[str, SecretStr] = Field(default_factory=dict)
    """Named group robots (`robot:<name>` conversations) → webhook key; `robot_webhook_key` is `default`."""
    smart_bot_routes: dict[str, str] = Field(default_factory=dict)
    """Smart-bot group chat id → conversation id (`appchat:<id>` or `robot:<name>`) for messages posted after
    the one-use reply URL of the @-mention is spent (job progress, final state)."""

"""DingTalk settings: present only when the team uses DingTalk."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, model_validator

ROBOT_BUDGET_PER_WINDOW = 20
"""A custom robot may post this many messages per window (errcode 130101 beyond)."""

ROBOT_BUDGET_WINDOW_SECONDS = 60.0
"""The window of the custom robot budget."""


class DingTalkRobot(BaseModel):
    """A custom group robot (webhook plus its signing secret) used for notifications."""

    webhook_url: SecretStr
    """`https://oapi.dingtalk.com/robot/send?access_token=...`: the token makes the URL a secret."""
    secret: SecretStr
    """The robot's 加签 secret (SEC...); every post is signed with it."""


class DingTalkSettings(BaseModel):
    """Stream-mode app credentials, optional card template and custom robot."""

    client_id: str
    client_secret: SecretStr
    robot_code: str | None = None
    card_template_id: str | None = None
    """A card template the team designed in the developer console. Unset, kobot uses the public
    Markdown-with-buttons card template the dingtalk-stream SDK itself uses: progress is still one card edited
    in place, with approve/deny buttons, and no console step is needed."""
    robot_webhook_url: SecretStr | None = None
    robot_secret: SecretStr | None = None
    openapi_endpoint: str = "https://api.dingtalk.com"
    """Only tests point this elsewhere (a local peer speaking DingTalk's Open API and stream gateway)."""
    robots: dict[str, DingTalkRobot] = Field(default_factory=dict)
    """Named custom robots; conversation id `robot:<name>` posts through one. The pair
    robot_webhook_url/robot_secret is the robot named `default`."""
    robot_budget_per_window: int = Field(default=ROBOT_BUDGET_PER_WINDOW, ge=1, le=1000)
    """Posts a custom robot may make per window (DingTalk allows 20 a minute)."""
    robot_budget_window_seconds: float = Field(default=ROBOT_BUDGET_WINDOW_SECONDS, gt=0, le=3600)
    """Only tests shorten this, to run a burst through the budget quickly."""

    @model_validator(mode="after")
    def _robot_pair(self) -> DingTalkSettings:
        """A robot webhook without its secret would post unsigned; refuse the half-configured pair."""
        if (self.robot_webhook_url is None) != (self.robot_secret is None):
            raise ValueError("robot_webhook_url and robot_secret must be set together")
        return self

    def all_robots(self) -> dict[str, DingTalkRobot]:
        """Every configured robot by name, the top-level pair as `default`."""
        robots = dict(self.robots)
        if self.robot_webhook_url is not None and self.robot_secret is not None:
            robots.setdefault(
                "default", DingTalkRobot(webhook_url=self.robot_webhook_url, secret=self.robot_secret)
            )
        return robots

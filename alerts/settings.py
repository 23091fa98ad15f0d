"""Alerts settings: webhook auth, the Alertmanager API for silences, and the routes.

Routes are checked when settings load (a bad regex or time names its route), so a typo stops the
start instead of silently dropping alerts.
"""

from __future__ import annotations

import re
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from alerts import defaults


class RouteTarget(BaseModel):
    """A conversation alerts go to: `platform` names an adapter (slack, dingtalk, wecom, terminal)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    platform: str = Field(min_length=1)
    conversation_id: str = Field(min_length=1)
    thread_id: str | None = None

    @property
    def key(self) -> str:
        thread = f"/{self.thread_id}" if self.thread_id else ""
        return f"{self.platform}:{self.conversation_id}{thread}"


class TimeWindow(BaseModel):
    """Hours (and weekdays, 0 = Monday) a route is active; `start` > `end` wraps past midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
    timezone: str = "UTC"

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(day < 0 or day > 6 for day in value):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday), at least one")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class AlertRoute(BaseModel):
    """Which alerts go where. Every condition must hold for at least one alert of the group.

    `match` compares labels for equality, `match_re` with a full regular-expression match (a missing
    label is the empty string, as in Alertmanager). `min_severity` uses `severity_order`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    min_severity: str | None = None
    active: list[TimeWindow] = Field(default_factory=list)
    """Empty means always; otherwise the route applies only inside one of the windows."""
    targets: list[RouteTarget] = Field(min_length=1)
    stop: bool = False
    """When true, later routes are not looked at once this one matched."""

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"label {label}: bad regular expression {pattern!r}: {exc}") from exc
        return value


class AlertsSettings(BaseModel):
    """Everything the alerts package can be told (KOBOT_ALERTS__... or `alerts:` in the config file)."""

    model_config = ConfigDict(extra="forbid")

    webhook_bearer_token: SecretStr | None = None
    """When set, the webhook requires `Authorization: Bearer <token>` (Alertmanager's
    `http_config.authorization.credentials`)."""
    webhook_username: str | None = None
    webhook_password: SecretStr | None = None
    """When both are set, the webhook also accepts HTTP basic auth (`http_config.basic_auth`)."""
    alertmanager_url: str | None = None
    """Base URL of Alertmanager's API for silences; the webhook's `externalURL` is used when unset."""
    alertmanager_bearer_token: SecretStr | None = None
    routes: list[AlertRoute] = Field(default_factory=list)
    default_targets: list[RouteTarget] = Field(default_factory=list)
    """Where a group goes when no route and no chat subscription matched it."""
    severity_order: tuple[str, ...] = defaults.DEFAULT_SEVERITY_ORDER
    grafana_url: str | None = None
    """Base Grafana URL; with it a group whose alerts carry a `dashboard_uid` annotation gets a link."""

    @model_validator(mode="after")
    def _consistent(self) -> AlertsSettings:
        if (self.webhook_username is None) != (self.webhook_password is None):
            raise ValueError("webhook_username and webhook_password go together")
        if self.webhook_password is not None and not self.webhook_password.get_secret_value():
            raise ValueError("webhook_password must not be empty")
        if self.webhook_bearer_token is not None and not self.webhook_bearer_token.get_secret_value():
            raise ValueError("webhook_bearer_token must not be empty")
        names = [route.name for route in self.routes]
        if len(names) != len(set(names)):
            raise ValueError("route names must be unique")
        for route in self.routes:
            if route.min_severity is not None and route.min_severity not in self.severity_order:
                raise ValueError(
                    f"route {route.name}: min_severity {route.min_severity!r} not in severity_order"
                )
        return self

    @property
    def auth_required(self) -> bool:
        return self.webhook_bearer_token is not None or self.webhook_username is not None

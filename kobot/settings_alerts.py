"""Alerts settings: webhook auth, the Alertmanager API for silences, the routes and the runbook commands.

Routes and runbook templates are checked when settings load (a bad regex, time or placeholder names its
route or template), so a typo stops the start instead of silently dropping alerts.
"""

from __future__ import annotations

import re
import string
from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kobot.patterns import PatternError, compile_pattern

RUNBOOK_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
"""A runbook template id, as an alert's `kobot_runbook` annotation names it."""

PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A `{placeholder}` of a runbook template: the name of an alert label."""

_FORMATTER = string.Formatter()


DEFAULT_SEVERITY_ORDER = ("info", "warning", "error", "critical")
"""Lowest first; `severity>=warning` matches warning and everything after it. Unknown severities
rank with the lowest."""

RUNBOOK_TEMPLATES_MAX = 100
"""Runbook command templates an admin may configure."""

RUNBOOK_TEMPLATE_MAX_CHARS = 200
"""Longest runbook command template (`runbook_commands`); a command is one chat line."""


def placeholders_of(template: str) -> tuple[str, ...]:
    """The label names a runbook template asks for, in order; ValueError says what is wrong with it."""
    names: list[str] = []
    try:
        pieces = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ValueError(f"unbalanced braces ({exc})") from None
    for literal, name, spec, conversion in pieces:
        if "{" in literal or "}" in literal:
            raise ValueError("braces are only for {label} placeholders")
        if name is None:
            continue
        if not PLACEHOLDER.fullmatch(name) or spec or conversion:
            raise ValueError(
                f"placeholder {{{name}}} must be a plain label name, like {{node}} or {{cluster}}"
            )
        names.append(name)
    return tuple(names)


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
                compile_pattern(pattern)
            except PatternError as exc:
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
    severity_order: tuple[str, ...] = DEFAULT_SEVERITY_ORDER
    grafana_url: str | None = None
    """Base Grafana URL; with it a group whose alerts carry a `dashboard_uid` annotation gets a link."""
    allow_unauthenticated: bool = False
    """Accept webhook posts without credentials even when `kobot serve` listens beyond loopback
    (`http_host`). Anyone who reaches the port can then post alerts; kobot logs a warning at start."""
    runbook_commands: dict[str, str] = Field(default_factory=dict)
    """Run runbook templates by id, e.g. `{"cordon-node": "cordon node {node} on {cluster}"}`. An alert
    names one with its `kobot_runbook` annotation; `{label}` placeholders are filled from labels the
    whole group shares. Empty (the default): no Run runbook button at all."""

    @field_validator("runbook_commands")
    @classmethod
    def _runbook_templates(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > RUNBOOK_TEMPLATES_MAX:
            raise ValueError(f"at most {RUNBOOK_TEMPLATES_MAX} runbook commands, got {len(value)}")
        for template_id, template in value.items():
            where = f"runbook command {template_id!r}"
            if not RUNBOOK_ID.fullmatch(template_id):
                raise ValueError(f"{where}: an id is lowercase letters, digits and '-' (like cordon-node)")
            if not template.strip() or len(template) > RUNBOOK_TEMPLATE_MAX_CHARS:
                raise ValueError(f"{where}: 1 to {RUNBOOK_TEMPLATE_MAX_CHARS} characters")
            if any(ch in template for ch in "\"'`\n\r"):
                raise ValueError(f"{where}: no quotes or line breaks (kobot quotes each filled-in value)")
            try:
                placeholders_of(template)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        return value

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

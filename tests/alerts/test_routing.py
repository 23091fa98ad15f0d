"""Routes from settings: equality and regex on any label, severity ordering, time windows, default."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from alerts.routing import Subscription, in_window, route_group
from kobot.errors import SettingsError
from kobot.settings import load_settings
from kobot.settings_alerts import AlertRoute, AlertsSettings, RouteTarget, TimeWindow

SLACK_PROD = RouteTarget(platform="slack", conversation_id="C-PROD")
WECOM_ONCALL = RouteTarget(platform="wecom", conversation_id="oncall")
TERMINAL = RouteTarget(platform="terminal", conversation_id="console")
MONDAY_NOON = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _settings(**extra: object) -> AlertsSettings:
    return AlertsSettings.model_validate(
        {
            "routes": [
                {
                    "name": "prod-critical",
                    "match_re": {"cluster": "prod-.*"},
                    "min_severity": "critical",
                    "targets": [WECOM_ONCALL.model_dump()],
                },
                {
                    "name": "platform-team",
                    "match": {"team": "platform"},
                    "match_re": {"namespace": "kube-.*|monitoring"},
                    "targets": [SLACK_PROD.model_dump()],
                },
            ],
            "default_targets": [TERMINAL.model_dump()],
            **extra,
        }
    )


def _route(
    labels: list[dict[str, str]], settings: AlertsSettings | None = None, now: datetime = MONDAY_NOON
) -> list[str]:
    chosen = route_group(settings=settings or _settings(), subscriptions=[], alert_labels=labels, now=now)
    return [t.key for t in chosen]


def test_regex_and_severity_ordering() -> None:
    assert _route([{"cluster": "prod-eu", "severity": "critical"}]) == [WECOM_ONCALL.key]
    assert _route([{"cluster": "prod-eu", "severity": "warning"}]) == [TERMINAL.key], (
        "below the route's floor"
    )
    assert _route([{"cluster": "xprod-eu", "severity": "critical"}]) == [TERMINAL.key], (
        "regex is a full match"
    )
    assert _route(
        [{"cluster": "prod-eu", "severity": "warning"}, {"cluster": "prod-eu", "severity": "critical"}]
    ) == [WECOM_ONCALL.key], "one matching alert of the group is enough"


def test_equality_and_regex_on_any_label_and_several_routes() -> None:
    labels = {"cluster": "prod-us", "severity": "critical", "team": "platform", "namespace": "kube-system"}
    assert _route([labels]) == [WECOM_ONCALL.key, SLACK_PROD.key]
    assert _route([{**labels, "namespace": "default"}]) == [WECOM_ONCALL.key]
    assert _route([{**labels, "team": "apps", "severity": "info"}]) == [TERMINAL.key]


def test_stop_ends_the_search() -> None:
    settings = _settings()
    stopping = settings.routes[0].model_copy(update={"stop": True})
    settings = settings.model_copy(update={"routes": [stopping, settings.routes[1]]})
    labels = {"cluster": "prod-us", "severity": "critical", "team": "platform", "namespace": "kube-system"}
    assert _route([labels], settings) == [WECOM_ONCALL.key]


def test_time_windows_including_past_midnight_and_weekdays() -> None:
    night = TimeWindow(start=time(22, 0), end=time(6, 0), weekdays=(0, 1, 2, 3, 4))
    assert in_window(night, datetime(2026, 1, 5, 23, 0, tzinfo=UTC))  # Monday evening
    assert in_window(night, datetime(2026, 1, 6, 5, 59, tzinfo=UTC))  # Tuesday early, started Monday
    assert not in_window(night, datetime(2026, 1, 5, 5, 0, tzinfo=UTC))  # Monday early: started Sunday
    assert not in_window(night, MONDAY_NOON)
    shanghai = TimeWindow(start=time(9, 0), end=time(18, 0), timezone="Asia/Shanghai")
    assert in_window(shanghai, datetime(2026, 1, 5, 2, 0, tzinfo=UTC))  # 10:00 in Shanghai
    assert not in_window(shanghai, MONDAY_NOON)  # 20:00 in Shanghai
    office = AlertRoute(name="office", match={}, active=[shanghai], targets=[SLACK_PROD])
    settings = AlertsSettings(routes=[office], default_targets=[TERMINAL])
    assert _route([{"a": "b"}], settings, datetime(2026, 1, 5, 2, 0, tzinfo=UTC)) == [SLACK_PROD.key]
    assert _route([{"a": "b"}], settings, MONDAY_NOON) == [TERMINAL.key]


def test_chat_subscriptions_add_targets_and_suppress_the_default() -> None:
    sub = Subscription(target=SLACK_PROD, cluster="staging", min_severity="warning")
    everything = Subscription(target=WECOM_ONCALL, cluster="*")
    settings = AlertsSettings(default_targets=[TERMINAL])
    chosen = route_group(
        settings=settings, subscriptions=[sub], alert_labels=[{"cluster": "staging", "severity": "error"}]
    )
    assert chosen == [SLACK_PROD]
    chosen = route_group(
        settings=settings, subscriptions=[sub], alert_labels=[{"cluster": "staging", "severity": "info"}]
    )
    assert chosen == [TERMINAL]
    chosen = route_group(
        settings=settings, subscriptions=[sub, everything], alert_labels=[{"cluster": "dev"}]
    )
    assert chosen == [WECOM_ONCALL]


def test_bad_routes_stop_the_start_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match="KOBOT_ALERTS__ROUTES"):
        load_settings(
            alerts={
                "routes": [{"name": "x", "match_re": {"cluster": "(["}, "targets": [TERMINAL.model_dump()]}]
            }
        )
    with pytest.raises(SettingsError, match="min_severity"):
        load_settings(
            alerts={"routes": [{"name": "x", "min_severity": "loud", "targets": [TERMINAL.model_dump()]}]}
        )
    with pytest.raises(SettingsError, match="time zone"):
        window = {"start": "09:00", "end": "17:00", "timezone": "Mars/Olympus"}
        load_settings(
            alerts={"routes": [{"name": "x", "active": [window], "targets": [TERMINAL.model_dump()]}]}
        )
    with pytest.raises(SettingsError, match="go together"):
        load_settings(alerts={"webhook_username": "am"})

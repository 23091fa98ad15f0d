"""The Alertmanager webhook against an unauthenticated, hostile sender.

Attacks: kobot listened on 0.0.0.0 with an open webhook; 20 posts of 8 MB grew Redis by 168 MB and
posted fake critical alerts; a route regex `(a+)+b` met a long label and held the event loop 9 s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from alerts import defaults, keys
from alerts.metrics import ALERTS_DROPPED, DropReason
from alerts.models import AlertGroupState
from kobot.errors import SettingsError
from kobot.patterns import ROUTE_REGEX_MAX_CHARS
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings
from tests.alerts.conftest import OPS, KobotServer, dumps, run_kobot, serve, wait_for, webhook_body
from tests.alerts.recorder import PLATFORM, ChatRecorder, RecorderAdapter


def _settings(redis_url: str, data_dir: Path, *, host: str, alerts: AlertsSettings) -> Settings:
    return Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        in_process_worker=False,
        http_host=host,
        alerts=alerts,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.7", "kobot.example.com"])
def test_an_open_webhook_beyond_loopback_stops_the_start(host: str, redis_url: str, data_dir: Path) -> None:
    from bot.app import create_app

    with pytest.raises(SettingsError, match="KOBOT_ALERTS__WEBHOOK_BEARER_TOKEN") as refused:
        create_app(_settings(redis_url, data_dir, host=host, alerts=AlertsSettings()))
    assert "KOBOT_ALERTS__ALLOW_UNAUTHENTICATED" in refused.value.user_message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LOCALHOST."])
def test_loopback_only_needs_no_webhook_credentials(host: str, redis_url: str, data_dir: Path) -> None:
    from bot.app import create_app

    create_app(_settings(redis_url, data_dir, host=host, alerts=AlertsSettings()))


def test_explicit_opt_out_starts_with_a_warning(
    redis_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app import create_app

    with caplog.at_level(logging.WARNING, logger="alerts.service"):
        create_app(
            _settings(redis_url, data_dir, host="0.0.0.0", alerts=AlertsSettings(allow_unauthenticated=True))
        )
    assert any("without credentials" in record.getMessage() for record in caplog.records)


def test_exposed_app_refuses_unauthenticated_alerts_over_http(
    redis_url: str, data_dir: Path, redis: Any
) -> None:
    from bot.app import create_app

    token = "t" * 32
    alerts = AlertsSettings(webhook_bearer_token=SecretStr(token), default_targets=[OPS])
    with serve(create_app(_settings(redis_url, data_dir, host="0.0.0.0", alerts=alerts))) as url:
        forged = httpx.post(f"{url}{defaults.WEBHOOK_PATH}", json=webhook_body(), timeout=10)
        assert forged.status_code == 401
        assert not list(redis.scan_iter("kobot:alerts:group:*"))
        signed = {"Authorization": f"Bearer {token}"}
        assert (
            httpx.post(f"{url}{defaults.WEBHOOK_PATH}", json=webhook_body(), headers=signed).status_code
            == 200
        )


def test_a_body_over_the_cap_is_refused_before_it_reaches_redis(kobot: KobotServer, redis: Any) -> None:
    used = redis.info("memory")["used_memory"]
    body = webhook_body()
    body["alerts"][0]["annotations"]["summary"] = "x" * (defaults.WEBHOOK_MAX_BYTES + 1)
    for _ in range(5):
        assert kobot.post_webhook(dumps(body)).status_code == 413
    assert not list(redis.scan_iter("kobot:alerts:group:*"))
    assert redis.info("memory")["used_memory"] - used < 1024 * 1024


def _stored(redis: Redis, group_id: str) -> AlertGroupState:
    raw = redis.hget(keys.group(group_id), "state")
    assert raw is not None
    return AlertGroupState.model_validate_json(raw)


def test_alerts_kept_per_group_are_capped_firing_first(
    kobot: KobotServer, redis: Any, recorder: ChatRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "ALERTS_KEPT_PER_GROUP", 5)
    before = ALERTS_DROPPED.labels(reason=DropReason.ALERTS_OVER_GROUP_LIMIT.value)._value.get()
    body = webhook_body(fingerprints=tuple(f"a{i}" for i in range(8)))
    for alert in body["alerts"][:2]:
        alert.update(status="resolved", endsAt="2026-01-01T10:17:00Z")
    body["alerts"][2]["annotations"]["huge_unread"] = "y" * 50_000
    group = kobot.post_webhook(body).json()["group"]
    state = _stored(redis, group)
    assert len(state.alerts) == 5
    assert all(alert.status.value == "firing" for alert in state.alerts)
    assert state.truncated_alerts == 1, "one firing alert left out counts as +1 more"
    assert all("huge_unread" not in alert.annotations for alert in state.alerts)
    after = ALERTS_DROPPED.labels(reason=DropReason.ALERTS_OVER_GROUP_LIMIT.value)._value.get()
    assert after - before == 3
    message = wait_for(lambda: recorder.posts, what="the capped group's message")[0]
    assert "firing · 6 alerts" in message["text"]


def test_groups_kept_are_capped_resolved_first_then_new_ones_refused(
    kobot: KobotServer, redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "GROUPS_KEPT_MAX", 3)
    refused_before = ALERTS_DROPPED.labels(reason=DropReason.GROUP_REFUSED.value)._value.get()
    ids = [kobot.post_webhook(webhook_body(group=f"g{i}")).json()["group"] for i in range(3)]
    over = kobot.post_webhook(webhook_body(group="g3"))
    assert over.status_code == 429
    assert "not stored" in over.json()["error"]
    assert ALERTS_DROPPED.labels(reason=DropReason.GROUP_REFUSED.value)._value.get() == refused_before + 1
    assert kobot.post_webhook(webhook_body(group="g0", status="resolved")).status_code == 200
    assert kobot.post_webhook(webhook_body(group="g1")).json()["status"] == "duplicate", "updates still land"
    newest = kobot.post_webhook(webhook_body(group="g3"))
    assert newest.status_code == 200
    assert redis.exists(keys.group(ids[0])) == 0, "the resolved group made room"
    assert redis.zcard(keys.GROUPS_FIRING) + redis.zcard(keys.GROUPS_RESOLVED) == 3


def test_a_backtracking_route_regex_cannot_hold_the_loop(
    redis_url: str, recorder: ChatRecorder, data_dir: Path
) -> None:
    route = {"name": "evil", "match_re": {"node": "(a+)+b"}, "targets": [OPS.model_dump()]}
    settings = AlertsSettings(routes=[route], default_targets=[OPS])  # type: ignore[list-item]
    adapters = {PLATFORM: RecorderAdapter(url=recorder.url)}
    with run_kobot(redis_url=redis_url, adapters=adapters, alerts=settings, data_dir=data_dir) as kobot:
        body = webhook_body()
        body["alerts"][0]["labels"]["node"] = "a" * 60
        started = time.monotonic()
        assert kobot.post_webhook(body).status_code == 200
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=a)a", "a" * (ROUTE_REGEX_MAX_CHARS + 1)])
def test_route_patterns_a_linear_engine_cannot_run_are_refused_at_load(pattern: str) -> None:
    route = {"name": "r", "match_re": {"node": pattern}, "targets": [OPS.model_dump()]}
    with pytest.raises(ValueError, match="label node: bad regular expression"):
        AlertsSettings(routes=[route])  # type: ignore[list-item]

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
from alerts.metrics import DropReason, alerts_dropped
from alerts.models import AlertGroupState
from kobot.errors import SettingsError
from kobot.patterns import ROUTE_REGEX_MAX_CHARS
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings
from tests.peers.recorder import PLATFORM, ChatRecorder, RecorderAdapter
from tests.support.alertmanager import dumps, webhook_body
from tests.support.alerts_server import OPS, KobotServer, run_kobot
from tests.support.asgi import serve
from tests.support.waiting import wait_for


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

    with caplog.at_level(logging.WARNING, logger="alerts.exposure"):
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
    before = alerts_dropped().labels(reason=DropReason.ALERTS_OVER_GROUP_LIMIT.value)._value.get()
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
    after = alerts_dropped().labels(reason=DropReason.ALERTS_OVER_GROUP_LIMIT.value)._value.get()
    assert after - before == 3
    message = wait_for(lambda: recorder.posts, what="the capped group's message")[0]
    assert "firing · 6 alerts" in message["text"]


def test_groups_kept_are_capped_resolved_first_then_new_ones_refused(
    kobot: KobotServer, redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(defaults, "GROUPS_KEPT_MAX", 3)
    refused_before = alerts_dropped().labels(reason=DropReason.GROUP_REFUSED.value)._value.get()
    ids = [kobot.post_webhook(webhook_body(group=f"g{i}")).json()["group"] for i in range(3)]
    over = kobot.post_webhook(webhook_body(group="g3"))
    assert over.status_code == 429
    assert "not stored" in over.json()["error"]
    assert alerts_dropped().labels(reason=DropReason.GROUP_REFUSED.value)._value.get() == refused_before + 1
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


def _dropped(reason: DropReason) -> float:
    return float(alerts_dropped().labels(reason=reason.value)._value.get())


def test_labels_kept_are_capped_in_count_and_length(
    kobot: KobotServer, redis: Any, recorder: ChatRecorder
) -> None:
    before = _dropped(DropReason.LABELS_OVER_ALERT_LIMIT)
    body = webhook_body()
    alert_labels = body["alerts"][0]["labels"]
    alert_labels.update({f"{'l' * 300}{i:03d}": "v" for i in range(40)})
    alert_labels.update({f"x{i:03d}": "v" * 1500 for i in range(120)})
    alert_labels["zz_long"] = "w" * 200_000
    body["commonLabels"].update({f"c{i:03d}": "v" * 1500 for i in range(100)})
    posted = dumps(body)
    assert len(posted) < defaults.WEBHOOK_MAX_BYTES, (
        "the body itself is accepted; what is kept of it is capped"
    )
    group = kobot.post_webhook(posted).json()["group"]
    raw = redis.hget(keys.group(group), "state")
    state = AlertGroupState.model_validate_json(raw)
    labels = state.alerts[0].labels
    assert len(labels) == defaults.LABELS_KEPT_PER_ALERT
    assert {k: labels[k] for k in ("alertname", "cluster", "severity", "node")} == {
        "alertname": "KubeNodeNotReady",
        "cluster": "prod",
        "severity": "critical",
        "node": "n-a1",
    }, "the labels a message is made from stay"
    assert len(state.common_labels) == defaults.LABELS_KEPT_PER_ALERT
    assert state.common_labels["cluster"] == "prod"
    for kept in (labels, state.common_labels):
        assert max(len(name) for name in kept) <= defaults.LABEL_NAME_MAX_CHARS
        assert max(len(value) for value in kept.values()) <= defaults.LABEL_VALUE_MAX_CHARS
    assert len(raw) < len(posted) / 3
    over = (4 + 40 + 120 + 1 - defaults.LABELS_KEPT_PER_ALERT) + (3 + 100 - defaults.LABELS_KEPT_PER_ALERT)
    assert _dropped(DropReason.LABELS_OVER_ALERT_LIMIT) - before == over
    message = wait_for(lambda: recorder.posts, what="the clipped group's message")[0]
    assert "w" * (defaults.LABEL_VALUE_MAX_CHARS + 1) not in message["text"]


def _padded(group: str, *, status: str = "firing", alerts: int = 4) -> dict[str, Any]:
    body = webhook_body(group=group, status=status, fingerprints=tuple(f"a{i}" for i in range(alerts)))
    for alert in body["alerts"]:
        alert["annotations"]["description"] = "d" * 1000
    return body


def _bytes_kept(redis: Redis) -> int:
    """What the stored group states take, read from Redis itself (not from kobot's own accounting)."""
    ids = [*redis.zrange(keys.GROUPS_FIRING, 0, -1), *redis.zrange(keys.GROUPS_RESOLVED, 0, -1)]
    return sum(int(redis.hstrlen(keys.group(group_id.decode()), "state")) for group_id in ids)


def test_bytes_kept_are_capped_resolved_first_then_new_or_growing_groups_refused(
    kobot: KobotServer, redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    g0 = kobot.post_webhook(_padded("g0")).json()["group"]
    size = int(redis.hstrlen(keys.group(g0), "state"))
    monkeypatch.setattr(defaults, "GROUP_BYTES_KEPT_MAX", int(size * 3.5))
    refused_before = _dropped(DropReason.GROUP_BYTES_REFUSED)
    evicted_before = _dropped(DropReason.RESOLVED_GROUP_EVICTED)
    g1, g2 = (kobot.post_webhook(_padded(name)).json()["group"] for name in ("g1", "g2"))

    over = kobot.post_webhook(_padded("g3"))
    assert over.status_code == 429
    assert "size limit" in over.json()["error"]
    assert redis.zcard(keys.GROUPS_FIRING) == 3, "the new group was not stored"
    grown = kobot.post_webhook(_padded("g1", alerts=8))
    assert grown.status_code == 429, "a firing group cannot grow past the cap either"
    assert len(_stored(redis, g1).alerts) == 4
    assert _dropped(DropReason.GROUP_BYTES_REFUSED) - refused_before == 2
    assert _bytes_kept(redis) <= defaults.GROUP_BYTES_KEPT_MAX

    assert kobot.post_webhook(_padded("g0", status="resolved")).status_code == 200
    g3 = kobot.post_webhook(_padded("g3"))
    assert g3.status_code == 200
    assert redis.exists(keys.group(g0)) == 0, "the resolved group made room"
    assert _dropped(DropReason.RESOLVED_GROUP_EVICTED) - evicted_before == 1
    assert _bytes_kept(redis) <= defaults.GROUP_BYTES_KEPT_MAX

    resolved = kobot.post_webhook(_padded("g1", status="resolved", alerts=8))
    assert resolved.status_code == 200, "a resolve always lands, even one that grows the group"
    assert _stored(redis, g1).status.value == "resolved"
    assert kobot.post_webhook(_padded("g4")).status_code == 200
    assert redis.exists(keys.group(g1)) == 0
    assert all(redis.exists(keys.group(g)) for g in (g2, g3.json()["group"])), "firing groups stay"
    assert _bytes_kept(redis) <= defaults.GROUP_BYTES_KEPT_MAX


def test_the_alert_bytes_cap_is_well_below_the_store_memory_limit_and_binds() -> None:
    from kobot import defaults as kobot_defaults

    assert kobot_defaults.VALKEY_MAXMEMORY_DEFAULT == "1gb"
    assert defaults.GROUP_BYTES_KEPT_MAX * 4 <= 1024**3
    assert defaults.GROUPS_KEPT_MAX * defaults.WEBHOOK_MAX_BYTES > defaults.GROUP_BYTES_KEPT_MAX


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_an_open_webhook_on_loopback_starts_with_a_reverse_proxy_warning(
    host: str, redis_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app import create_app

    with caplog.at_level(logging.WARNING, logger="alerts.exposure"):
        create_app(_settings(redis_url, data_dir, host=host, alerts=AlertsSettings()))
    warnings = [r.getMessage() for r in caplog.records if r.name == "alerts.exposure"]
    assert any(
        "reverse proxy" in text
        and defaults.WEBHOOK_PATH in text
        and "post alerts" in text
        and "KOBOT_ALERTS__WEBHOOK_BEARER_TOKEN" in text
        for text in warnings
    ), warnings


def test_a_webhook_with_credentials_on_loopback_starts_without_the_warning(
    redis_url: str, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app import create_app

    alerts = AlertsSettings(webhook_bearer_token=SecretStr("t" * 32))
    with caplog.at_level(logging.WARNING, logger="alerts.exposure"):
        create_app(_settings(redis_url, data_dir, host="127.0.0.1", alerts=alerts))
    assert not [
        r for r in caplog.records if r.name == "alerts.exposure" and "reverse proxy" in r.getMessage()
    ]

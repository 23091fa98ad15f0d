"""Chat-managed routes and the message center: commands typed in the chat, then alerts and events
delivered to the conversations that asked (and only those), across a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

import alerts.commands  # noqa: F401  (attaches the handlers)
from commands.context import CommandContext, Reply
from commands.parser import parse
from commands.registry import spec_of, typed_args
from kobot.conversations import Conversation, Identity
from kobot.messages import OutgoingMessage, Tone
from kobot.settings import Settings
from kobot.settings_alerts import AlertsSettings
from kobot.store import Store
from tests.peers.recorder import PLATFORM, ChatRecorder, RecorderAdapter
from tests.support.alertmanager import webhook_body
from tests.support.alerts_server import AlertsRuntime, run_kobot
from tests.support.waiting import wait_for

BOB = Identity(platform=PLATFORM, user_id="U2", display_name="Bob")


def _say(runtime: AlertsRuntime, conversation_id: str, text: str) -> OutgoingMessage:
    """Run a typed command through the real parser and the attached handler."""
    import asyncio

    parsed = parse(text)
    conversation = Conversation(platform=PLATFORM, conversation_id=conversation_id)
    ctx = CommandContext(runtime=runtime, identity=BOB, conversation=conversation, parsed=parsed, text=text)  # type: ignore[arg-type]
    handler = spec_of(parsed).handler
    assert handler is not None, f"no handler attached to {parsed.command}"
    result = asyncio.run(handler(ctx, typed_args(parsed)))
    assert isinstance(result, Reply)
    return result.message


def _runtime(redis_url: str, redis: Any, data_dir: Path) -> AlertsRuntime:
    settings = Settings(redis_url=SecretStr(redis_url), data_dir=data_dir)
    return AlertsRuntime(settings=settings, store=Store(url=redis_url), secret=b"k" * 32, redis=redis)


def _body(cluster: str, severity: str, group: str) -> dict[str, Any]:
    body = webhook_body(group=group)
    for alert in body["alerts"]:
        alert["labels"].update(cluster=cluster, severity=severity)
    body["commonLabels"].update(cluster=cluster, severity=severity)
    body["groupLabels"]["cluster"] = cluster
    return body


def test_subscribe_alerts_from_chat_routes_by_cluster_and_severity_across_restart(
    redis_url: str, redis: Any, recorder: ChatRecorder, data_dir: Path
) -> None:
    runtime = _runtime(redis_url, redis, data_dir)
    assert "critical" in _say(runtime, "team-a", "subscribe alerts prod severity=critical").status
    assert _say(runtime, "team-b", "订阅告警 staging").title == "Alerts of staging will be posted here"
    adapters = {PLATFORM: RecorderAdapter(url=recorder.url)}
    with run_kobot(
        redis_url=redis_url, adapters=adapters, alerts=AlertsSettings(), data_dir=data_dir
    ) as kobot:
        kobot.post_webhook(_body("prod", "warning", "w"))
        kobot.post_webhook(_body("prod", "critical", "c"))
        kobot.post_webhook(_body("staging", "warning", "s"))
        kobot.post_webhook(_body("dev", "critical", "d"))
        wait_for(lambda: len(recorder.posts) >= 2, what="two routed groups")
    where = sorted((p["conversation"], p["title"]) for p in recorder.posts)
    assert where == [
        ("team-a", "[critical] prod · KubeNodeNotReady"),
        ("team-b", "[warning] staging · KubeNodeNotReady"),
    ]

    stop = _say(runtime, "team-a", "unsubscribe alerts prod")
    assert stop.status == "unsubscribed"
    assert _say(runtime, "team-a", "unsubscribe alerts prod").tone is Tone.INFO
    narrowed = _say(runtime, "team-b", "unsubscribe alerts staging severity=warning")
    assert "below error" in narrowed.title
    with run_kobot(
        redis_url=redis_url, adapters=adapters, alerts=AlertsSettings(), data_dir=data_dir
    ) as kobot:
        kobot.post_webhook(_body("prod", "critical", "c2"))
        kobot.post_webhook(_body("staging", "warning", "s2"))
        kobot.post_webhook(_body("staging", "critical", "s3"))
        wait_for(lambda: len(recorder.posts) >= 3, what="the remaining subscription")
    assert recorder.posts[2]["conversation"] == "team-b"
    assert recorder.posts[2]["title"] == "[critical] staging · KubeNodeNotReady"
    assert len(recorder.posts) == 3


def test_notify_subscriptions_receive_cluster_events(
    redis_url: str, redis: Any, recorder: ChatRecorder, data_dir: Path
) -> None:
    runtime = _runtime(redis_url, redis, data_dir)
    assert "job_failed" in _say(runtime, "ops", "notify prod events=job,backup").status
    _say(runtime, "nodes", "notify prod node")
    # `all` holds health notices, which ask the policy for kubectl:* (no policy runs here)
    _say(runtime, "everything", "notify staging job,approval,backup,node,certificate")
    adapters = {PLATFORM: RecorderAdapter(url=recorder.url)}
    with run_kobot(
        redis_url=redis_url, adapters=adapters, alerts=AlertsSettings(), data_dir=data_dir
    ) as kobot:
        recorder.down = True
        failed = OutgoingMessage(title="Job 42 · upgrade prod failed", tone=Tone.DANGER)
        kobot.call(kobot.service.publish_cluster_event(cluster="prod", event="job_failed", message=failed))
        wait_for(lambda: recorder.refused >= 1, what="a refused delivery")
        recorder.down = False
        node = OutgoingMessage(title="prod-w2 NotReady", tone=Tone.WARNING)
        kobot.call(kobot.service.publish_cluster_event(cluster="prod", event="node_not_ready", message=node))
        cert = OutgoingMessage(title="certificates expire in 20 days", tone=Tone.WARNING)
        kobot.call(
            kobot.service.publish_cluster_event(cluster="prod", event="cert_expiry_near", message=cert)
        )
        wait_for(lambda: len(recorder.posts) >= 2, what="two notices")
    got = sorted((p["conversation"], p["title"]) for p in recorder.posts)
    assert got == [("nodes", "prod-w2 NotReady"), ("ops", "Job 42 · upgrade prod failed")]

    replaced = _say(runtime, "ops", "notify prod certificate")
    assert replaced.status == "cert_expiry_near"


def test_notify_replacing_a_channels_events_says_what_stops_and_how_to_keep_it(
    redis_url: str, redis: Any, data_dir: Path
) -> None:
    """`notify` replaces the channel's list (that is how a channel narrows it); a replacement that drops
    notices says so and gives the command that keeps both, never losing them silently."""
    runtime = _runtime(redis_url, redis, data_dir)
    first = _say(runtime, "ops", "notify prod node here")
    assert (first.tone, first.fields) == (Tone.SUCCESS, ())
    same = _say(runtime, "ops", "notify prod node here")
    assert (same.tone, same.fields) == (Tone.SUCCESS, ()), "nothing dropped, nothing to say"

    replaced = _say(runtime, "ops", "notify prod approvals here")
    assert replaced.status == "approval_needed" and replaced.tone is Tone.WARNING
    said = {f.label: f.value for f in replaced.fields}
    assert said["No longer posted here"] == "node_not_ready, node_ready, node_health_worsened"
    assert said["To keep them too"] == "notify prod approval,node here"

    both = _say(runtime, "ops", said["To keep them too"])
    assert (both.tone, both.fields) == (Tone.SUCCESS, ())
    assert set(both.status.split(", ")) == {
        "approval_needed",
        "node_not_ready",
        "node_ready",
        "node_health_worsened",
    }
    assert _say(runtime, "other", "notify prod job here").fields == (), "another channel keeps its own"

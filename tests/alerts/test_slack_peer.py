"""Alerts through the real Slack SDK against the local Slack peer, with the real Alertmanager.

The first test drives the Slack adapter from the alert service alone; the second runs kobot as
deployed (`create_app`): Alertmanager posts, the peer receives Block Kit, a signed button click comes
back through Bolt and the dispatcher, and the silence appears in Alertmanager.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.peers.slack import PeerMessage, SlackPeer, block_actions, interactive_body, signed_headers
from tests.support.alertmanager import am_alert, run_alertmanager
from tests.support.alerts_server import run_kobot
from tests.support.asgi import serve
from tests.support.slack import settings_for
from tests.support.waiting import wait_for

OPS = RouteTarget(platform="slack", conversation_id="C0OPS")


def _buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                found[element["text"]["text"]] = element
    return found


def _shown(message: PeerMessage) -> str:
    """What the channel shows now: the last edit, or the original post."""
    latest = message.edits[-1] if message.edits else {"text": message.text, "blocks": message.blocks}
    return json.dumps(latest, ensure_ascii=False)


def test_alert_group_posted_and_edited_through_slack_sdk_peer(
    peer: SlackPeer, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    slack = SlackAdapter(settings=settings_for(peer, secrets.token_hex(16)), redis_url=redis_url)
    settings = AlertsSettings(default_targets=[OPS])
    peer.rate_limit(seconds=3, retry_after=1)
    with (
        run_kobot(
            redis_url=redis_url, adapters={"slack": slack}, alerts=settings, data_dir=data_dir
        ) as kobot,
        run_alertmanager(
            webhook_url=f"{kobot.url}/alerts/alertmanager", token=kobot.token, work_dir=tmp_path / "am"
        ) as am,
    ):
        am.post_alerts([am_alert("KubeNodeNotReady", instance="prod-w2")])
        posted = wait_for(peer.posted, what="chat.postMessage at the peer")
        message = posted[0]
        assert message.channel == "C0OPS"
        assert "[critical] prod · KubeNodeNotReady" in _shown(message)
        assert set(_buttons(message.blocks)) == {"Silence 1h", "Silence 4h", "Silence 24h", "Ack"}
        assert 429 in {call.status for call in peer.requests_to("chat.postMessage")}, "the rate limit was met"

        am.post_alerts(
            [am_alert("KubeNodeNotReady", instance="prod-w2", ends_at=datetime.now(UTC).isoformat())]
        )
        wait_for(
            lambda: "[resolved] prod · KubeNodeNotReady" in _shown(peer.posted()[0]), what="resolved edit"
        )
        assert len(peer.posted()) == 1
        assert peer.requests_to("chat.update")[-1].body["ts"] == message.ts


def test_deployed_app_click_silences_in_alertmanager_peer(
    peer: SlackPeer, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    from bot.app import create_app
    from kobot.settings import Settings

    signing_secret = secrets.token_hex(16)
    token = secrets.token_urlsafe(24)
    policy = tmp_path / "policy.yaml"
    policy.write_text('version: 1\nbindings:\n  - role: operator\n    subjects: ["slack:U0BOB"]\n')
    settings = Settings(
        redis_url=SecretStr(redis_url),
        data_dir=data_dir,
        policy_file=policy,
        in_process_worker=False,
        slack=settings_for(peer, signing_secret),
        alerts=AlertsSettings(default_targets=[OPS], webhook_bearer_token=SecretStr(token)),
    )
    app = create_app(settings)
    with (
        serve(app) as url,
        run_alertmanager(
            webhook_url=f"{url}/alerts/alertmanager", token=token, work_dir=tmp_path / "am"
        ) as am,
    ):
        am.post_alerts([am_alert("EtcdHighFsyncDurations", instance="prod-m1")])
        message = wait_for(peer.posted, what="alert at the peer")[0]
        silence = _buttons(message.blocks)["Silence 4h"]
        viewer = block_actions(
            action_id=silence["action_id"], value=silence["value"], message_ts=message.ts, user="U0ALICE"
        )
        body = interactive_body(viewer)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(signing_secret=signing_secret, body=body),
        }
        assert httpx.post(f"{url}{EVENTS_PATH}", content=body, headers=headers, timeout=10).status_code == 200
        wait_for(lambda: any("alerts.silence" in m.text for m in peer.posted()), what="the viewer's refusal")
        assert am.silences() == [], "a viewer cannot silence"

        payload = block_actions(action_id=silence["action_id"], value=silence["value"], message_ts=message.ts)
        body = interactive_body(payload)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(signing_secret=signing_secret, body=body),
        }
        assert httpx.post(f"{url}{EVENTS_PATH}", content=body, headers=headers, timeout=10).status_code == 200

        silences = wait_for(am.silences, what="silence in Alertmanager")
        assert silences[0]["createdBy"] in {"Bob Stone", "bob", "U0BOB"}
        matchers = {m["name"]: m["value"] for m in silences[0]["matchers"]}
        assert matchers == {"alertname": "EtcdHighFsyncDurations", "cluster": "prod"}
        wait_for(lambda: any("Silenced for 4h" in m.text for m in peer.posted()), what="reply to the clicker")
        wait_for(lambda: "Silenced" in _shown(peer.posted()[0]), what="the alert message shows the silence")

        forged = block_actions(action_id="alert.ack", value=silence["value"], message_ts=message.ts)
        body = interactive_body(forged)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(signing_secret=signing_secret, body=body),
        }
        httpx.post(f"{url}{EVENTS_PATH}", content=body, headers=headers, timeout=10)
        wait_for(
            lambda: any("Alert action refused" in m.text for m in peer.posted()), what="forged click refused"
        )

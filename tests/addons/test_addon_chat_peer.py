"""Addons from chat, as deployed: `create_app` with Slack at the Slack peer, the cluster at the Kubernetes
API peer, charts from the offline repository over loopback, the job on kobot's in-process RQ worker.

`install monitoring on prod` is queued, runs and ends in one message with the links and where Grafana's
password is stored (never the password); then the Alertmanager configuration that install rendered runs
in the real Alertmanager binary and an alert from prod reaches the channel subscribed to prod.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import SecretStr
from redis import Redis

from bot.app import create_app
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.clusters import ClusterRecord, ClusterState, ClusterStore
from kobot.settings import Settings
from kobot.settings_addons import AddonSettings
from kobot.settings_alerts import AlertsSettings
from kobot.store import secret_key
from tests.addons.chart_server import ChartRepository
from tests.peers.kubernetes import KubernetesApiPeer
from tests.peers.slack import (
    PeerMessage,
    SlackPeer,
    block_actions,
    event_callback,
    interactive_body,
    mention_event,
    signed_headers,
)
from tests.support.alertmanager import am_alert, run_alertmanager_with
from tests.support.asgi import serve
from tests.support.network import LOOPBACK, free_port
from tests.support.slack import settings_for
from tests.support.waiting import wait_for
from workers.addons.releases import ReleaseStore
from workers.cluster_secrets import KUBECONFIG_SECRET, ClusterSecrets

POLICY = """
version: 1
bindings:
  - role: operator
    subjects: ["slack:U0ALICE"]
  - role: admin
    subjects: ["slack:U0BOB"]
"""
MIRROR = "registry.prod.test:5000"
INSTALL_SECONDS = 120.0
"""Longest the monitoring install (fetch, render in a child process, ~130 applies) may take here."""
ALERT_SECONDS = 30.0
"""Longest an alert may take from Alertmanager's API to the Slack peer (group_wait is cut to 1s)."""


@dataclass
class Kobot:
    url: str
    slack: SlackPeer
    kube: KubernetesApiPeer
    signing_secret: str
    token: str
    redis: Redis

    def say(self, text: str, *, channel: str = "C0OPS") -> dict[str, Any]:
        event = mention_event(text=f"<@U0KOBOT> {text}", user="U0ALICE", channel=channel)
        body = json.dumps(event_callback(event)).encode()
        headers = {
            "Content-Type": "application/json",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        response = httpx.post(f"{self.url}{EVENTS_PATH}", content=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return event

    def click(self, *, action_id: str, value: str, message_ts: str, user: str) -> None:
        body = interactive_body(
            block_actions(action_id=action_id, value=value, message_ts=message_ts, user=user)
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        response = httpx.post(f"{self.url}{EVENTS_PATH}", content=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text

    def thread(self, event: dict[str, Any]) -> list[PeerMessage]:
        return [m for m in self.slack.posted() if m.thread_ts == event["ts"]]


@pytest.fixture
def kobot(redis_url: str, redis: Redis, data_dir: Path, chart_repository: ChartRepository) -> Iterator[Kobot]:
    signing_secret = secrets.token_hex(16)
    token = secrets.token_urlsafe(24)
    port = free_port()
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    with (
        SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as slack,
        KubernetesApiPeer() as kube,
    ):
        settings = Settings(
            policy_file=policy,
            redis_url=SecretStr(redis_url),
            data_dir=data_dir,
            slack=settings_for(slack, signing_secret),
            progress_edit_interval=0,
            alerts=AlertsSettings(webhook_bearer_token=SecretStr(token)),
            addons=AddonSettings(
                chart_repository=chart_repository.url,
                image_registry=MIRROR,
                # how prod's Alertmanager reaches kobot: here, kobot's own loopback port
                kobot_webhook_url=f"http://{LOOPBACK}:{port}/alerts/alertmanager",
            ),
        )
        ClusterStore(redis).save(ClusterRecord(name="prod", state=ClusterState.RUNNING, version="1.31.4"))
        ClusterSecrets(redis=redis, secret=secret_key(settings)).put(
            cluster="prod",
            name=KUBECONFIG_SECRET,
            value=kube.write_kubeconfig(data_dir / "peer.conf").read_bytes(),
        )
        (data_dir / "peer.conf").unlink()
        kube.add_node("prod-worker-1")
        with serve(create_app(settings), port=port) as url:
            yield Kobot(
                url=url, slack=slack, kube=kube, signing_secret=signing_secret, token=token, redis=redis
            )


def shown(message: PeerMessage) -> str:
    """What the channel shows now: the last edit, or the original post, text and blocks."""
    latest = message.edits[-1] if message.edits else {"text": message.text, "blocks": message.blocks}
    return json.dumps(latest, ensure_ascii=False)


def everything_posted(slack: SlackPeer) -> str:
    """Every post and every edit the peer received, as sent."""
    calls = [*slack.requests_to("chat.postMessage"), *slack.requests_to("chat.update")]
    return json.dumps([call.body for call in calls], ensure_ascii=False)


def install_monitoring(kobot: Kobot) -> PeerMessage:
    event = kobot.say("install monitoring on prod")
    wait_for(
        lambda: any(m.text.startswith(("✅", "❌")) for m in kobot.thread(event)),
        timeout=INSTALL_SECONDS,
        what="the install job's final message",
    )
    [final] = kobot.thread(event)
    assert final.text.startswith("✅ Job"), final.text
    return final


def rendered_object(kube: KubernetesApiPeer, label: str) -> dict[str, Any]:
    return kube.applied()[label]


def test_install_monitoring_from_chat_runs_the_job_and_ends_with_links_and_where_the_password_is_peer(
    kobot: Kobot,
) -> None:
    final = install_monitoring(kobot)
    text = shown(final)
    assert "succeeded" in text
    assert "kubectl -n monitoring port-forward svc/monitoring-grafana 80" in text
    assert "svc/monitoring-kube-prometheus-prometheus 9090" in text
    assert "Secret monitoring/monitoring-grafana (key admin-password)" in text
    assert final.edits and {e["ts"] for e in final.edits} == {final.ts}, "progress is one message, edited"

    # the job ran: the release is recorded and prod holds what it applied
    [record] = ReleaseStore(kobot.redis).installed(cluster="prod")
    assert record.addon == "monitoring" and record.chart_version == "88.5.3"
    assert "Deployment monitoring/monitoring-grafana" in kobot.kube.applied()

    password = base64.b64decode(
        rendered_object(kobot.kube, "Secret monitoring/monitoring-grafana")["data"]["admin-password"]
    ).decode()
    assert len(password) >= 20
    posted = everything_posted(kobot.slack)
    assert password not in posted and base64.b64encode(password.encode()).decode() not in posted
    assert kobot.token not in posted, "kobot's webhook token stays in prod's Secret"


def test_the_rendered_alertmanager_config_brings_prod_alerts_to_the_subscribed_channel_peer(
    kobot: Kobot, tmp_path: Path
) -> None:
    subscribed = kobot.say("subscribe alerts prod", channel="C0PROD")
    wait_for(lambda: kobot.thread(subscribed), what="the subscription's answer")
    install_monitoring(kobot)

    secret = rendered_object(
        kobot.kube, "Secret monitoring/alertmanager-monitoring-kube-prometheus-alertmanager"
    )
    config = yaml.safe_load(base64.b64decode(secret["data"]["alertmanager.yaml"]))
    [hook] = next(r for r in config["receivers"] if r["name"] == config["route"]["receiver"])[
        "webhook_configs"
    ]
    assert hook["url"] == f"{kobot.url}/alerts/alertmanager"
    assert hook["http_config"]["authorization"] == {"type": "Bearer", "credentials": kobot.token}
    # Only the timing is cut (30s group_wait would only slow the test); receivers and routes run as rendered.
    config["route"].update(group_wait="1s", group_interval="1s")
    with run_alertmanager_with(config=config, work_dir=tmp_path / "am") as alertmanager:
        # as prod's Prometheus sends it: its external label names the cluster
        alertmanager.post_alerts([am_alert("KubePodCrashLooping", cluster="prod", namespace="shop")])
        alertmanager.post_alerts([am_alert("Watchdog", cluster="prod")])
        alert = wait_for(
            lambda: [m for m in kobot.slack.posted() if "KubePodCrashLooping" in shown(m)],
            timeout=ALERT_SECONDS,
            what="the alert in the subscribed channel",
        )[0]
        receivers = {
            a["labels"]["alertname"]: [r["name"] for r in a["receivers"]] for a in alertmanager.alerts()
        }
    assert alert.channel == "C0PROD"
    assert "[critical] prod · KubePodCrashLooping" in shown(alert)
    # the rendered route: everything to kobot, the always-firing Watchdog to nowhere
    assert receivers == {"KubePodCrashLooping": ["kobot"], "Watchdog": ["null"]}
    assert not [m for m in kobot.slack.posted() if "Watchdog" in shown(m)]


def reply_to(kobot: Kobot, text: str) -> str:
    event = kobot.say(text)
    wait_for(lambda: kobot.thread(event), what=f"the answer to {text!r}")
    return shown(kobot.thread(event)[0])


def test_the_app_store_lists_shows_and_installs_a_chart_of_the_repository_peer(kobot: Kobot) -> None:
    listed = reply_to(kobot, "list apps")
    assert "App store: 11 charts" in listed and "valkey" in listed and "0.11.0" in listed
    shown_app = reply_to(kobot, "show app valkey")
    assert "App valkey" in shown_app and "9.1.1" in shown_app
    assert "did you mean valkey?" in reply_to(kobot, "show app valkee")
    assert "has no version 9.9.9; the repository has 0.11.0" in reply_to(
        kobot, "install app valkey 9.9.9 on prod"
    )
    assert "is not a value to set" in reply_to(kobot, "install app valkey --set =1 on prod")

    event = kobot.say("install app valkey 0.11.0 --set service.port=6380 on prod")
    wait_for(
        lambda: any(m.text.startswith(("✅", "❌")) for m in kobot.thread(event)),
        timeout=INSTALL_SECONDS,
        what="the app install's final message",
    )
    [final] = kobot.thread(event)
    assert final.text.startswith("✅ Job"), final.text
    assert "valkey 0.11.0 runs in namespace valkey as release app-valkey" in final.text

    record = ReleaseStore(kobot.redis).get(cluster="prod", addon="app-valkey")
    assert record is not None and record.user_values == {"service.port": "6380"}
    applied = kobot.kube.applied()
    service = applied["Service valkey/app-valkey"]
    assert [p["port"] for p in service["spec"]["ports"]] == [6380]
    assert record.images and all(i.startswith(f"{MIRROR}/") for i in record.images), record.images
    assert {str(ref) for ref in record.objects} == {
        label
        for label, body in applied.items()
        if (body["metadata"].get("labels") or {}).get("kobot.io/addon") == "app-valkey"
    }
    assert "Namespace valkey" in applied
    releases = reply_to(kobot, "list releases on prod")
    assert "app-valkey" in releases and "valkey 0.11.0 · namespace valkey · 5 objects" in releases

    # uninstall is risky: an admin approves it on the card, then the job removes what the app applied
    event = kobot.say("uninstall app valkey on prod")
    [card] = wait_for(lambda: kobot.thread(event), what="the approval card")
    assert "delete the 5 objects valkey applied (namespace valkey)" in shown(card)
    [actions] = [block for block in card.blocks if block["type"] == "actions"]
    approve = actions["elements"][0]
    kobot.click(action_id=approve["action_id"], value=approve["value"], message_ts=card.ts, user="U0BOB")
    wait_for(
        lambda: any(m.text.startswith("✅ Job") for m in kobot.thread(event)),
        timeout=INSTALL_SECONDS,
        what="the app uninstall's final message",
    )
    assert ReleaseStore(kobot.redis).get(cluster="prod", addon="app-valkey") is None
    assert not [label for label in kobot.kube.applied() if "valkey" in label]

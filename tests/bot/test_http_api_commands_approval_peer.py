"""A REST command that needs approval: the request goes to the cluster's approval channel (a Slack channel
at the Slack peer, subscribed with `notify guarded approvals`), an admin approves it there, and the REST
caller follows the approval to the job it runs as. kobot runs whole (create_app) under uvicorn on
loopback; the click comes in signed over HTTP as Slack sends it."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from alerts.subscriptions import ClusterEvent, NotifySubscription, save_notify_subscription
from bot.app import create_app
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.settings import Settings
from kobot.settings_alerts import RouteTarget
from tests.peers.slack import PeerMessage, SlackPeer, block_actions, interactive_body, signed_headers
from tests.support.asgi import serve
from tests.support.slack import settings_for
from tests.support.waiting import wait_for
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

CI_TOKEN = "ci-" + "c" * 40
CI = {"Authorization": f"Bearer {CI_TOKEN}"}
OUTSIDER_TOKEN = "outsider-" + "o" * 40
"""An API user bound to another cluster: it may not follow guarded's approvals."""
APPROVAL_CHANNEL = "C0APPROVE"

POLICY = f"""
version: 1
bindings:
  - role: operator
    subjects: ["api:ci"]
    clusters: ["guarded"]
  - role: admin
    subjects: ["slack:U0BOB"]
  - role: viewer
    subjects: ["api:outsider"]
    clusters: ["elsewhere"]
approvals:
  - commands: ["test.steps"]
    clusters: ["guarded"]
    approvals: 1
    approver_role: admin
api_users:
  ci:
    token_sha256: "{hashlib.sha256(CI_TOKEN.encode()).hexdigest()}"
  outsider:
    token_sha256: "{hashlib.sha256(OUTSIDER_TOKEN.encode()).hexdigest()}"
"""


class Kobot:
    def __init__(self, http: httpx.Client, peer: SlackPeer, signing_secret: str) -> None:
        self.http, self.peer, self.signing_secret = http, peer, signing_secret

    def click(self, card: PeerMessage, label: str, *, user: str) -> httpx.Response:
        [actions] = [block for block in card.blocks if block["type"] == "actions"]
        button = next(b for b in actions["elements"] if b["text"]["text"] == label)
        body = interactive_body(
            block_actions(
                action_id=button["action_id"],
                value=button["value"],
                message_ts=card.ts,
                user=user,
                channel=card.channel,
            )
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(signing_secret=self.signing_secret, body=body),
        }
        return self.http.post(EVENTS_PATH, content=body, headers=headers)


@pytest.fixture
def kobot(redis_url: str, redis: Redis, data_dir: Path) -> Iterator[Kobot]:
    signing_secret = secrets.token_hex(16)
    policy = data_dir / "policy.yaml"
    policy.write_text(POLICY)
    save_notify_subscription(
        redis,
        NotifySubscription(
            target=RouteTarget(platform="slack", conversation_id=APPROVAL_CHANNEL),
            cluster="guarded",
            events=(ClusterEvent.APPROVAL_NEEDED,),
        ),
    )
    with SlackPeer(bot_token=f"xoxb-{secrets.token_hex(12)}") as peer:
        settings = Settings(
            redis_url=SecretStr(redis_url),
            data_dir=data_dir,
            policy_file=policy,
            slack=settings_for(peer, signing_secret),
            playbooks_dir=FIXTURE_PLAYBOOKS,
            plugins=["tests.fixtures.operations"],
            in_process_worker=False,
        )
        with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as http:
            yield Kobot(http, peer, signing_secret)


def approval_cards(peer: SlackPeer) -> list[PeerMessage]:
    return [
        m
        for m in peer.posted()
        if m.channel == APPROVAL_CHANNEL and any(block["type"] == "actions" for block in m.blocks)
    ]


def test_peer_rest_approval_is_asked_in_the_clusters_channel_and_followed_to_the_job(kobot: Kobot) -> None:
    response = kobot.http.post(
        "/api/v1/commands", json={"text": "test steps guarded marker=/nonexistent"}, headers=CI
    )
    assert response.status_code == 202, response.text
    approval = response.json()["approval"]
    assert approval["approval_channels"] == [f"slack:{APPROVAL_CHANNEL}"]
    assert response.json()["job_id"] is None

    [card] = wait_for(lambda: approval_cards(kobot.peer) or None, what="the card in the approval channel")
    assert "test steps guarded" in card.text or any("guarded" in str(b) for b in card.blocks)
    pending = kobot.http.get(f"/api/v1/approvals/{approval['id']}", headers=CI)
    assert pending.status_code == 200 and pending.json()["status"] == "pending"
    assert pending.json()["job_id"] is None

    assert kobot.click(card, "Approve", user="U0BOB").status_code == 200

    def followed() -> str | None:
        answer = kobot.http.get(f"/api/v1/approvals/{approval['id']}", headers=CI).json()
        return answer["job_id"] if answer["status"] == "approved" else None

    job_id = wait_for(followed, what="the approved request's job")
    job = kobot.http.get(f"/api/v1/jobs/{job_id}", headers=CI).json()
    assert job["spec"]["requested_by"]["user_id"] == "ci" and job["spec"]["requested_by"]["platform"] == "api"
    assert job["spec"]["command_text"] == "test steps guarded marker=/nonexistent"
    # the REST caller's own copy of the card is no Slack message: Slack is never asked to edit it
    assert all(call.body.get("channel") != "rest" for call in kobot.peer.requests_to("chat.update"))
    # nor is anything posted for REST callers anywhere but in their HTTP answers
    assert all(m.channel == APPROVAL_CHANNEL for m in kobot.peer.posted())


def test_peer_following_an_approval_needs_the_clusters_job_status_right(kobot: Kobot) -> None:
    response = kobot.http.post(
        "/api/v1/commands", json={"text": "test steps guarded marker=/nonexistent"}, headers=CI
    )
    request_id = response.json()["approval"]["id"]
    assert kobot.http.get(f"/api/v1/approvals/{request_id}").status_code == 401
    outsider = {"Authorization": f"Bearer {OUTSIDER_TOKEN}"}
    refused = kobot.http.get(f"/api/v1/approvals/{request_id}", headers=outsider)
    assert refused.status_code == 403 and "guarded" in refused.json()["detail"], refused.text
    assert kobot.http.get("/api/v1/approvals/999", headers=CI).status_code == 404
    assert kobot.http.get("/api/v1/approvals/..%2Fx", headers=CI).status_code in (404, 422)

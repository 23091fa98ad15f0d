"""A firing group shows one DingTalk custom-robot post however long it fires (real Valkey, the alert
outbox's real Deliverer on the peer's clock, kobot's adapter against the DingTalk peer).

A custom robot cannot edit: every update is a new post. The alert text follows the group, not the clock,
and the adapter posts nothing when an update would post what the robot already showed; a new alert in
the group and the resolve are new posts as before. A group's card is still edited in place.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis as AsyncRedis

from alerts.delivery import Deliverer
from alerts.models import AlertmanagerWebhook
from alerts.store import AlertStore
from bot.chat.dingtalk.adapter import DingTalkAdapter
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.peers.dingtalk import DingTalkPeer
from tests.support.alertmanager import webhook_body

ROBOT = RouteTarget(platform="dingtalk", conversation_id="robot:ops")
GROUP = "cidAlertsProd01"
SPACE = f"dtv1.card//IM_GROUP.{GROUP}"
SETTINGS = AlertsSettings(default_targets=[ROBOT, RouteTarget(platform="dingtalk", conversation_id=GROUP)])
MINUTES_FIRING = 5
"""How many simulated minutes the group fires, re-rendered once a minute, before anything changes."""


def _body(*fingerprints: str, status: str = "firing", description: str = "") -> AlertmanagerWebhook:
    body = webhook_body(fingerprints=fingerprints, group="disk", status=status)
    for alert in body["alerts"]:
        # kept and part of the group's digest, but not shown while a summary is: a change no one reads
        alert["annotations"]["description"] = description
    return AlertmanagerWebhook.model_validate(body)


def _robot_posts(peer: DingTalkPeer) -> list[str]:
    posts: list[dict[str, Any]] = peer.robot_posts[next(iter(peer.robots))]
    return [str(post["markdown"]["text"]) for post in posts]


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[AlertStore]:
    redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        yield AlertStore(redis=redis)
    finally:
        await redis.aclose()


async def test_a_firing_group_posts_once_to_a_robot_over_minutes_then_its_changes_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter, store: AlertStore
) -> None:
    def clock() -> float:
        return peer.clock.wall_ms() / 1000

    def peer_now() -> datetime:
        return datetime.fromtimestamp(clock(), tz=UTC)

    deliverer = Deliverer(
        store=store, adapters={"dingtalk": adapter}, secret=b"k" * 32, settings=SETTINGS, clock=clock
    )
    first = _body("a1", description="disk 91% full")
    await store.ingest(first, settings=SETTINGS, now=peer_now())
    assert await deliverer.deliver_due() == 2
    (posted,) = _robot_posts(peer)
    assert "since 2026-01-01 10:00 UTC" in posted
    (card_id,) = peer.cards_shown_in(SPACE)

    for minute in range(1, MINUTES_FIRING + 1):
        peer.clock.advance(60)
        # Alertmanager sends the group again with a value only the description holds, and kobot's own
        # re-render (an unchanged state written again) comes due: both are rendered minutes later.
        again = _body("a1", description=f"disk {91 + minute}% full")
        await store.ingest(again, settings=SETTINGS, now=peer_now())
        assert await deliverer.deliver_due() == 2
        await store.update_group(first.group_id(), lambda state: state, now=peer_now())
        assert await deliverer.deliver_due() == 2

    assert _robot_posts(peer) == [posted], "the robot posted the group once"
    card = peer.cards[card_id]
    assert {entry["status"] for entry in card.history} == {card.history[0]["status"]}

    peer.clock.advance(60)
    await store.ingest(_body("a1", "a2", description="disk 97% full"), settings=SETTINGS, now=peer_now())
    assert await deliverer.deliver_due() == 2
    posts = _robot_posts(peer)
    assert len(posts) == 2 and "firing · 2 alerts" in posts[-1]
    assert card.params["status"].startswith("firing · 2 alerts"), "the card is edited in place"

    peer.clock.advance(60)
    await store.ingest(_body("a1", "a2", status="resolved"), settings=SETTINGS, now=peer_now())
    assert await deliverer.deliver_due() == 2
    posts = _robot_posts(peer)
    assert len(posts) == 3 and "[resolved]" in posts[-1]
    assert peer.cards_shown_in(SPACE) == [card_id] and card.params["tone"] == "success"

"""A firing group shows one DingTalk custom-robot post however long it fires (real Valkey, the alert
outbox's real Deliverer on the peer's clock, kobot's adapter against the DingTalk peer).

A custom robot cannot edit: every update is a new post. The alert text follows the group, not the clock,
and the adapter posts nothing when an update would post what the robot already showed; a new alert in
the group and the resolve are new posts as before. A group's card is still edited in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerts.store import AlertStore
from bot.chat.dingtalk.adapter import DingTalkAdapter
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.chat.alert_outbox import deliverer as deliverer_for
from tests.chat.alert_outbox import disk_group as _body
from tests.chat.dingtalk.alerting import GROUP, SPACE
from tests.peers.dingtalk import DingTalkPeer

ROBOT = RouteTarget(platform="dingtalk", conversation_id="robot:ops")
SETTINGS = AlertsSettings(default_targets=[ROBOT, RouteTarget(platform="dingtalk", conversation_id=GROUP)])
MINUTES_FIRING = 5
"""How many simulated minutes the group fires, re-rendered once a minute, before anything changes."""


def _robot_posts(peer: DingTalkPeer) -> list[str]:
    posts: list[dict[str, Any]] = peer.robot_posts[next(iter(peer.robots))]
    return [str(post["markdown"]["text"]) for post in posts]


async def test_a_firing_group_posts_once_to_a_robot_over_minutes_then_its_changes_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter, store: AlertStore
) -> None:
    def clock() -> float:
        return peer.clock.wall_ms() / 1000

    def peer_now() -> datetime:
        return datetime.fromtimestamp(clock(), tz=UTC)

    deliverer = deliverer_for(store, platform="dingtalk", adapter=adapter, settings=SETTINGS, clock=clock)
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

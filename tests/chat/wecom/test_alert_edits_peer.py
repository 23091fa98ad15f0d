"""A firing group shows one WeCom message however long it fires (real Valkey, the alert outbox's real
Deliverer on the peer's clock, kobot's adapter through wechatpy against the WeCom peer).

WeCom cannot edit a message in place: a one-to-one card is updated once (its response code) and every
other changed text is a new message. The alert text therefore follows the group, not the clock: a group
re-rendered minutes later, with nothing a reader sees changed, posts nothing; a new alert in the group and
the resolve still reach the conversation as before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerts.store import AlertStore
from bot.chat.wecom.adapter import WeComAdapter
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.chat.alert_outbox import deliverer as deliverer_for
from tests.chat.alert_outbox import disk_group as _body
from tests.chat.wecom.alerting import ALICE_ID
from tests.chat.wecom.alerting import sent as _sent
from tests.peers.wecom import Sent, WeComPeer

ALICE = RouteTarget(platform="wecom", conversation_id=f"user:{ALICE_ID}")
ROBOT = RouteTarget(platform="wecom", conversation_id="robot:default")
SETTINGS = AlertsSettings(default_targets=[ALICE, ROBOT])
MINUTES_FIRING = 5
"""How many simulated minutes the group fires, re-rendered once a minute, before anything changes."""


def _robot_text(sent: Sent) -> str:
    payload: dict[str, Any] = sent.payload
    return str(payload["markdown"]["content"])


async def test_a_firing_group_posts_once_over_minutes_then_its_changes_peer(
    wecom_peer: WeComPeer, adapter: WeComAdapter, store: AlertStore
) -> None:
    deliverer = deliverer_for(
        store, platform="wecom", adapter=adapter, settings=SETTINGS, clock=wecom_peer.now
    )

    def peer_now() -> datetime:
        return datetime.fromtimestamp(wecom_peer.now(), tz=UTC)

    first = _body("a1", description="disk 91% full")
    await store.ingest(first, settings=SETTINGS, now=peer_now())
    assert await deliverer.deliver_due() == 2
    (card,) = _sent(wecom_peer, "message/send", ALICE_ID)
    (robot_post,) = [s for s in wecom_peer.sent if s.api == "webhook/send"]
    robot = robot_post.target
    assert "since 2026-01-01 10:00 UTC" in _robot_text(robot_post)

    for minute in range(1, MINUTES_FIRING + 1):
        wecom_peer.clock.advance(60)
        # Alertmanager sends the group again with a value only the description holds, and kobot's own
        # re-render (an unchanged state written again) comes due: both are rendered minutes later.
        await store.ingest(
            _body("a1", description=f"disk {91 + minute}% full"), settings=SETTINGS, now=peer_now()
        )
        assert await deliverer.deliver_due() == 2
        await store.update_group(first.group_id(), lambda state: state, now=peer_now())
        assert await deliverer.deliver_due() == 2

    assert _sent(wecom_peer, "message/send", ALICE_ID) == [card], "one card, never a second one"
    assert _sent(wecom_peer, "message/update_template_card", card.payload["template_card"]["task_id"]) == []
    assert len(_sent(wecom_peer, "webhook/send", robot)) == 1, "the group robot got one post"

    wecom_peer.clock.advance(60)
    await store.ingest(_body("a1", "a2", description="disk 97% full"), settings=SETTINGS, now=peer_now())
    assert await deliverer.deliver_due() == 2
    task_id = card.payload["template_card"]["task_id"]
    (updated,) = _sent(wecom_peer, "message/update_template_card", task_id)
    assert updated.payload["template_card"]["main_title"]["desc"].startswith("firing · 2 alerts")
    robot_posts = _sent(wecom_peer, "webhook/send", robot)
    assert len(robot_posts) == 2 and "firing · 2 alerts" in _robot_text(robot_posts[-1])

    wecom_peer.clock.advance(60)
    await store.ingest(_body("a1", "a2", status="resolved"), settings=SETTINGS, now=peer_now())
    assert await deliverer.deliver_due() == 2
    to_alice = _sent(wecom_peer, "message/send", ALICE_ID)
    assert len(to_alice) == 2, "the card's one update is spent: the resolve is a new message"
    assert "[resolved]" in to_alice[-1].payload["markdown"]["content"]
    robot_posts = _sent(wecom_peer, "webhook/send", robot)
    assert len(robot_posts) == 3 and "[resolved]" in _robot_text(robot_posts[-1])

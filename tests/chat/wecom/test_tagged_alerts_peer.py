"""One WeCom app message per alert group and stage even when a post's answer was lost (real Valkey, the
alert outbox's real Deliverer, kobot's adapter through wechatpy against the WeCom peer).

WeCom cannot list what an app sent, but message/send drops a repeat of the same request within
`duplicate_check_interval` when `enable_duplicate_check` is 1 (document/path/90236). A tagged post is
therefore the same request when made again: the card's task id and button keys come from the tag and
the content, the outbox renders a repeated post as of its first attempt, and a tag line keeps two groups
with the same text apart. App group chats and group robots have no such check: at least once.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis as AsyncRedis

from alerts.delivery import Deliverer
from alerts.store import AlertStore, OutboxEntry, outbox_member
from bot.chat.wecom import defaults
from bot.chat.wecom.adapter import WeComAdapter
from kobot.chat import TaggedPosting
from kobot.conversations import Conversation
from kobot.messages import Button, OutgoingMessage
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.chat.alert_outbox import deliverer, disk_group
from tests.chat.wecom.alerting import ALICE_ID, SEND, sent
from tests.peers.wecom import WeComPeer
from tests.support.waiting import eventually

ALICE = RouteTarget(platform="wecom", conversation_id=f"user:{ALICE_ID}")
SETTINGS = AlertsSettings(default_targets=[ALICE])
FIRING = disk_group("a1")
ENTRY = OutboxEntry.parse(outbox_member(kind="g", item_id=FIRING.group_id(), target=ALICE))
SLOW_ANSWER_SECONDS = 1.0
"""How long WeCom takes to answer the send: the window in which the delivery is cut short."""


def _deliverer(store: AlertStore, adapter: WeComAdapter) -> Deliverer:
    return deliverer(store, platform="wecom", adapter=adapter, settings=SETTINGS)


def _sent_to_alice(peer: WeComPeer) -> list[dict[str, Any]]:
    return [s.payload for s in sent(peer, "message/send", ALICE_ID)]


async def test_a_post_cut_short_after_wecom_took_it_is_not_shown_twice_peer(
    wecom_peer: WeComPeer, adapter: WeComAdapter, alert_redis: AsyncRedis
) -> None:
    assert isinstance(adapter, TaggedPosting)
    first = AlertStore(redis=alert_redis, owner="first")
    await first.ingest(FIRING, settings=SETTINGS, now=datetime.now(UTC))
    wecom_peer.slow(SLOW_ANSWER_SECONDS, path=SEND)
    cut = asyncio.create_task(_deliverer(first, adapter).deliver_due())
    await eventually(lambda: len(wecom_peer.requests_to(SEND)) == 1, what="the send on its way")
    cut.cancel()  # the process is gone while WeCom takes the message
    await asyncio.gather(cut, return_exceptions=True)
    await first.release_claims(now=time.time())
    await eventually(lambda: len(_sent_to_alice(wecom_peer)) == 1, what="WeCom showing the message")
    assert (await first.message_record(ENTRY)).ref is None, "kobot never learnt it was shown"
    await asyncio.sleep(1.1)  # a later render would read "for 1s" and be a different request

    second = AlertStore(redis=alert_redis, owner="second")
    assert await _deliverer(second, adapter).deliver_due() == 1
    assert len(wecom_peer.requests_to(SEND)) == 2, "WeCom cannot be asked: the post is made again"
    assert len(_sent_to_alice(wecom_peer)) == 1, "the repeat is the same request: not shown twice"
    assert len(wecom_peer.duplicates) == 1
    (shown,) = _sent_to_alice(wecom_peer)
    assert shown["enable_duplicate_check"] == 1
    assert shown["duplicate_check_interval"] == defaults.DUPLICATE_CHECK_SECONDS <= 4 * 3600
    stored = await second.message_record(ENTRY)
    assert stored.ref is not None and stored.posting_since is None


async def test_a_changed_message_or_another_group_is_a_new_message_peer(
    wecom_peer: WeComPeer, adapter: WeComAdapter
) -> None:
    alice = Conversation(platform="wecom", conversation_id="user:alice")
    firing = OutgoingMessage(title="[critical] disk full on prod")
    await adapter.send_tagged(alice, firing, tag="g.1")
    await adapter.send_tagged(alice, firing, tag="g.1")
    assert len(_sent_to_alice(wecom_peer)) == 1 and len(wecom_peer.duplicates) == 1
    await adapter.send_tagged(alice, firing, tag="other.1")
    assert len(_sent_to_alice(wecom_peer)) == 2, "the same text for another group is its own message"
    await adapter.send_tagged(alice, firing.model_copy(update={"title": "[resolved] disk"}), tag="g.1")
    assert len(_sent_to_alice(wecom_peer)) == 3, "a new stage is a new message, as WeCom edits go"
    await adapter.send(alice, firing)
    await adapter.send(alice, firing)
    assert len(_sent_to_alice(wecom_peer)) == 5, "untagged posts are not checked"


async def test_a_tagged_card_sent_again_is_the_same_card_peer(
    wecom_peer: WeComPeer, adapter: WeComAdapter
) -> None:
    alice = Conversation(platform="wecom", conversation_id="user:alice")
    long_value = "v" * (defaults.BUTTON_KEY_MAX_BYTES + 1)
    card = OutgoingMessage(
        title="[critical] disk full",
        buttons=(Button(label="Silence 1h", action_id="alert.silence", value=long_value),),
    )
    first = await adapter.send_tagged(alice, card, tag="g.1")
    again = await adapter.send_tagged(alice, card, tag="g.1")
    assert first.message_id == again.message_id, "the task id names the tag and the content"
    (shown,) = _sent_to_alice(wecom_peer)
    assert len(wecom_peer.duplicates) == 1, "no second card, and no 'task id already used' refusal"
    (button,) = shown["template_card"]["button_list"]
    assert adapter.state.card_button(task_id=first.message_id, key=button["key"]) is not None
    changed = await adapter.send_tagged(alice, card.model_copy(update={"title": "[resolved]"}), tag="g.1")
    assert changed.message_id != first.message_id and len(_sent_to_alice(wecom_peer)) == 2


async def test_group_chats_have_no_duplicate_check_and_stay_at_least_once_peer(
    wecom_peer: WeComPeer, adapter: WeComAdapter
) -> None:
    robot = Conversation(platform="wecom", conversation_id="robot:default")
    assert await adapter.find_tagged(robot, tag="g.1", since=datetime.now(UTC)) is None
    await adapter.send_tagged(robot, OutgoingMessage(title="disk full"), tag="g.1")
    await adapter.send_tagged(robot, OutgoingMessage(title="disk full"), tag="g.1")
    posts = [s for s in wecom_peer.sent if s.api == "webhook/send"]
    assert len(posts) == 2 and all("enable_duplicate_check" not in s.payload for s in posts)


async def test_a_tagged_card_retried_after_the_duplicate_check_goes_out_under_a_new_task_id_peer(
    wecom_peer: WeComPeer, adapter: WeComAdapter
) -> None:
    """WeCom took the card, kobot never learnt it, and the outbox retries hours later: the task id is
    used, so WeCom refuses it (errcode 42014) and the post would fail forever under it."""
    alice = Conversation(platform="wecom", conversation_id="user:alice")
    card = OutgoingMessage(
        title="[critical] disk full",
        buttons=(Button(label="Silence 1h", action_id="alert.silence", value="silence:g.1"),),
    )
    first = await adapter.send_tagged(alice, card, tag="g.1")
    wecom_peer.clock.advance(defaults.DUPLICATE_CHECK_SECONDS + 1)

    again = await adapter.send_tagged(alice, card, tag="g.1")
    assert again.message_id != first.message_id, "a fresh task id"
    tried = [r.body["template_card"]["task_id"] for r in wecom_peer.requests_to(SEND)]
    # the first id is sent again (with a fresh access token, hours later) and refused, then the next
    assert (
        list(dict.fromkeys(tried)) == [first.message_id, again.message_id] and tried[-1] == again.message_id
    )
    assert tried.count(first.message_id) >= 2, "the first id was tried again and refused"
    shown = [p["template_card"]["task_id"] for p in _sent_to_alice(wecom_peer)]
    assert shown == [first.message_id, again.message_id]
    (button,) = _sent_to_alice(wecom_peer)[-1]["template_card"]["button_list"]
    assert adapter.state.card_button(task_id=again.message_id, key=button["key"]) is not None

    once_more = await adapter.send_tagged(alice, card, tag="g.1")
    assert once_more.message_id == again.message_id, "the new task id is the same request again"
    assert len(_sent_to_alice(wecom_peer)) == 2 and len(wecom_peer.duplicates) == 1

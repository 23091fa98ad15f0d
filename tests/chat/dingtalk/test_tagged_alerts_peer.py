"""One DingTalk card per alert group even when a post's answer or record was lost (real Valkey, the
alert outbox's real Deliverer, kobot's adapter against the DingTalk peer).

An alert card's outTrackId is derived from the app, the conversation and the group's tag, and its record
is kept before the card is created: a delivery cut short after DingTalk took the card is found by that
id and edited, and a first attempt that never created the card is created on the next one (DingTalk
refuses to update it). Custom robots cannot be tagged: they stay at least once.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis as AsyncRedis

from alerts.delivery import Deliverer
from alerts.store import AlertStore, OutboxEntry, outbox_member
from bot.chat.dingtalk.adapter import UNCONFIRMED, CardNotDelivered, DingTalkAdapter
from kobot.chat import TaggedPosting
from kobot.conversations import Conversation
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.chat.alert_outbox import deliverer, disk_group
from tests.chat.dingtalk.alerting import CREATE, GROUP, SPACE, UPDATE
from tests.peers.dingtalk import DingTalkPeer
from tests.support.waiting import eventually

OPS = RouteTarget(platform="dingtalk", conversation_id=GROUP)
SETTINGS = AlertsSettings(default_targets=[OPS])
FIRING = disk_group("a1")
RESOLVED = disk_group("a1", status="resolved")
ENTRY = OutboxEntry.parse(outbox_member(kind="g", item_id=FIRING.group_id(), target=OPS))
SLOW_ANSWER_SECONDS = 1.0
"""How long DingTalk takes to answer the create: the window in which the delivery is cut short."""


def _deliverer(store: AlertStore, adapter: DingTalkAdapter) -> Deliverer:
    return deliverer(store, platform="dingtalk", adapter=adapter, settings=SETTINGS)


async def test_a_card_cut_short_after_dingtalk_took_it_is_found_by_its_id_and_edited_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter, alert_redis: AsyncRedis
) -> None:
    assert isinstance(adapter, TaggedPosting)
    first = AlertStore(redis=alert_redis, owner="first")
    await first.ingest(FIRING, settings=SETTINGS, now=datetime.now(UTC))
    peer.slow(SLOW_ANSWER_SECONDS, path=CREATE)
    cut = asyncio.create_task(_deliverer(first, adapter).deliver_due())
    await eventually(lambda: len(peer.requests_to(CREATE)) == 1, what="the create on its way")
    cut.cancel()  # the process is gone while DingTalk creates the card
    await asyncio.gather(cut, return_exceptions=True)
    await first.release_claims(now=time.time())
    await eventually(lambda: len(peer.cards_shown_in(SPACE)) == 1, what="DingTalk keeping the card")
    (track_id,) = peer.cards_shown_in(SPACE)
    assert (await first.message_record(ENTRY)).ref is None, "kobot never learnt the card was made"

    second = AlertStore(redis=alert_redis, owner="second")
    await second.ingest(RESOLVED, settings=SETTINGS, now=datetime.now(UTC))
    assert await _deliverer(second, adapter).deliver_due() == 1
    assert peer.cards_shown_in(SPACE) == [track_id], "found by its id: no second card"
    assert len(peer.requests_to(CREATE)) == 1, "the retry edits, it never creates again"
    card = peer.cards[track_id]
    assert len(card.history) == 2 and card.params["tone"] == "success", "the card shows the resolve"
    stored = await second.message_record(ENTRY)
    assert stored.ref is not None and stored.ref.message_id == track_id
    assert UNCONFIRMED not in stored.ref.extra and stored.posting_since is None


async def test_a_tagged_card_the_first_attempt_never_created_is_created_by_the_next_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    conversation = Conversation(platform="dingtalk", conversation_id=GROUP)
    message = OutgoingMessage(title="[critical] disk full on prod")
    peer.fail_next(1, status=503, path=CREATE)
    with pytest.raises(DeliveryError) as refused:
        await adapter.send_tagged(conversation, message, tag="group-1.1")
    assert refused.value.retry_after is not None, "DingTalk was unavailable, not refusing"
    assert peer.cards_shown_in(SPACE) == [], "DingTalk never made the card"

    found = await adapter.find_tagged(conversation, tag="group-1.1", since=datetime.now(UTC))
    assert found is not None and found.extra[UNCONFIRMED] == "1"
    shown = await adapter.update(found, message.model_copy(update={"title": "[resolved] disk full"}))
    assert peer.cards_shown_in(SPACE) == [found.message_id], "created once, under the tagged id"
    assert [r.status for r in peer.requests_to(UPDATE)] == [400], "the update was refused first"
    assert UNCONFIRMED not in shown.extra
    assert peer.cards[found.message_id].params["title"].endswith("[resolved] disk full")

    await adapter.update(shown, message.model_copy(update={"title": "[resolved] again"}))
    assert peer.cards_shown_in(SPACE) == [found.message_id], "a confirmed card is only ever edited"


async def test_an_untagged_conversation_is_not_found_and_tags_stay_apart_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    group = Conversation(platform="dingtalk", conversation_id=GROUP)
    other = Conversation(platform="dingtalk", conversation_id="cidAlertsStaging")
    assert await adapter.find_tagged(group, tag="g.1", since=datetime.now(UTC)) is None
    sent = await adapter.send_tagged(group, OutgoingMessage(title="disk"), tag="g.1")
    assert sent.message_id == adapter.tagged_track_id(group, "g.1")
    assert len(sent.message_id) == 64 and set(sent.message_id) <= set("0123456789abcdef")
    assert adapter.tagged_track_id(other, "g.1") != sent.message_id, "one tag, one card per conversation"
    assert adapter.tagged_track_id(group, "g.2") != sent.message_id, "a new episode is a new card"
    found = await adapter.find_tagged(group, tag="g.1", since=datetime.now(UTC))
    assert found is not None and found.message_id == sent.message_id
    assert await adapter.find_tagged(other, tag="g.1", since=datetime.now(UTC)) is None


async def test_custom_robot_posts_cannot_be_tagged_and_stay_at_least_once_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    robot = Conversation(platform="dingtalk", conversation_id="robot:ops")
    sent = await adapter.send_tagged(robot, OutgoingMessage(title="disk full"), tag="g.1")
    assert sent.extra["via"] == "robot"
    assert await adapter.find_tagged(robot, tag="g.1", since=datetime.now(UTC)) is None
    assert peer.requests_to(CREATE) == [], "no card: a robot post is a webhook post"
    assert len(next(iter(peer.robot_posts.values()))) == 1


async def test_a_tagged_card_that_reached_no_one_is_replaced_by_a_card_of_a_new_id_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    """DingTalk made the card but delivered it nowhere: an edit of it would show nothing, and a second
    create of its id is undocumented, so the next post is a card of the tag's next id."""
    group = Conversation(platform="dingtalk", conversation_id=GROUP)
    peer.fail_delivery("robot is not in the group")
    with pytest.raises(CardNotDelivered):
        await adapter.send_tagged(group, OutgoingMessage(title="disk"), tag="g.1")
    assert await adapter.find_tagged(group, tag="g.1", since=datetime.now(UTC)) is None
    sent = await adapter.send_tagged(group, OutgoingMessage(title="disk"), tag="g.1")
    assert sent.message_id == adapter.tagged_track_id(group, "g.1", generation=1)
    assert peer.cards_shown_in(SPACE) == [sent.message_id]
    assert [r.body["outTrackId"] for r in peer.requests_to(CREATE)] == [
        adapter.tagged_track_id(group, "g.1"),
        sent.message_id,
    ], "no id was created twice"
    found = await adapter.find_tagged(group, tag="g.1", since=datetime.now(UTC))
    assert found is not None and found.message_id == sent.message_id


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (500, {"code": "ServiceUnavailable", "message": "injected fault"}),
        (400, {"code": "param.invalid", "message": "cardParamMap.markdown too long"}),
        (403, {"code": "Forbidden.AccessDenied", "message": "no permission"}),
    ],
    ids=["server-error", "content-refused", "forbidden"],
)
async def test_a_tagged_card_dingtalk_holds_is_never_created_again_when_its_update_fails_peer(
    peer: DingTalkPeer, adapter: DingTalkAdapter, status: int, answer: dict[str, str]
) -> None:
    """Only DingTalk's "no such card" makes kobot create an unconfirmed card: any other refusal may come
    from a card DingTalk holds, so the update fails (the outbox retries it) and no second card appears."""
    conversation = Conversation(platform="dingtalk", conversation_id=GROUP)
    message = OutgoingMessage(title="[critical] disk full on prod")
    sent = await adapter.send_tagged(conversation, message, tag="group-1.1")
    found = await adapter.find_tagged(conversation, tag="group-1.1", since=datetime.now(UTC))
    assert found is not None and found.extra[UNCONFIRMED] == "1"

    peer.fail_next(1, status=status, path=UPDATE, body=answer)
    resolved = message.model_copy(update={"title": "[resolved] disk full"})
    with pytest.raises(DeliveryError):
        await adapter.update(found, resolved)
    assert peer.cards_shown_in(SPACE) == [sent.message_id], "no second card of the same id"
    assert len(peer.requests_to(CREATE)) == 1

    shown = await adapter.update(found, resolved)
    assert UNCONFIRMED not in shown.extra and peer.cards_shown_in(SPACE) == [sent.message_id]
    assert peer.cards[sent.message_id].params["title"].endswith("[resolved] disk full")

"""Sending against the peer's Open API: session webhook, cards edited in place, robot API, tokens, faults."""

from __future__ import annotations

import asyncio
import json

import pytest
from redis import Redis

from bot.chat.dingtalk import inbound
from bot.chat.dingtalk.adapter import DingTalkAdapter
from kobot.conversations import Conversation
from kobot.errors import DeliveryError
from kobot.messages import OutgoingMessage
from tests.chat import samples
from tests.chat.sinks import RecordingSink
from tests.peers.dingtalk import MARKDOWN_BUTTON_TEMPLATE_ID, DingTalkPeer
from tests.support.dingtalk import TEMPLATE_ID
from tests.support.waiting import wait_until

GROUP = Conversation(platform="dingtalk", conversation_id="cidGroupProd01")


async def _inbound_conversation(peer: DingTalkPeer, sink: RecordingSink, **kwargs: object) -> Conversation:
    peer.push_chat("list clusters", **kwargs)  # type: ignore[arg-type]
    assert await wait_until(lambda: len(sink.messages) == 1)
    return sink.messages[0].conversation


async def test_peer_reply_goes_through_the_session_webhook(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    conversation = await _inbound_conversation(peer, sink)

    ref = await adapter.send(conversation, samples.COMMAND_REPLY)

    posts = peer.requests_to("/robot/sendBySession")
    assert len(posts) == 1
    assert posts[0].body["msgtype"] == "markdown"
    assert "prod" in posts[0].body["markdown"]["text"]
    assert ref.extra["via"] == "webhook"
    assert peer.requests_to("/v1.0/robot/groupMessages/send") == []


async def test_peer_expired_session_webhook_falls_back_to_the_robot_api(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    conversation = await _inbound_conversation(peer, sink, session_expired=True)

    ref = await adapter.send(conversation, samples.COMMAND_REPLY)

    assert peer.requests_to("/robot/sendBySession") == []
    sent = peer.requests_to("/v1.0/robot/groupMessages/send")
    assert len(sent) == 1 and sent[0].status == 200
    assert sent[0].body["openConversationId"] == "cidGroupProd01"
    assert json.loads(sent[0].body["msgParam"])["title"] == "Clusters"
    assert ref.extra["via"] == "api"


async def test_peer_progress_is_one_card_edited_to_the_final_state(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    ref = await adapter.send(GROUP, samples.PROGRESS_START)
    for message in (samples.PROGRESS_MIDDLE, samples.PROGRESS_DONE):
        ref = await adapter.update(ref, message)

    assert len(peer.requests_to("/v1.0/card/instances/createAndDeliver")) == 1
    assert len(peer.requests_to("/v1.0/card/instances")) == 2
    card = peer.cards[ref.message_id]
    assert card.template_id == TEMPLATE_ID
    assert card.open_space_id == "dtv1.card//IM_GROUP.cidGroupProd01"
    assert card.params["tone"] == "success"
    assert card.params["status"] == "succeeded in 12m05s"
    assert len(card.history) == 3
    assert adapter.capabilities.edits


async def test_peer_direct_card_goes_to_the_robot_chat(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    conversation = await _inbound_conversation(peer, sink, conversation_type="1", staff_id="staff-bob")

    ref = await adapter.send(conversation, samples.PROGRESS_START)

    body = peer.requests_to("/v1.0/card/instances/createAndDeliver")[0].body
    assert body["openSpaceId"] == "dtv1.card//IM_ROBOT.staff-bob"
    assert body["imRobotOpenDeliverModel"]["spaceType"] == "IM_ROBOT"
    assert peer.cards[ref.message_id].params["progress"] == "1/4"


async def test_peer_without_template_progress_is_one_public_card_edited_in_place(
    peer: DingTalkPeer, plain_adapter: DingTalkAdapter
) -> None:
    # No card_template_id and no console step: the SDK's public Markdown-with-buttons template.
    assert plain_adapter.capabilities.edits and plain_adapter.capabilities.buttons
    ref = await plain_adapter.send(GROUP, samples.PROGRESS_START)
    ref = await plain_adapter.update(ref, samples.PROGRESS_MIDDLE)
    await plain_adapter.update(ref, samples.PROGRESS_FAILED)

    assert len(peer.requests_to("/v1.0/card/instances/createAndDeliver")) == 1
    assert [r.status for r in peer.requests_to("/v1.0/card/instances")] == [200, 200]
    assert peer.requests_to("/v1.0/robot/groupMessages/send") == []
    card = peer.cards[ref.message_id]
    assert card.template_id == MARKDOWN_BUTTON_TEMPLATE_ID
    assert card.params["title"].endswith("Job 42 · create cluster prod")
    assert "swap is on" in card.params["markdown"]
    assert card.params["tips"] == "retry job 42 resumes at Preflight"
    assert len(card.history) == 3


async def test_peer_without_template_approval_buttons_call_back_and_vanish_once_decided(
    peer: DingTalkPeer, plain_adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    ref = await plain_adapter.ask(GROUP, samples.APPROVAL_REQUEST)
    card = peer.cards[ref.message_id]
    assert [label for label, _ in card.buttons()] == ["Approve", "Reject"]
    assert [b["color"] for b in json.loads(card.params["sys_full_json_obj"])["msgButtons"]] == ["blue", "red"]

    frame = peer.click(out_track_id=ref.message_id, user_id="staff-carol", label="Approve")

    assert await wait_until(lambda: len(sink.clicks) == 1)
    assert sink.clicks[0].action_id == "approval.approve"
    assert sink.clicks[0].value == "ap1.approve.sig"
    assert sink.clicks[0].message == ref
    assert await wait_until(lambda: peer.ack_for(frame) is not None)
    await plain_adapter.update(ref, samples.APPROVAL_DECIDED)
    assert peer.cards[ref.message_id].buttons() == []


async def test_peer_card_not_delivered_to_its_target_is_a_delivery_error(
    peer: DingTalkPeer, adapter: DingTalkAdapter, redis: Redis, sink: RecordingSink
) -> None:
    peer.fail_delivery("robot is not a member of this group")

    with pytest.raises(DeliveryError, match="robot is not a member of this group"):
        await adapter.send(GROUP, samples.APPROVAL_REQUEST)

    [created] = peer.requests_to("/v1.0/card/instances/createAndDeliver")
    assert created.status == 200 and created.answer["result"]["deliverResults"][0]["success"] is False
    out_track_id = created.body["outTrackId"]
    # A card nobody received is not kobot's card: a click naming it is not trusted.
    assert redis.get(f"kobot:dingtalk:card:{out_track_id}") is None
    peer.push_card_click(
        out_track_id=out_track_id, user_id="staff-bob", params={"action_id": "a", "value": "v"}
    )
    await asyncio.sleep(0.3)
    assert sink.clicks == []


async def test_peer_card_rate_limit_403_is_retryable_and_other_403_is_not(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    ref = await adapter.send(GROUP, samples.PROGRESS_START)
    peer.rate_limit_next("/v1.0/card/instances")
    with pytest.raises(DeliveryError) as limited:
        await adapter.update(ref, samples.PROGRESS_MIDDLE)
    assert limited.value.retry_after is not None and limited.value.retry_after >= 1.0

    peer.fail_next(
        status=403,
        path="/v1.0/card/instances",
        body={"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "message": "no permission"},
    )
    with pytest.raises(DeliveryError) as denied:
        await adapter.update(ref, samples.PROGRESS_MIDDLE)
    assert denied.value.retry_after is None

    await adapter.update(ref, samples.PROGRESS_DONE)
    assert peer.cards[ref.message_id].params["tone"] == "success"


async def test_peer_robot_api_message_is_split_under_15000_bytes(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    body = "\n".join(
        f"node-{n:04d} 节点 NotReady since 5m, kubelet stopped posting status" for n in range(250)
    )
    assert 15_000 < len(body.encode()) < 20_000
    await adapter.send(GROUP, OutgoingMessage(title="many nodes down", body=body))

    sent = peer.requests_to("/v1.0/robot/groupMessages/send")
    assert len(sent) == 2 and all(r.status == 200 for r in sent)
    assert all(len(r.body["msgParam"].encode()) <= 15_000 for r in sent)
    received = "\n".join(json.loads(r.body["msgParam"])["text"] for r in sent)
    assert "node-0000" in received and "node-0249" in received


async def test_peer_refuses_msg_param_over_15000_bytes(peer: DingTalkPeer, adapter: DingTalkAdapter) -> None:
    oversized = {
        "robotCode": peer.client_id,
        "openConversationId": GROUP.conversation_id,
        "msgKey": "sampleMarkdown",
        "msgParam": json.dumps({"title": "t", "text": "x" * 15_000}),
    }
    with pytest.raises(DeliveryError, match=r"HTTP 400 param\.invalid") as refused:
        await adapter.api.call("POST", "/v1.0/robot/groupMessages/send", oversized)
    assert refused.value.retry_after is None


async def test_peer_approval_click_reaches_the_sink(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    conversation = await _inbound_conversation(peer, sink, staff_id="staff-carol", nick="Carol")
    ref = await adapter.ask(conversation, samples.APPROVAL_REQUEST)
    buttons = json.loads(peer.cards[ref.message_id].params["buttons"])
    assert [b["text"] for b in buttons] == ["Approve", "Reject"]

    approve = buttons[0]
    frame = peer.push_card_click(
        out_track_id=ref.message_id,
        user_id="staff-carol",
        params={"action_id": approve["action_id"], "value": approve["value"]},
    )

    assert await wait_until(lambda: len(sink.clicks) == 1)
    click = sink.clicks[0]
    assert click.action_id == "approval.approve"
    assert click.value == "ap1.approve.sig"
    assert click.identity.user_id == "staff-carol"
    assert click.identity.display_name == "Carol"
    assert click.message == ref
    assert click.conversation.conversation_id == conversation.conversation_id
    assert await wait_until(lambda: peer.ack_for(frame) is not None)


async def test_peer_click_on_a_card_kobot_never_sent_is_ignored(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    frame = peer.push_card_click(
        out_track_id="kobot-forged",
        user_id="staff-mallory",
        params={"action_id": "approval.approve", "value": "x"},
    )
    assert await wait_until(lambda: peer.ack_for(frame) is not None)
    real = await adapter.send(GROUP, samples.APPROVAL_REQUEST)
    peer.push_card_click(
        out_track_id=real.message_id, user_id="staff-bob", params={"action_id": "a", "value": "v"}
    )

    assert await wait_until(lambda: len(sink.clicks) == 1)
    assert sink.clicks[0].message == real


async def test_peer_click_without_parameters_is_ignored(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    real = await adapter.send(GROUP, samples.APPROVAL_REQUEST)
    frame = peer.push_card_click(out_track_id=real.message_id, user_id="staff-bob", params={})

    assert await wait_until(lambda: peer.ack_for(frame) is not None)
    assert sink.clicks == []


async def test_peer_access_token_is_cached_and_refreshed_when_refused(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    ref = await adapter.send(GROUP, samples.PROGRESS_START)
    await adapter.update(ref, samples.PROGRESS_MIDDLE)
    assert adapter.api.token_fetches == 1

    peer.expire_tokens()
    await adapter.update(ref, samples.PROGRESS_DONE)

    assert adapter.api.token_fetches == 2
    updates = peer.requests_to("/v1.0/card/instances")
    # DingTalk says "invalid token" with HTTP 400 and a code, not 401: kobot refreshes on the code.
    assert [u.status for u in updates] == [200, 400, 200]
    assert updates[1].answer["code"] == "InvalidAuthentication"
    assert peer.cards[ref.message_id].params["tone"] == "success"


async def test_peer_server_error_is_a_retryable_delivery_error(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    peer.fail_next(status=503, path="/v1.0/card/instances/createAndDeliver")
    with pytest.raises(DeliveryError) as failed:
        await adapter.send(GROUP, samples.PROGRESS_START)
    assert failed.value.retry_after is not None

    peer.fail_next(status=429, path="/v1.0/card/instances/createAndDeliver", retry_after=7)
    with pytest.raises(DeliveryError) as limited:
        await adapter.send(GROUP, samples.PROGRESS_START)
    assert limited.value.retry_after == 7

    ref = await adapter.send(GROUP, samples.PROGRESS_START)
    assert ref.message_id in peer.cards


async def test_peer_bad_request_is_a_delivery_error_without_retry(
    peer: DingTalkPeer, adapter: DingTalkAdapter
) -> None:
    peer.fail_next(
        status=400, path="/v1.0/robot/groupMessages/send", body={"code": "param.invalid", "message": "bad"}
    )
    with pytest.raises(DeliveryError) as refused:
        await adapter.send(GROUP, samples.COMMAND_REPLY)
    assert refused.value.retry_after is None
    assert "param.invalid" in refused.value.user_message


async def test_peer_slow_answer_is_waited_for(peer: DingTalkPeer, adapter: DingTalkAdapter) -> None:
    peer.slow(0.5, path="/v1.0/card/instances/createAndDeliver")
    ref = await adapter.send(GROUP, samples.PROGRESS_START)
    assert ref.message_id in peer.cards


async def test_peer_card_is_remembered_for_clicks(
    peer: DingTalkPeer, adapter: DingTalkAdapter, redis: Redis
) -> None:
    ref = await adapter.send(GROUP, samples.APPROVAL_REQUEST)
    stored = redis.get(f"kobot:dingtalk:card:{ref.message_id}")
    assert isinstance(stored, bytes)
    conversation, stored_ref = inbound.parse_card_record(stored)
    assert stored_ref == ref and conversation.conversation_id == GROUP.conversation_id
    assert 0 < redis.ttl(f"kobot:dingtalk:card:{ref.message_id}") <= 30 * 24 * 3600  # type: ignore[operator]

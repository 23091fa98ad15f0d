"""Time on WeCom: response codes (72 h, once), smart-bot reply links (1 h, once), callbacks answered in 5 s.

The peer's clock moves forward instead of the test waiting; kobot keeps its own copies of codes and links
no longer than WeCom honours them, and falls back to a new message (or the group's route) when WeCom
refuses one anyway.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from redis import Redis
from wechatpy.exceptions import WeChatClientException

from bot.chat.wecom import defaults
from bot.chat.wecom.adapter import WeComAdapter
from kobot.conversations import Conversation
from tests.chat import samples
from tests.chat.sinks import RecordingSink
from tests.peers.wecom import WeComPeer
from tests.support.waiting import eventually
from tests.support.wecom import settings_for


def conv(conversation_id: str) -> Conversation:
    return Conversation(platform="wecom", conversation_id=conversation_id)


async def test_peer_response_code_past_72_hours_is_refused_and_kobot_posts_a_new_message(
    adapter: WeComAdapter, wecom_peer: WeComPeer, redis: Redis
) -> None:
    ref = await adapter.send(conv("user:alice"), samples.APPROVAL_REQUEST)
    [code_key] = [k for k in redis.scan_iter("kobot:wecom:rc:*")]
    assert 0 < redis.ttl(code_key) <= defaults.RESPONSE_CODE_TTL_SECONDS < 72 * 3600
    wecom_peer.clock.advance(72 * 3600 + 1)
    decided = await adapter.update(ref, samples.APPROVAL_DECIDED)
    tried = wecom_peer.requests_to("message/update_template_card")
    assert tried and all(r.body["response_code"] for r in tried)  # (after a token refresh: 72 h passed)
    assert [s.api for s in wecom_peer.sent] == ["message/send", "message/send"]
    assert wecom_peer.sent[-1].payload["msgtype"] == "markdown"
    assert decided.message_id != ref.message_id


async def test_peer_response_code_is_single_use(adapter: WeComAdapter, wecom_peer: WeComPeer) -> None:
    ref = await adapter.send(conv("user:alice"), samples.APPROVAL_REQUEST)
    await adapter.update(ref, samples.APPROVAL_DECIDED)
    [used] = wecom_peer.requests_to("message/update_template_card")
    with pytest.raises(WeChatClientException) as again:
        adapter.api.client.post("message/update_template_card", data=used.body)
    assert again.value.errcode == 40058


async def test_peer_reply_link_past_an_hour_is_refused_and_kobot_uses_the_groups_route(
    wecom_peer: WeComPeer, redis: Redis
) -> None:
    settings = settings_for(wecom_peer, smart_bot_routes={"wrgroup1": "robot:default"})
    adapter = WeComAdapter(settings=settings, redis=redis, clock=wecom_peer.now, sleep=wecom_peer.sleep)
    url = wecom_peer.new_reply_url()
    adapter.state.offer_reply_url(conversation_id="smartbot:wrgroup1", url=url)
    [link_key] = [k for k in redis.scan_iter("kobot:wecom:reply-url:*")]
    assert 0 < redis.ttl(link_key) <= defaults.SMART_BOT_REPLY_TTL_SECONDS < 3600
    wecom_peer.clock.advance(3601)
    ref = await adapter.send(conv("smartbot:wrgroup1"), samples.COMMAND_REPLY)
    assert len(wecom_peer.requests.where(lambda r: r.path.startswith("/smartbot/reply/"))) == 1
    assert [s.api for s in wecom_peer.sent] == ["webhook/send"]
    assert ref.conversation_id == "smartbot:wrgroup1"
    # and a link is good for one post only, even inside its hour
    fresh = wecom_peer.new_reply_url()
    async with httpx.AsyncClient() as client:
        first = (await client.post(fresh, json={"msgtype": "markdown", "markdown": {"content": "a"}})).json()
        second = (await client.post(fresh, json={"msgtype": "markdown", "markdown": {"content": "b"}})).json()
    assert first["errcode"] == 0 and second["errcode"] == 40058
    await adapter.stop()


async def test_peer_callback_whose_answer_is_lost_is_delivered_again_and_handled_once(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    """WeCom waits 5 s for the answer and tries three more times; here the first answer never arrives."""
    tries = 0

    async def post(query: str, body: str) -> int:
        nonlocal tries
        tries += 1
        status = (await http.post(f"/wecom/callback?{query}", content=body)).status_code
        if tries == 1:
            await asyncio.sleep(1.0)  # kobot answered, but WeCom never saw the answer
        return status

    xml = wecom_peer.text_xml(user_id="alice", content="list clusters", msg_id=4242)
    answers = await wecom_peer.deliver_callback(xml, post, deadline=0.3)
    assert answers == [None, 200]
    await eventually(lambda: len(sink.messages) >= 1, timeout=5, what="the message")
    await asyncio.sleep(0.2)
    assert [m.text for m in sink.messages] == ["list clusters"]  # the retry carried the same MsgId


async def test_peer_callback_that_is_never_answered_is_tried_four_times(wecom_peer: WeComPeer) -> None:
    async def silent(query: str, body: str) -> int:
        await asyncio.sleep(1.0)
        return 200

    xml = wecom_peer.text_xml(user_id="alice", content="help")
    assert await wecom_peer.deliver_callback(xml, silent, deadline=0.05) == [None, None, None, None]

"""Callbacks built exactly as WeCom builds them (encrypted, signed) POSTed at kobot's routes."""

from __future__ import annotations

import asyncio
import time

import httpx

from bot.chat.wecom.adapter import WeComAdapter
from kobot.conversations import Conversation
from tests.chat import samples
from tests.chat.sinks import RecordingSink
from tests.peers.wecom import WeComPeer


async def settle(sink: RecordingSink, *, messages: int = 0, clicks: int = 0) -> None:
    """Callbacks are handled after the HTTP answer; wait (bounded) for the background task."""
    for _ in range(200):
        if len(sink.messages) >= messages and len(sink.clicks) >= clicks:
            return
        await asyncio.sleep(0.01)


async def test_peer_url_verification_echoes_the_decrypted_echostr(
    http: httpx.AsyncClient, wecom_peer: WeComPeer
) -> None:
    answer = await http.get(f"/wecom/callback?{wecom_peer.callback_url_check(echostr='4211986157')}")
    assert answer.status_code == 200
    assert answer.text == "4211986157"


async def test_peer_url_verification_with_a_forged_signature_is_refused(
    http: httpx.AsyncClient, wecom_peer: WeComPeer
) -> None:
    query = wecom_peer.callback_url_check(echostr="1").replace("msg_signature=", "msg_signature=0")
    answer = await http.get(f"/wecom/callback?{query}")
    assert answer.status_code == 403
    assert answer.text != "1"


async def test_peer_text_from_the_app_session_reaches_the_sink_with_identity(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    query, body = wecom_peer.callback_app(
        wecom_peer.text_xml(user_id="zhangsan", content="扩容 prod 工作节点 5")
    )
    answer = await http.post(f"/wecom/callback?{query}", content=body)
    assert answer.status_code == 200 and answer.text == ""
    await settle(sink, messages=1)
    [message] = sink.messages
    assert message.text == "扩容 prod 工作节点 5"
    assert message.identity.platform == "wecom" and message.identity.user_id == "zhangsan"
    assert message.identity.display_name == "张三"  # the contacts API's name, not the userid
    assert message.conversation.conversation_id == "user:zhangsan" and message.conversation.is_direct


async def test_peer_forged_signature_is_refused_and_nothing_delivered(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    query, body = wecom_peer.callback_app(
        wecom_peer.text_xml(user_id="mallory", content="delete cluster prod")
    )
    forged = query.replace("msg_signature=", "msg_signature=ff")
    answer = await http.post(f"/wecom/callback?{forged}", content=body)
    assert answer.status_code == 403
    other_key = WeComPeer(corp_id=wecom_peer.corp_id)
    query, body = other_key.callback_app(other_key.text_xml(user_id="mallory", content="delete cluster prod"))
    assert (await http.post(f"/wecom/callback?{query}", content=body)).status_code == 403
    await asyncio.sleep(0.05)
    assert sink.messages == []


async def test_peer_stale_timestamp_is_refused(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    xml = wecom_peer.text_xml(user_id="zhangsan", content="list clusters")
    query, body = wecom_peer.callback_app(xml, timestamp=int(time.time()) - 301)
    answer = await http.post(f"/wecom/callback?{query}", content=body)
    assert answer.status_code == 403 and "stale" in answer.text
    await asyncio.sleep(0.05)
    assert sink.messages == []


async def test_peer_replayed_request_is_refused(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    query, body = wecom_peer.callback_app(wecom_peer.text_xml(user_id="zhangsan", content="list clusters"))
    assert (await http.post(f"/wecom/callback?{query}", content=body)).status_code == 200
    replay = await http.post(f"/wecom/callback?{query}", content=body)
    assert replay.status_code == 403 and "replay" in replay.text
    await settle(sink, messages=1)
    await asyncio.sleep(0.05)
    assert len(sink.messages) == 1


async def test_peer_platform_retry_of_one_message_is_handled_once(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    xml = wecom_peer.text_xml(user_id="zhangsan", content="list clusters", msg_id=777)
    for _ in range(3):
        query, body = wecom_peer.callback_app(xml)  # a retry is signed again with a new nonce
        assert (await http.post(f"/wecom/callback?{query}", content=body)).status_code == 200
    await settle(sink, messages=1)
    await asyncio.sleep(0.05)
    assert len(sink.messages) == 1


async def test_bad_bodies_get_a_clear_400(http: httpx.AsyncClient, wecom_peer: WeComPeer) -> None:
    query, _ = wecom_peer.callback_app(wecom_peer.text_xml(user_id="a", content="b"))
    assert (await http.post(f"/wecom/callback?{query}", content=b"not xml")).status_code == 400
    assert (await http.post("/wecom/callback", content=b"<xml/>")).status_code == 400
    assert (await http.post(f"/wecom/smartbot?{query}", content=b"[1]")).status_code == 400
    assert (await http.post(f"/wecom/callback?{query}", content=b"x" * 70_000)).status_code == 413


async def test_peer_card_click_reaches_the_sink_with_the_original_value_and_allows_one_update(
    adapter: WeComAdapter, http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    ref = await adapter.send(
        Conversation(platform="wecom", conversation_id="user:lisi"), samples.APPROVAL_REQUEST
    )
    key = wecom_peer.sent[-1].payload["template_card"]["button_list"][0]["key"]
    adapter.state.take_response_code(
        task_id=ref.message_id
    )  # the send's code is spent: the click brings a new one
    query, body = wecom_peer.callback_app(
        wecom_peer.card_click_xml(user_id="lisi", task_id=ref.message_id, key=key)
    )
    assert (await http.post(f"/wecom/callback?{query}", content=body)).status_code == 200
    await settle(sink, clicks=1)
    [click] = sink.clicks
    assert click.action_id == "approval.approve" and click.value == "ap1.approve.sig"
    assert click.identity.user_id == "lisi"
    assert click.message is not None and click.message.message_id == ref.message_id
    await adapter.update(ref, samples.APPROVAL_DECIDED)
    assert wecom_peer.sent[-1].api == "message/update_template_card"


async def test_peer_click_on_an_unknown_card_is_answered_not_delivered(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    xml = wecom_peer.card_click_xml(user_id="lisi", task_id="kobot_forged", key="ap1.approve.sig")
    query, body = wecom_peer.callback_app(xml)
    assert (await http.post(f"/wecom/callback?{query}", content=body)).status_code == 200
    for _ in range(200):
        if wecom_peer.sent:
            break
        await asyncio.sleep(0.01)
    assert sink.clicks == []
    assert "expired" in wecom_peer.sent[-1].payload["markdown"]["content"]


def smart_bot_text(peer: WeComPeer, *, content: str, chat_id: str = "wrgroup1") -> dict[str, object]:
    return {
        "msgid": f"m{time.time_ns()}",
        "aibotid": "aibkobot",
        "chatid": chat_id,
        "chattype": "group",
        "from": {"userid": "wangwu"},
        "response_url": peer.new_reply_url(),
        "msgtype": "text",
        "text": {"content": content},
    }


async def test_peer_smart_bot_mention_in_a_group_gets_a_reply_through_its_url(
    adapter: WeComAdapter, http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    query, body = wecom_peer.callback_smart_bot(smart_bot_text(wecom_peer, content="@kobot list clusters"))
    answer = await http.post(f"/wecom/smartbot?{query}", content=body)
    assert answer.status_code == 200
    await settle(sink, messages=1)
    [message] = sink.messages
    assert message.text == "list clusters"
    assert message.conversation.conversation_id == "smartbot:wrgroup1" and not message.conversation.is_direct
    assert message.identity.user_id == "wangwu"
    await adapter.send(message.conversation, samples.COMMAND_REPLY)
    assert wecom_peer.sent[-1].api == "smartbot/reply"
    assert "prod" in wecom_peer.sent[-1].payload["markdown"]["content"]


async def test_peer_smart_bot_url_check_and_forged_callback(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    answer = await http.get(f"/wecom/smartbot?{wecom_peer.callback_url_check(echostr='e1', smart_bot=True)}")
    assert answer.status_code == 200 and answer.text == "e1"
    query, body = wecom_peer.callback_smart_bot(smart_bot_text(wecom_peer, content="@kobot hi"))
    app_signed = query.replace("msg_signature=", "msg_signature=00")
    assert (await http.post(f"/wecom/smartbot?{app_signed}", content=body)).status_code == 403
    assert (await http.post(f"/wecom/smartbot?{query}", content=body)).status_code == 200
    assert (await http.post(f"/wecom/smartbot?{query}", content=body)).status_code == 403


async def test_peer_smart_bot_card_click_reaches_the_sink(
    adapter: WeComAdapter, http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    query, body = wecom_peer.callback_smart_bot(
        smart_bot_text(wecom_peer, content="@kobot delete cluster staging")
    )
    await http.post(f"/wecom/smartbot?{query}", content=body)
    await settle(sink, messages=1)
    ref = await adapter.ask(sink.messages[0].conversation, samples.APPROVAL_REQUEST)
    card = wecom_peer.sent[-1].payload["template_card"]
    click = {
        "msgid": "click1",
        "aibotid": "aibkobot",
        "chatid": "wrgroup1",
        "chattype": "group",
        "from": {"userid": "zhaoliu"},
        "response_url": wecom_peer.new_reply_url(),
        "msgtype": "event",
        "event": {
            "eventtype": "template_card_event",
            "template_card_event": {
                "card_type": "button_interaction",
                "event_key": card["button_list"][1]["key"],
                "task_id": ref.message_id,
            },
        },
    }
    query, body = wecom_peer.callback_smart_bot(click)
    assert (await http.post(f"/wecom/smartbot?{query}", content=body)).status_code == 200
    await settle(sink, clicks=1)
    [received] = sink.clicks
    assert (received.action_id, received.value) == ("approval.reject", "ap1.reject.sig")
    assert received.identity.user_id == "zhaoliu"


async def test_peer_signed_callback_with_a_malformed_timestamp_is_refused_not_a_crash(
    http: httpx.AsyncClient, wecom_peer: WeComPeer, sink: RecordingSink
) -> None:
    """Signed correctly for the bad value, so only its format can be the reason for the refusal."""
    xml = wecom_peer.text_xml(user_id="mallory", content="list clusters")
    for timestamp in ("abc", "1e9", "9" * 5000, "-"):
        query, body = wecom_peer.callback_app(xml, timestamp=timestamp)  # type: ignore[arg-type]
        answer = await http.post(f"/wecom/callback?{query}", content=body)
        assert answer.status_code in (400, 403), (timestamp[:20], answer.status_code)
    await asyncio.sleep(0.05)
    assert sink.messages == []

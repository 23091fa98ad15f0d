"""Stream mode against the peer gateway: the real dingtalk-stream SDK routing frames, acks, reconnects.

The gateway pushes each message once (no redelivery): these tests show what kobot does about that.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest
from pydantic import SecretStr
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from bot.chat.dingtalk import inbound
from bot.chat.dingtalk.adapter import DingTalkAdapter
from bot.chat.dingtalk.stream import TOPIC_CARD, TOPIC_CHAT, StreamConnection
from tests.chat.sinks import RecordingSink
from tests.peers.dingtalk import DISCONNECT_GRACE_SECONDS, TICKET_TTL_SECONDS, DingTalkPeer
from tests.support.dingtalk import settings_for
from tests.support.network import free_port
from tests.support.waiting import wait_until


async def test_peer_group_mention_reaches_sink_with_identity(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    frame_id = peer.push_chat("create cluster prod masters=1 workers=0", staff_id="staff-7", nick="王五")

    assert await wait_until(lambda: len(sink.messages) == 1)
    message = sink.messages[0]
    assert message.text == "create cluster prod masters=1 workers=0"
    assert message.identity.platform == "dingtalk"
    assert message.identity.user_id == "staff-7"
    assert message.identity.display_name == "王五"
    assert message.conversation.conversation_id == "cidGroupProd01"
    assert not message.conversation.is_direct
    assert message.conversation.extra[inbound.EXTRA_SESSION_WEBHOOK].startswith(peer.endpoint)
    assert await wait_until(lambda: peer.ack_for(frame_id) is not None)
    ack = peer.ack_for(frame_id)
    assert ack is not None and ack.code == 200
    assert {s["topic"] for s in peer.subscriptions} == {TOPIC_CHAT, TOPIC_CARD}


async def test_peer_sink_runs_on_the_app_loop(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    peer.push_chat("help")
    assert await wait_until(lambda: len(sink.messages) == 1)
    assert sink.loops == {id(asyncio.get_running_loop())}


async def test_peer_direct_message_is_direct(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    peer.push_chat(
        "list clusters", conversation_type="1", conversation_id="cidDirectBob", staff_id="staff-bob"
    )

    assert await wait_until(lambda: len(sink.messages) == 1)
    conversation = sink.messages[0].conversation
    assert conversation.is_direct
    assert conversation.extra[inbound.EXTRA_USER_ID] == "staff-bob"


async def test_peer_replayed_frame_runs_once(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    first = peer.push_chat("scale workers +1 on prod", msg_id="msgSame01")
    second = peer.push_chat("scale workers +1 on prod", msg_id="msgSame01")

    assert await wait_until(lambda: peer.ack_for(first) is not None and peer.ack_for(second) is not None)
    assert await wait_until(lambda: len(sink.messages) >= 1)
    assert len(sink.messages) == 1
    assert peer.unacked() == []


async def test_peer_stale_message_is_refused_with_an_answer(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    an_hour_ago = int(time.time() * 1000) - 3600 * 1000
    peer.push_chat("delete cluster staging", created_ms=an_hour_ago)

    assert await wait_until(lambda: len(peer.requests_to("/robot/sendBySession")) == 1)
    answer = peer.requests_to("/robot/sendBySession")[0].body
    assert "60 minutes ago" in answer["markdown"]["title"]
    assert sink.messages == []


async def test_peer_picture_gets_a_clear_answer(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    peer.push_chat("", msgtype="picture")

    assert await wait_until(lambda: len(peer.requests_to("/robot/sendBySession")) == 1)
    assert "only understand text" in peer.requests_to("/robot/sendBySession")[0].body["markdown"]["text"]
    assert sink.messages == []


async def test_peer_ping_is_answered_with_its_data(peer: DingTalkPeer, adapter: DingTalkAdapter) -> None:
    frame_id = peer.push_ping()

    assert await wait_until(lambda: peer.ack_for(frame_id) is not None)
    ack = peer.ack_for(frame_id)
    assert ack is not None and ack.code == 200
    assert "opaque" in json.loads(ack.data)


async def test_peer_disconnect_request_reconnects_at_once(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    peer.push_disconnect()
    # The SDK closes the old socket itself; kobot opens the next one without waiting for the grace.
    assert await wait_until(lambda: peer.open_connections() == [2], timeout=5)
    for n in range(3):
        peer.push_chat(f"status cluster c{n}")

    assert await wait_until(lambda: len(sink.messages) == 3)
    assert [m.text for m in sink.messages] == ["status cluster c0", "status cluster c1", "status cluster c2"]
    assert await wait_until(lambda: peer.unacked() == [])
    assert peer.dropped == [] and peer.lost == []


async def test_peer_frames_are_never_pushed_again_after_a_drop(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    # The socket dies right after this frame is written: the gateway never sees its ack.
    cut = peer.push_chat("create cluster a", then_drop=True)
    # Sent while kobot has no connection: DingTalk keeps nothing for later.
    away = [peer.push_chat(f"create cluster {name}") for name in ("b", "c")]

    assert await wait_until(lambda: peer.open_connections() == [2], timeout=10)
    peer.push_chat("create cluster d")
    assert await wait_until(lambda: "create cluster d" in [m.text for m in sink.messages])
    await asyncio.sleep(0.3)

    assert peer.dropped == away
    assert cut in peer.lost
    assert [frame for frame, _ in peer.sent_frames].count(cut) == 1
    texts = [m.text for m in sink.messages]
    assert "create cluster b" not in texts and "create cluster c" not in texts


async def test_peer_message_kobot_cannot_take_is_answered_with_please_send_again(
    peer: DingTalkPeer, sink: RecordingSink
) -> None:
    # A store that is down: the message cannot be recorded or handed on, and DingTalk will not
    # send it again, so the sender is asked to (over the session webhook, which needs no store).
    no_retry = Retry(NoBackoff(), 0)
    broken = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=no_retry)
    dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=broken)
    await dingtalk.start(sink)
    try:
        frame = peer.push_chat("create cluster prod")
        assert await wait_until(lambda: len(peer.requests_to("/robot/sendBySession")) == 1, timeout=5)
    finally:
        await dingtalk.stop()
    answer = peer.requests_to("/robot/sendBySession")[0].body["markdown"]
    assert "please send it again" in answer["title"]
    ack = peer.ack_for(frame)
    assert ack is not None and ack.code == 500
    assert sink.messages == []


async def test_peer_two_processes_share_the_messages_and_each_runs_once(
    peer: DingTalkPeer, redis: Redis
) -> None:
    first, second = RecordingSink(), RecordingSink()
    one = DingTalkAdapter(settings=settings_for(peer), redis=redis)
    two = DingTalkAdapter(settings=settings_for(peer), redis=redis)
    await one.start(first)
    await two.start(second)
    try:
        # A second connection does not close the first: the gateway spreads messages over both.
        assert peer.open_connections() == [1, 2]
        for n in range(10):
            peer.push_chat(f"status cluster c{n}")
        assert await wait_until(lambda: len(first.messages) + len(second.messages) == 10)
    finally:
        await one.stop()
        await two.stop()
    assert first.messages and second.messages
    texts = sorted(m.text for m in first.messages + second.messages)
    assert texts == sorted(f"status cluster c{n}" for n in range(10))


async def test_peer_expired_ticket_is_refused_and_kobot_asks_for_a_new_one(
    peer: DingTalkPeer, redis: Redis, sink: RecordingSink
) -> None:
    peer.age_next_ticket(TICKET_TTL_SECONDS + 1)
    dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=redis)
    await dingtalk.start(sink)
    try:
        assert await wait_until(lambda: peer.open_connections() == [1], timeout=5)
    finally:
        await dingtalk.stop()
    assert [r.status for r in peer.requests_to("/gateway/connect")][:2] == [403, 101]
    assert len(peer.requests_to("/v1.0/gateway/connections/open")) == 2


async def test_peer_closes_a_connection_10_seconds_after_disconnect(peer: DingTalkPeer) -> None:
    # A client that ignores `disconnect` (the SDK does not: it closes at once) keeps nothing new and
    # is closed by the gateway when the grace is over; the peer's clock stands in for the 10 s.
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{peer.endpoint}/v1.0/gateway/connections/open",
            json={"clientId": peer.client_id, "clientSecret": peer.client_secret, "subscriptions": []},
        ) as opened:
            gateway = await opened.json()
        async with http.ws_connect(f"{gateway['endpoint']}?ticket={gateway['ticket']}") as ws:
            peer.push_disconnect()
            first = await ws.receive_json(timeout=5)
            assert first["headers"]["topic"] == "disconnect"
            late = peer.push_chat("status cluster prod")
            assert late in peer.dropped
            peer.clock.advance(DISCONNECT_GRACE_SECONDS - 1)
            await asyncio.sleep(0.3)
            assert not ws.closed
            peer.clock.advance(1)
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert await wait_until(lambda: peer.open_connections() == [])


async def test_peer_wrong_credentials_retry_with_backoff_and_never_log_the_secret(
    peer: DingTalkPeer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + peer.client_secret

    async def handle(topic: str, data: dict[str, object], frame_id: str) -> None:
        raise AssertionError("no frame can arrive without a connection")

    connection = StreamConnection(
        endpoint=peer.endpoint, client_id=peer.client_id, client_secret=SecretStr(wrong), handle=handle
    )
    try:
        assert connection.start(timeout=1.0) is False
        assert await wait_until(
            lambda: len(peer.requests_to("/v1.0/gateway/connections/open")) >= 2, timeout=5
        )
    finally:
        connection.stop()
    attempts = peer.requests_to("/v1.0/gateway/connections/open")
    assert all(a.status == 401 for a in attempts)
    assert peer.connections == 0
    assert wrong not in caplog.text
    assert "connections/open answered HTTP 401" in caplog.text


async def test_peer_stop_closes_the_socket_and_can_run_twice(
    peer: DingTalkPeer, redis: Redis, sink: RecordingSink
) -> None:
    dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=redis)
    await dingtalk.start(sink)
    stream = dingtalk.stream
    assert stream is not None and stream.connected.is_set()
    await dingtalk.stop()
    await dingtalk.stop()
    assert not stream.connected.is_set()
    assert stream._thread is None
    assert await wait_until(lambda: peer.open_connections() == [])

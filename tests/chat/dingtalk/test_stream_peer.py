"""Stream mode against the peer gateway: the real dingtalk-stream SDK routing frames, acks, reconnects."""

from __future__ import annotations

import json
import logging
import time

import pytest
from pydantic import SecretStr

from bot.chat.dingtalk import inbound
from bot.chat.dingtalk.adapter import DingTalkAdapter
from bot.chat.dingtalk.stream import TOPIC_CARD, TOPIC_CHAT, StreamConnection
from tests.chat.sinks import RecordingSink
from tests.peers.dingtalk import DingTalkPeer
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
    import asyncio

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


async def test_peer_disconnect_request_reconnects_and_loses_nothing(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    peer.push_disconnect()
    assert await wait_until(lambda: peer.connections == 2)
    for n in range(3):
        peer.push_chat(f"status cluster c{n}")

    assert await wait_until(lambda: len(sink.messages) == 3)
    assert [m.text for m in sink.messages] == ["status cluster c0", "status cluster c1", "status cluster c2"]
    assert await wait_until(lambda: peer.unacked() == [])


async def test_peer_dropped_socket_resends_unacked_frames_and_each_runs_once(
    peer: DingTalkPeer, adapter: DingTalkAdapter, sink: RecordingSink
) -> None:
    # The socket dies right after this frame is written: the peer never sees its ack.
    dropped = peer.push_chat("create cluster a", then_drop=True)
    # While kobot is away, more messages arrive; the platform keeps them.
    for name in ("b", "c", "d"):
        peer.push_chat(f"create cluster {name}")

    assert await wait_until(lambda: peer.connections >= 2 and peer.unacked() == [], timeout=10)
    assert await wait_until(lambda: len(sink.messages) == 4)
    assert sorted(m.text for m in sink.messages) == [f"create cluster {n}" for n in "abcd"]
    assert [frame for frame, _ in peer.sent_frames].count(dropped) == 2


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
    peer: DingTalkPeer, redis: object, sink: RecordingSink
) -> None:
    from tests.support.dingtalk import settings_for

    dingtalk = DingTalkAdapter(settings=settings_for(peer), redis=redis)  # type: ignore[arg-type]
    await dingtalk.start(sink)
    stream = dingtalk.stream
    assert stream is not None and stream.connected.is_set()
    await dingtalk.stop()
    await dingtalk.stop()
    assert not stream.connected.is_set()
    assert stream._thread is None
    assert await wait_until(lambda: peer._ws is None)

"""Socket Mode: Bolt's aiohttp client opens the peer's link, acks envelopes, and reconnects on request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.chat.slack.adapter import SlackAdapter
from kobot.conversations import Conversation
from tests.chat.samples import APPROVAL_REQUEST
from tests.chat.sinks import RecordingSink
from tests.peers.slack import (
    SlackPeer,
    block_actions,
    event_callback,
    mention_event,
    slash_command,
)
from tests.support.slack import settings_for
from tests.support.waiting import eventually


@pytest.fixture
async def socket_adapter(
    peer: SlackPeer, signing_secret: str, redis_url: str, sink: RecordingSink
) -> AsyncIterator[SlackAdapter]:
    slack = SlackAdapter(settings=settings_for(peer, signing_secret, socket_mode=True), redis_url=redis_url)
    await slack.start(sink)
    yield slack
    await slack.stop()


async def test_peer_socket_mode_has_no_http_route_and_connects_with_the_app_token(
    socket_adapter: SlackAdapter, peer: SlackPeer
) -> None:
    assert socket_adapter.router() is None
    [opened] = peer.requests_to("apps.connections.open")
    assert opened.authorization == f"Bearer {peer.app_token}"
    await eventually(lambda: peer.socket_connections == 1)


async def test_peer_socket_mention_acked_and_delivered(
    socket_adapter: SlackAdapter, peer: SlackPeer, sink: RecordingSink
) -> None:
    event = mention_event(text="<@U0KOBOT> list clusters")
    ack = await peer.push("events_api", event_callback(event))
    assert "envelope_id" in ack
    await eventually(lambda: sink.messages)
    message = sink.messages[0]
    assert message.text == "list clusters"
    assert message.identity.display_name == "Alice"
    assert message.conversation.thread_id == event["ts"]


async def test_peer_socket_redelivered_envelope_handled_once(
    socket_adapter: SlackAdapter, peer: SlackPeer, sink: RecordingSink
) -> None:
    payload = event_callback(mention_event(text="<@U0KOBOT> help"), event_id="Ev0SOCKETAGAIN")
    await peer.push("events_api", payload)
    await peer.push("events_api", payload)
    await eventually(lambda: sink.messages)
    await eventually(lambda: socket_adapter.inbound_in_flight == 0)
    assert len(sink.messages) == 1


async def test_peer_socket_click_and_slash_command(
    socket_adapter: SlackAdapter, peer: SlackPeer, sink: RecordingSink
) -> None:
    ref = await socket_adapter.ask(Conversation(platform="slack", conversation_id="C0OPS"), APPROVAL_REQUEST)
    reject = peer.messages[(ref.conversation_id, ref.message_id)].blocks[-1]["elements"][1]
    await peer.push(
        "interactive",
        block_actions(action_id=reject["action_id"], value=reject["value"], message_ts=ref.message_id),
    )
    await peer.push("slash_commands", slash_command(text="help"))
    await eventually(lambda: sink.clicks and sink.messages)
    assert (sink.clicks[0].action_id, sink.clicks[0].value) == ("approval.reject", "ap1.reject.sig")
    assert sink.messages[0].text == "help"


async def test_peer_socket_reconnects_after_disconnect(
    socket_adapter: SlackAdapter, peer: SlackPeer, sink: RecordingSink
) -> None:
    await eventually(lambda: peer.socket_connections == 1)
    await peer.send_disconnect()
    await eventually(lambda: peer.socket_connections == 2)
    await peer.push("events_api", event_callback(mention_event(text="<@U0KOBOT> status")))
    await eventually(lambda: sink.messages)
    assert len(peer.requests_to("apps.connections.open")) == 2


async def test_peer_socket_requests_for_another_workspace_are_acked_and_never_acted_on(
    socket_adapter: SlackAdapter, peer: SlackPeer, sink: RecordingSink
) -> None:
    elsewhere = "T0ELSEWHERE"
    ack = await peer.push(
        "events_api", event_callback(mention_event(text="<@U0KOBOT> list clusters"), team_id=elsewhere)
    )
    assert "envelope_id" in ack
    await peer.push("slash_commands", {**slash_command(text="help"), "team_id": elsewhere})
    await peer.push("events_api", event_callback(mention_event(text="<@U0KOBOT> whoami")))
    await eventually(lambda: sink.messages)
    await eventually(lambda: socket_adapter.inbound_in_flight == 0)
    assert [message.text for message in sink.messages] == ["whoami"]

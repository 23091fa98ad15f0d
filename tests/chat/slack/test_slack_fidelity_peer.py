"""Where Slack fails, kobot copes: late acks and their retries, clicks delivered twice, refused channels,
messages too long for Slack, and one post per second per channel, each answered as Slack answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response

from bot.chat.slack import defaults
from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.defaults import EVENTS_PATH
from bot.chat.slack.render import blocks_text_length
from kobot.conversations import Conversation
from kobot.errors import DeliveryError
from kobot.messages import Field, OutgoingMessage
from tests.chat.sinks import RecordingSink
from tests.peers.slack import (
    POST_INTERVAL_SECONDS,
    RETRY_DELAYS_SECONDS,
    SlackPeer,
    accepts_response_payload,
    block_actions,
    blocks_text_chars,
    event_callback,
    form_body,
    interactive_body,
    mention_event,
    signed_headers,
    slash_command,
)
from tests.support.network import LOOPBACK
from tests.support.waiting import eventually

LATE_ACK_SECONDS = 0.3
"""How late the app's answer comes in the retry tests; the peer's deadline is set below it."""

SHORT_DEADLINE_SECONDS = 0.1
"""The deadline an attempt gets when it stands for Slack giving up on a late ack."""


@contextlib.asynccontextmanager
async def served(adapter: SlackAdapter, *, late: Callable[[], bool]) -> AsyncIterator[str]:
    """The adapter's router under uvicorn on this loop and a real loopback port; an answer is held
    back LATE_ACK_SECONDS (after kobot has handled the request) whenever `late()` says so."""
    app = FastAPI()
    router = adapter.router()
    assert router is not None
    app.include_router(router)

    @app.middleware("http")
    async def slow_ack(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if late():
            await asyncio.sleep(LATE_ACK_SECONDS)
        return response

    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started, what="uvicorn start")
        yield f"http://{LOOPBACK}:{sock.getsockname()[1]}{EVENTS_PATH}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_peer_event_acked_late_is_retried_with_slacks_headers_and_handled_once(
    adapter: SlackAdapter, peer: SlackPeer, signing_secret: str, sink: RecordingSink
) -> None:
    answers = 0

    def first_is_late() -> bool:
        nonlocal answers
        answers += 1
        return answers == 1

    payload = event_callback(mention_event(text="<@U0KOBOT> list clusters"), event_id="Ev0LATEACK")
    async with served(adapter, late=first_is_late) as url:
        attempts = await peer.deliver_event(
            url, payload, signing_secret=signing_secret, deadlines=(SHORT_DEADLINE_SECONDS, 3.0)
        )
    assert [(a.attempt, a.retry_reason, a.status) for a in attempts] == [(0, "", 0), (1, "http_timeout", 200)]
    await eventually(lambda: sink.messages)
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert [m.text for m in sink.messages] == ["list clusters"]


async def test_peer_event_never_acked_in_time_is_retried_three_times_on_slacks_schedule(
    adapter: SlackAdapter, peer: SlackPeer, signing_secret: str, sink: RecordingSink
) -> None:
    payload = event_callback(mention_event(text="<@U0KOBOT> help"), event_id="Ev0ALWAYSLATE")
    async with served(adapter, late=lambda: True) as url:
        delivery = asyncio.create_task(
            peer.deliver_event(
                url, payload, signing_secret=signing_secret, deadlines=(SHORT_DEADLINE_SECONDS,)
            )
        )
        await eventually(lambda: len(peer.deliveries) == 2)
        await asyncio.sleep(0.2)
        assert len(peer.deliveries) == 2, "the second retry waits a minute on Slack's clock"
        peer.clock.advance(RETRY_DELAYS_SECONDS[1])
        await eventually(lambda: len(peer.deliveries) == 3)
        peer.clock.advance(RETRY_DELAYS_SECONDS[2] - RETRY_DELAYS_SECONDS[1])
        attempts = await delivery
    assert [(a.attempt, a.retry_reason) for a in attempts] == [
        (0, ""),
        (1, "http_timeout"),
        (2, "http_timeout"),
        (3, "http_timeout"),
    ]
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert len(sink.messages) == 1


async def test_peer_click_delivered_twice_is_handed_on_once_and_a_new_click_again(
    http: httpx.AsyncClient, adapter: SlackAdapter, peer: SlackPeer, signing_secret: str, sink: RecordingSink
) -> None:
    """A click has no event_id; the same click twice is known by its trigger_id and action_ts."""
    click = block_actions(action_id="approval.approve#0", value="ap1.approve.sig", message_ts="1.000001")
    body = interactive_body(click)
    for timestamp_offset in (0, -1):  # each delivery signed afresh, as a retry or a second copy would be
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **signed_headers(
                signing_secret=signing_secret,
                body=body,
                timestamp=int(peer.clock.wall_ms() / 1000) + timestamp_offset,
            ),
        }
        assert (await http.post(EVENTS_PATH, content=body, headers=headers)).status_code == 200
    await eventually(lambda: sink.clicks)
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert len(sink.clicks) == 1
    again = block_actions(action_id="approval.approve#0", value="ap1.approve.sig", message_ts="1.000001")
    body = interactive_body(again)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **signed_headers(signing_secret=signing_secret, body=body),
    }
    assert (await http.post(EVENTS_PATH, content=body, headers=headers)).status_code == 200
    await eventually(lambda: len(sink.clicks) == 2)


def test_peer_socket_envelopes_accept_a_response_only_where_slack_does() -> None:
    click = block_actions(action_id="a", value="v", message_ts="1.1")
    assert accepts_response_payload("interactive", click) is False
    assert accepts_response_payload("interactive", {"type": "view_submission"}) is True
    assert accepts_response_payload("slash_commands", dict(slash_command(text="help"))) is True
    assert accepts_response_payload("events_api", event_callback(mention_event(text="x"))) is False


async def test_peer_chat_update_answers_with_the_edited_message(adapter: SlackAdapter) -> None:
    ref = await adapter.send(
        Conversation(platform="slack", conversation_id="C0OPS"), OutgoingMessage(title="one")
    )
    answer = await adapter.client.chat_update(channel=ref.conversation_id, ts=ref.message_id, text="two")
    assert answer["ts"] == ref.message_id
    assert answer["message"]["text"] == "two"


@pytest.mark.parametrize(
    ("channel", "error", "advice"),
    [("C0LEFT", "not_in_channel", "/invite @kobot"), ("C0OLD", "is_archived", "archived")],
)
async def test_peer_refused_channels_say_what_to_do(
    adapter: SlackAdapter, peer: SlackPeer, channel: str, error: str, advice: str
) -> None:
    peer.not_in_channels.add("C0LEFT")
    peer.archived_channels.add("C0OLD")
    with pytest.raises(DeliveryError) as refused:
        await adapter.send(
            Conversation(platform="slack", conversation_id=channel), OutgoingMessage(title="hi")
        )
    assert error in refused.value.user_message and advice in refused.value.user_message
    assert [call.error for call in peer.requests_to("chat.postMessage")] == [error]


def huge_message() -> OutgoingMessage:
    fields = tuple(Field(label=f"node-{n}", value="x" * 1900) for n in range(30))
    return OutgoingMessage(title="Job 7 failed", body="b" * 100_000, code="c" * 10_000, fields=fields)


async def test_peer_message_too_long_for_slack_is_shortened_to_fit(
    adapter: SlackAdapter, peer: SlackPeer
) -> None:
    ref = await adapter.send(Conversation(platform="slack", conversation_id="C0OPS"), huge_message())
    posted = peer.messages[(ref.conversation_id, ref.message_id)]
    assert len(posted.text) <= defaults.TEXT_MAX_CHARS
    assert blocks_text_chars(posted.blocks) <= defaults.BLOCKS_TEXT_MAX_CHARS
    assert blocks_text_length(posted.blocks) == blocks_text_chars(posted.blocks)
    [code] = [b for b in posted.blocks if b.get("text", {}).get("text", "").startswith("```")]
    assert code["text"]["text"].endswith("…\n```"), "a shortened code block keeps its closing fence"
    assert [call.error for call in peer.requests_to("chat.postMessage")] == [None]


async def test_peer_blocks_refused_as_too_long_are_sent_again_shorter(
    adapter: SlackAdapter, peer: SlackPeer
) -> None:
    """Slack counts some overhead per block the peer does not; a lower peer limit stands for it."""
    peer.blocks_text_max_chars = 8_000
    ref = await adapter.send(Conversation(platform="slack", conversation_id="C0OPS"), huge_message())
    assert [call.error for call in peer.requests_to("chat.postMessage")] == ["msg_blocks_too_long", None]
    posted = peer.messages[(ref.conversation_id, ref.message_id)]
    assert blocks_text_chars(posted.blocks) <= defaults.BLOCKS_TEXT_RETRY_CHARS
    peer.blocks_text_max_chars = 1_000
    with pytest.raises(DeliveryError, match="msg_blocks_too_long"):
        await adapter.update(ref, huge_message())


async def test_peer_one_post_per_second_per_channel_is_waited_out_and_nothing_lost(
    adapter: SlackAdapter, peer: SlackPeer
) -> None:
    peer.post_interval_seconds = POST_INTERVAL_SECONDS
    ops = Conversation(platform="slack", conversation_id="C0OPS")
    other = Conversation(platform="slack", conversation_id="C0OTHER")
    refs = await asyncio.gather(
        *(adapter.send(ops, OutgoingMessage(title=f"alert {n}")) for n in range(3)),
        adapter.send(other, OutgoingMessage(title="elsewhere")),
    )
    posts = peer.requests_to("chat.postMessage")
    assert sum(1 for call in posts if call.status == 429 and call.error == "ratelimited") >= 2
    assert all(call.body["channel"] == "C0OPS" for call in posts if call.status == 429)
    titles = sorted(peer.messages[(r.conversation_id, r.message_id)].text.splitlines()[0] for r in refs)
    assert len(titles) == 4 and len(peer.posted()) == 4
    assert all(any(f"alert {n}" in t for t in titles) for n in range(3))


async def test_peer_replay_dressed_as_a_retry_is_acked_and_does_nothing(
    http: httpx.AsyncClient, adapter: SlackAdapter, signing_secret: str, sink: RecordingSink
) -> None:
    """A same-second retry repeats the signature; kobot acks it (so Slack stops retrying) and drops it.
    A replay of a slash command with a made-up retry header is dropped the same way."""
    body = form_body(slash_command(text="help"))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **signed_headers(signing_secret=signing_secret, body=body),
    }
    assert (await http.post(EVENTS_PATH, content=body, headers=headers)).status_code == 200
    again = await http.post(
        EVENTS_PATH,
        content=body,
        headers=headers | {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"},
    )
    assert again.status_code == 200
    plain = await http.post(EVENTS_PATH, content=body, headers=headers)
    assert plain.status_code == 401
    await eventually(lambda: sink.messages)
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert len(sink.messages) == 1


async def test_peer_malformed_bodies_keep_the_keep_alive_connection_usable(
    adapter: SlackAdapter, signing_secret: str, sink: RecordingSink
) -> None:
    """Over a real socket: malformed signed bodies get 400s on one kept-alive connection (a 500 used to
    make uvicorn drop it without `Connection: close`), and a good event after them is handled."""
    good = json.dumps(event_callback(mention_event(text="<@U0KOBOT> help"))).encode()
    bodies = [b"\xff" + good, b"\xef\xbb\xbf" + good, b"[1]", good]
    opened: list[object] = []
    async with (
        served(adapter, late=lambda: False) as url,
        httpx.AsyncClient(limits=httpx.Limits(max_connections=1)) as client,
    ):
        for body in bodies:
            headers = {
                "Content-Type": "application/json",
                **signed_headers(signing_secret=signing_secret, body=body),
            }
            response = await client.post(url, content=body, headers=headers)
            assert response.headers.get("connection", "").lower() != "close"
            opened.append(response.extensions.get("network_stream"))
            assert response.status_code == (200 if body is good else 400)
    assert len({id(stream) for stream in opened}) == 1, "every request went over the same connection"
    await eventually(lambda: sink.messages)

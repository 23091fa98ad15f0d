"""Inbound over HTTP: signed callbacks through Bolt to the sink; forged, stale and replayed ones refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
import pytest
from redis import Redis

from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.defaults import EVENTS_PATH
from kobot.conversations import Conversation
from tests.chat.samples import APPROVAL_REQUEST
from tests.chat.sinks import RecordingSink
from tests.peers.slack import (
    SlackPeer,
    block_actions,
    event_callback,
    form_body,
    im_event,
    interactive_body,
    mention_event,
    signed_headers,
    slash_command,
)
from tests.support.waiting import eventually


async def post_json(
    http: httpx.AsyncClient, secret: str, payload: dict[str, object], *, timestamp: int | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        **signed_headers(signing_secret=secret, body=body, timestamp=timestamp),
    }
    return await http.post(EVENTS_PATH, content=body, headers=headers)


async def post_form(http: httpx.AsyncClient, secret: str, body: bytes) -> httpx.Response:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **signed_headers(signing_secret=secret, body=body),
    }
    return await http.post(EVENTS_PATH, content=body, headers=headers)


async def test_peer_mention_reaches_sink_with_identity_and_thread(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    event = mention_event(text="<@U0KOBOT> create cluster prod masters=1 hosts=<http://a.example|a.example>")
    response = await post_json(http, signing_secret, event_callback(event))
    assert response.status_code == 200
    await eventually(lambda: sink.messages)
    message = sink.messages[0]
    assert message.text == "create cluster prod masters=1 hosts=a.example"
    assert message.identity.platform == "slack"
    assert message.identity.user_id == "U0ALICE"
    assert message.identity.display_name == "Alice"
    assert message.identity.email == "alice@example.org"
    assert message.conversation.conversation_id == "C0OPS"
    assert message.conversation.thread_id == event["ts"]
    assert message.conversation.is_direct is False
    assert message.message_id == event["ts"]


async def test_peer_url_verification_answers_the_challenge(
    http: httpx.AsyncClient, signing_secret: str
) -> None:
    response = await post_json(
        http, signing_secret, {"type": "url_verification", "challenge": "c-123", "token": "x"}
    )
    assert response.status_code == 200
    assert response.json() == {"challenge": "c-123"}


async def test_peer_bad_signature_refused(http: httpx.AsyncClient, sink: RecordingSink) -> None:
    response = await post_json(http, "not-the-secret", event_callback(mention_event(text="<@U0KOBOT> help")))
    assert response.status_code == 401
    unsigned = await http.post(EVENTS_PATH, content=b"{}", headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert sink.messages == []


async def test_peer_stale_timestamp_refused(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    stale = int(time.time()) - 301
    response = await post_json(
        http, signing_secret, event_callback(mention_event(text="hi")), timestamp=stale
    )
    assert response.status_code == 401
    future = int(time.time()) + 400
    response = await post_json(
        http, signing_secret, event_callback(mention_event(text="hi")), timestamp=future
    )
    assert response.status_code == 401
    assert sink.messages == []


async def test_peer_replayed_request_refused(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    body = json.dumps(event_callback(mention_event(text="<@U0KOBOT> delete cluster prod"))).encode()
    headers = {"Content-Type": "application/json", **signed_headers(signing_secret=signing_secret, body=body)}
    first = await http.post(EVENTS_PATH, content=body, headers=headers)
    second = await http.post(EVENTS_PATH, content=body, headers=headers)
    assert first.status_code == 200
    assert second.status_code == 401
    assert second.json() == {"error": "replayed request"}
    await eventually(lambda: sink.messages)
    assert len(sink.messages) == 1


async def test_peer_redelivered_event_handled_once(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, redis: Redis, adapter: SlackAdapter
) -> None:
    payload = event_callback(mention_event(text="<@U0KOBOT> list clusters"), event_id="Ev0REDELIVERED")
    now = int(time.time())
    # explicit stamps: the same second twice would be the same signature, a replay, not a redelivery
    first = await post_json(http, signing_secret, payload, timestamp=now)
    again = await post_json(http, signing_secret, payload, timestamp=now - 1)
    assert (first.status_code, again.status_code) == (200, 200)
    await eventually(lambda: sink.messages)
    await eventually(lambda: redis.exists("kobot:slack:event:Ev0REDELIVERED"))
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert len(sink.messages) == 1


async def test_peer_direct_message_reaches_sink_and_own_messages_do_not(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    own = im_event(text="✅ done", user="U0KOBOT") | {"bot_id": "B0KOBOT"}
    edited = im_event(text="x") | {"subtype": "message_changed"}
    for payload in (own, edited, im_event(text="list clusters")):
        assert (await post_json(http, signing_secret, event_callback(payload))).status_code == 200
    await eventually(lambda: sink.messages)
    assert [m.text for m in sink.messages] == ["list clusters"]
    message = sink.messages[0]
    assert message.conversation.is_direct is True
    assert message.conversation.conversation_id == "D0ALICE"
    assert message.conversation.thread_id is None


async def test_peer_slash_command_acked_and_delivered(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    response = await post_form(http, signing_secret, form_body(slash_command(text="扩容 prod 工作节点 5")))
    assert response.status_code == 200
    await eventually(lambda: sink.messages)
    message = sink.messages[0]
    assert message.text == "扩容 prod 工作节点 5"
    assert message.conversation.conversation_id == "C0OPS"
    assert message.identity.display_name == "Alice"


async def test_peer_button_click_reaches_sink_with_value_verbatim(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, adapter: SlackAdapter, peer: SlackPeer
) -> None:
    ref = await adapter.ask(Conversation(platform="slack", conversation_id="C0OPS"), APPROVAL_REQUEST)
    sent = peer.messages[(ref.conversation_id, ref.message_id)]
    approve = sent.blocks[-1]["elements"][0]
    payload = block_actions(action_id=approve["action_id"], value=approve["value"], message_ts=ref.message_id)
    response = await post_form(http, signing_secret, interactive_body(payload))
    assert response.status_code == 200
    await eventually(lambda: sink.clicks)
    click = sink.clicks[0]
    assert click.action_id == "approval.approve"
    assert click.value == "ap1.approve.sig"
    assert click.identity.user_id == "U0BOB"
    assert click.identity.display_name == "Bob Stone"
    assert click.message is not None
    assert click.message.message_id == ref.message_id
    assert click.conversation.conversation_id == "C0OPS"


async def test_peer_click_on_foreign_block_is_not_handed_on(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, adapter: SlackAdapter
) -> None:
    payload = block_actions(action_id="other.app", value="x", message_ts="1.000001")
    payload["actions"][0]["block_id"] = "someone-else"
    assert (await post_form(http, signing_secret, interactive_body(payload))).status_code == 404
    await post_json(http, signing_secret, event_callback(mention_event(text="<@U0KOBOT> help")))
    await eventually(lambda: sink.messages)
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert sink.clicks == []


async def test_peer_display_names_are_cached(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, peer: SlackPeer
) -> None:
    for text in ("<@U0KOBOT> help", "<@U0KOBOT> list clusters", "<@U0KOBOT> status"):
        await post_json(http, signing_secret, event_callback(mention_event(text=text)))
    await eventually(lambda: len(sink.messages) == 3)
    assert {m.identity.display_name for m in sink.messages} == {"Alice"}
    assert len(peer.requests_to("users.info")) == 1


async def test_peer_a_display_name_is_kept_in_memory_sparing_the_store_read(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, redis: Redis
) -> None:
    """Within USER_MEMORY_SECONDS an event's sender comes from the process's memory, not the store."""
    await post_json(http, signing_secret, event_callback(mention_event(text="<@U0KOBOT> help")))
    await eventually(lambda: len(sink.messages) == 1)
    redis.set("kobot:slack:user:U0ALICE", json.dumps({"name": "Renamed", "email": None}))
    await post_json(http, signing_secret, event_callback(mention_event(text="<@U0KOBOT> status")))
    await eventually(lambda: len(sink.messages) == 2)
    assert [m.identity.display_name for m in sink.messages] == ["Alice", "Alice"]


async def test_peer_unknown_user_falls_back_to_id(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    await post_json(
        http, signing_secret, event_callback(mention_event(text="<@U0KOBOT> help", user="U0NOBODY"))
    )
    await eventually(lambda: sink.messages)
    assert sink.messages[0].identity.user_id == "U0NOBODY"
    assert sink.messages[0].identity.label() == "U0NOBODY"


async def test_peer_oversized_body_refused(http: httpx.AsyncClient, signing_secret: str) -> None:
    body = b"x" * 1_000_001
    headers = signed_headers(signing_secret=signing_secret, body=body)
    response = await http.post(EVENTS_PATH, content=body, headers=headers)
    assert response.status_code == 413


async def test_peer_malformed_timestamp_is_refused_as_forged(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    """A timestamp that is not epoch seconds is a forged request (401), never a crash (500)."""
    body = json.dumps(event_callback(mention_event(text="<@U0KOBOT> help"))).encode()
    for timestamp in ("abc", "1e9", " 1700000000", "-1", "0x6553f100", "9" * 5000):
        # signed correctly for the bad value, so only its format can be the reason for a refusal
        digest = hmac.new(
            signing_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": f"v0={digest}",
        }
        response = await http.post(EVENTS_PATH, content=body, headers=headers)
        assert response.status_code == 401, (timestamp[:20], response.status_code)
    assert not sink.messages


async def test_peer_lone_surrogates_in_a_signed_event_never_reach_a_key_or_the_sink(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, adapter: SlackAdapter, redis: Redis
) -> None:
    """`\\udfff` escapes are valid JSON but not Unicode text: the text loses them, an id carrying one
    is dropped with a warning, and nothing is stored under a key built from it."""
    text_event = event_callback(mention_event(text="<@U0KOBOT> list\udfff clusters"), event_id="Ev0TEXT")
    broken_id = event_callback(mention_event(text="<@U0KOBOT> help"), event_id="Ev0\udfff")
    broken_user = event_callback(mention_event(text="<@U0KOBOT> help", user="U0\udfff"))
    for payload in (text_event, broken_id, broken_user):
        assert (await post_json(http, signing_secret, payload)).status_code == 200
    await eventually(lambda: sink.messages)
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert [m.text for m in sink.messages] == ["list clusters"]
    stored = {k.decode() for k in redis.scan_iter("kobot:slack:event:*")}
    assert stored == {f"kobot:slack:event:{p['event_id']}" for p in (text_event, broken_user)}


async def test_peer_malformed_signed_bodies_are_answered_400_with_the_reason(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink
) -> None:
    """Signed but not a Slack payload: a 400 naming what is wrong, never a 500 (Slack retries those)."""
    good = json.dumps(event_callback(mention_event(text="<@U0KOBOT> help"))).encode()
    cases = {
        b"\xff" + good: "not UTF-8",
        b"\xef\xbb\xbf" + good: "byte-order mark",
        b"[1, 2]": "one object",
        json.dumps(
            event_callback(mention_event(text="x")) | {"authorizations": "x"}
        ).encode(): "authorizations",
        json.dumps(event_callback(mention_event(text="x")) | {"event": None}).encode(): "event must be",
        json.dumps(
            event_callback(mention_event(text="x")) | {"event": {"type": ["x"]}}
        ).encode(): "event.type",
    }
    for body, reason in cases.items():
        headers = {
            "Content-Type": "application/json",
            **signed_headers(signing_secret=signing_secret, body=body),
        }
        response = await http.post(EVENTS_PATH, content=body, headers=headers)
        assert response.status_code == 400, (body[:40], response.status_code)
        assert reason in response.json()["error"]
    assert not sink.messages


async def test_peer_every_request_bolt_runs_shares_the_apps_web_api_client(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, adapter: SlackAdapter
) -> None:
    seen: list[object] = []

    @adapter.app.middleware
    async def record_client(context: Any, next: Any) -> Any:
        seen.append(context.client)
        return await next()

    for index in range(3):
        body = form_body(slash_command(text=f"list clusters {index}"))
        assert (await post_form(http, signing_secret, body)).status_code == 200
    await eventually(lambda: len(sink.messages) == 3)
    assert len(seen) == 3
    assert all(client is adapter.client for client in seen)
    assert adapter.client.session is not None and not adapter.client.session.closed


async def test_peer_mentions_and_direct_messages_are_taken_without_bolt(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, adapter: SlackAdapter
) -> None:
    """The bulk of the traffic skips Bolt's middleware chain; what Bolt answers still reaches it."""
    through_bolt: list[str] = []

    @adapter.app.middleware
    async def record(body: dict[str, Any], next: Any) -> Any:
        through_bolt.append(str(body.get("type") or body.get("command")))
        return await next()

    for payload in (
        event_callback(mention_event(text="<@U0KOBOT> help")),
        event_callback(im_event(text="list clusters")),
    ):
        assert (await post_json(http, signing_secret, payload)).status_code == 200
    await eventually(lambda: len(sink.messages) == 2)
    assert through_bolt == []
    check = await post_json(http, signing_secret, {"type": "url_verification", "challenge": "c-1"})
    assert check.json() == {"challenge": "c-1"}
    assert (await post_form(http, signing_secret, form_body(slash_command(text="help")))).status_code == 200
    assert through_bolt == ["/kobot"]


async def test_peer_kobots_own_events_are_dropped_as_bolt_drops_them(
    http: httpx.AsyncClient, signing_secret: str, sink: RecordingSink, adapter: SlackAdapter
) -> None:
    """kobot's own mention (its user) or message (its bot id) is acked and never handed on."""
    own_mention = mention_event(text="<@U0KOBOT> help", user="U0KOBOT")
    own_message = im_event(text="list clusters", user="U0OTHER") | {"bot_id": "B0KOBOT"}
    for payload in (own_mention, own_message, mention_event(text="<@U0KOBOT> status")):
        assert (await post_json(http, signing_secret, event_callback(payload))).status_code == 200
    await eventually(lambda: sink.messages)
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert [m.text for m in sink.messages] == ["status"]


async def test_peer_requests_for_another_workspace_are_acked_and_never_acted_on(
    http: httpx.AsyncClient,
    signing_secret: str,
    sink: RecordingSink,
    adapter: SlackAdapter,
    peer: SlackPeer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The app installed in a second workspace gets that workspace's requests signed with the same
    secret; kobot's token belongs to the peer's workspace (auth.test), so those are dropped, acked so
    Slack neither retries them nor counts them as failures."""
    elsewhere = "T0ELSEWHERE"
    assert peer.team_id != elsewhere
    mention = event_callback(mention_event(text="<@U0KOBOT> create cluster x masters=1"), team_id=elsewhere)
    command = {**slash_command(text="delete cluster prod"), "team_id": elsewhere}
    ref = await adapter.ask(Conversation(platform="slack", conversation_id="C0OPS"), APPROVAL_REQUEST)
    approve = peer.messages[(ref.conversation_id, ref.message_id)].blocks[-1]["elements"][0]
    click = block_actions(action_id=approve["action_id"], value=approve["value"], message_ts=ref.message_id)
    click["team"] = {"id": elsewhere, "domain": "elsewhere"}
    assert (await post_json(http, signing_secret, mention)).status_code == 200
    assert (await post_form(http, signing_secret, form_body(command))).status_code == 200
    assert (await post_form(http, signing_secret, interactive_body(click))).status_code == 200
    # then the same from kobot's own workspace, which is acted on
    assert (
        await post_json(http, signing_secret, event_callback(mention_event(text="<@U0KOBOT> help")))
    ).status_code == 200
    await eventually(lambda: sink.messages)
    await eventually(lambda: adapter.inbound_in_flight == 0)
    assert [message.text for message in sink.messages] == ["help"]
    assert sink.clicks == []
    # said once for that workspace, not once per request
    said = [r for r in caplog.records if r.levelname == "WARNING" and elsewhere in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]

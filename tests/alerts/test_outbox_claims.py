"""Outbox claims name their process and end with it (real Valkey).

Two processes sharing one store never take the same due entry; a claim lasts as long as its delivery
may, but the claims of a process that stopped beating its heartbeat (kill -9) are due again within
OWNER_DEAD_AFTER_SECONDS, with the latest state of their group, so a resolve that arrived meanwhile
goes out at once instead of minutes later.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis as AsyncRedis

from alerts import defaults
from alerts.models import AlertmanagerWebhook, AlertStatus, Notice
from alerts.store import AlertStore
from kobot.messages import OutgoingMessage
from kobot.settings_alerts import AlertsSettings, RouteTarget
from tests.support.alertmanager import webhook_body

CLAIM = 40.0
"""The claim the tests take: longer than any wait in them, so only a dead owner frees it."""


@pytest.fixture
async def stores(redis_url: str) -> AsyncIterator[tuple[AlertStore, AlertStore]]:
    first_redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    second_redis = AsyncRedis.from_url(redis_url, decode_responses=True)
    try:
        yield AlertStore(redis=first_redis, owner="first"), AlertStore(redis=second_redis, owner="second")
    finally:
        await first_redis.aclose()
        await second_redis.aclose()


async def _notices(store: AlertStore, *, count: int, now: float) -> None:
    for n in range(count):
        notice = Notice(
            notice_id=f"n{n}",
            cluster="prod",
            event="job_failed",
            message=OutgoingMessage(title=f"notice {n}"),
            targets=[RouteTarget(platform="slack", conversation_id=f"C{n}")],
        )
        await store.add_notice(notice, due=now)


async def test_due_entries_are_claimed_by_one_process_and_come_back_after_the_claim(
    stores: tuple[AlertStore, AlertStore],
) -> None:
    first, second = stores
    now = time.time()
    await _notices(first, count=10, now=now)
    taken_first = {e.member for e in await first.due(now=now, claim_seconds=CLAIM, limit=6)}
    taken_second = {e.member for e in await second.due(now=now, claim_seconds=CLAIM, limit=10)}
    assert len(taken_first) == 6 and len(taken_second) == 4
    assert not taken_first & taken_second
    assert await second.due(now=now, claim_seconds=CLAIM) == [], "claimed entries are not due for anyone else"
    later = now + CLAIM + 1
    back = {e.member for e in await second.due(now=later, claim_seconds=CLAIM, limit=20)}
    assert back == taken_first | taken_second, "a claim that was never finished hands the entry back"


async def test_a_silent_owners_claims_are_due_again_and_a_live_owners_are_not(
    stores: tuple[AlertStore, AlertStore],
) -> None:
    first, second = stores
    now = time.time()
    await _notices(first, count=4, now=now)
    await first.heartbeat(now=now)
    await second.heartbeat(now=now)
    taken_first = {e.member for e in await first.due(now=now, claim_seconds=CLAIM, limit=2)}
    taken_second = {e.member for e in await second.due(now=now, claim_seconds=CLAIM, limit=2)}

    soon = now + defaults.OWNER_DEAD_AFTER_SECONDS - 1
    assert await second.heartbeat(now=soon) == [], "an owner silent for less than the limit is alive"
    assert await second.due(now=soon, claim_seconds=CLAIM) == []

    # `first` stopped beating (kill -9); `second` kept on
    later = now + defaults.OWNER_DEAD_AFTER_SECONDS + 1
    assert set(await second.heartbeat(now=later)) == taken_first
    back = {e.member for e in await second.due(now=later, claim_seconds=CLAIM)}
    assert back == taken_first, "only the dead owner's claims come back; the live owner keeps its own"
    assert not back & taken_second


async def test_a_resolve_stored_while_a_dead_owner_held_the_claim_is_due_at_once_in_its_latest_state(
    stores: tuple[AlertStore, AlertStore],
) -> None:
    first, second = stores
    settings = AlertsSettings(default_targets=[RouteTarget(platform="slack", conversation_id="COPS")])
    firing = AlertmanagerWebhook.model_validate(webhook_body(fingerprints=("a1",), group="disk"))
    resolved = AlertmanagerWebhook.model_validate(
        webhook_body(fingerprints=("a1",), group="disk", status="resolved")
    )
    now = time.time()
    await first.heartbeat(now=now)
    await first.ingest(firing, settings=settings, now=datetime.fromtimestamp(now, UTC))
    (entry,) = await first.due(now=now + 0.5, claim_seconds=CLAIM)
    # first dies mid-delivery; the resolve lands on the claimed entry, keeping the claim
    await first.ingest(resolved, settings=settings, now=datetime.fromtimestamp(now + 1, UTC))
    assert await second.due(now=now + 1, claim_seconds=CLAIM) == []

    restarted = now + defaults.OWNER_DEAD_AFTER_SECONDS + 1
    await second.heartbeat(now=restarted)
    (again,) = await second.due(now=restarted, claim_seconds=CLAIM)
    assert again.member == entry.member
    loaded = await second.load_group(again.item_id)
    assert loaded is not None and loaded[0].status is AlertStatus.RESOLVED


async def test_a_stopping_process_hands_its_claims_back_at_once(
    stores: tuple[AlertStore, AlertStore],
) -> None:
    first, second = stores
    now = time.time()
    await _notices(first, count=3, now=now)
    await first.heartbeat(now=now)
    taken = {e.member for e in await first.due(now=now, claim_seconds=CLAIM)}
    await first.release_claims(now=now + 1)
    assert {e.member for e in await second.due(now=now + 1, claim_seconds=CLAIM)} == taken

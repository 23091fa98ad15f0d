"""`AuditLog.append`: entries written without blocking the event loop, many per round trip, none lost, on
a real Valkey."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from kobot.audit import AuditLog
from kobot.conversations import Conversation, Identity
from tests.support.network import LOOPBACK, free_port

ALICE = Identity(platform="slack", user_id="UALICE", display_name="alice")
OPS = Conversation(platform="slack", conversation_id="COPS")


class CountingAuditLog(AuditLog):
    """The real log, noting how many entries each round trip wrote."""

    def __init__(self, *, redis: Redis, store_url: str) -> None:
        super().__init__(redis=redis, store_url=store_url)
        self.round_trips: list[int] = []

    async def _write_batch(self, entries: list[Any]) -> list[str]:
        self.round_trips.append(len(entries))
        return await super()._write_batch(entries)


async def _append(log: AuditLog, index: int) -> str:
    return await log.append(
        who=ALICE,
        where=OPS,
        action="command",
        cluster="prod",
        detail={"text": f"whoami {index}"},
        result="ok",
    )


async def test_concurrent_appends_share_round_trips_and_all_land(redis: Redis, redis_url: str) -> None:
    log = CountingAuditLog(redis=redis, store_url=redis_url)
    ids = await asyncio.gather(*(_append(log, index) for index in range(200)))
    assert len(set(ids)) == 200 and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    texts = [entry.detail["text"] for entry in reversed(log.query(limit=1000))]
    assert texts == [f"whoami {index}" for index in range(200)]
    assert sum(log.round_trips) == 200
    assert len(log.round_trips) < 200
    await log.aclose()


async def test_an_append_returns_only_once_its_entry_is_stored(redis: Redis, redis_url: str) -> None:
    log = AuditLog(redis=redis, store_url=redis_url)
    entry_id = await _append(log, 1)
    assert [entry.id for entry in AuditLog(redis=redis, store_url=redis_url).query()] == [entry_id]
    await log.aclose()


async def test_a_store_that_does_not_answer_fails_the_append_as_record_would() -> None:
    port = free_port()
    log = AuditLog(
        redis=Redis(host=LOOPBACK, port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)),
        store_url=f"redis://{LOOPBACK}:{port}/0",
    )
    with pytest.raises(RedisConnectionError):
        await _append(log, 1)
    with pytest.raises(RedisConnectionError):
        await _append(log, 2)
    await log.aclose()

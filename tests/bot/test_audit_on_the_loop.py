"""The runtime's audit log writes a command's entry on the event loop's own store connection, not through a
thread (whose hand-offs cost more per Slack event than the write), on whichever loop appends; an entry is
stored when `append` returns, and a store that does not answer fails the append, as before."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.runtime import build_runtime
from kobot.audit import AuditLog
from kobot.conversations import Conversation, Identity
from kobot.settings import Settings
from tests.support.network import LOOPBACK, free_port
from tests.workers.jobkit import FIXTURE_PLAYBOOKS

ALICE = Identity(platform="slack", user_id="UALICE", display_name="alice")
OPS = Conversation(platform="slack", conversation_id="COPS")


async def _append(log: AuditLog, text: str) -> str:
    return await log.append(
        who=ALICE, where=OPS, action="command", cluster="prod", detail={"text": text}, result="ok"
    )


def _no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{getattr(func, '__name__', func)} was handed to a thread")

    monkeypatch.setattr(asyncio, "to_thread", refuse)


def test_the_runtimes_audit_entries_are_written_on_each_loop_without_a_thread(
    redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(redis_url=SecretStr(redis_url), data_dir=data_dir, playbooks_dir=FIXTURE_PLAYBOOKS)
    runtime = build_runtime(settings, handlers=False)
    _no_threads(monkeypatch)

    async def on_one_loop(first: int) -> list[str]:
        ids = await asyncio.gather(*(_append(runtime.audit, f"whoami {i}") for i in range(first, first + 50)))
        await runtime.audit.aclose()
        return ids

    try:
        # two loops one after the other, as tests and `kobot chat` restarts have: each gets its connection
        ids = asyncio.run(on_one_loop(0)) + asyncio.run(on_one_loop(50))
        stored = list(reversed(runtime.audit.query(limit=1000)))
        assert [entry.id for entry in stored] == ids
        assert [entry.detail["text"] for entry in stored] == [f"whoami {i}" for i in range(100)]
    finally:
        runtime.close()


async def test_a_store_that_refuses_the_connection_fails_an_append_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"redis://{LOOPBACK}:{free_port()}/0"
    log = AuditLog(redis=Redis.from_url(url), store_url=url)
    _no_threads(monkeypatch)
    try:
        with pytest.raises(RedisConnectionError):
            await _append(log, "whoami")
    finally:
        await log.aclose()


async def test_an_append_waiting_on_a_silent_store_leaves_the_loop_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A store that takes the connection and never answers: the append waits (until its socket timeout),
    and meanwhile the loop goes on serving everything else."""
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen()
        url = f"redis://{LOOPBACK}:{silent.getsockname()[1]}/0"
        log = AuditLog(redis=Redis.from_url(url), store_url=url)
        _no_threads(monkeypatch)
        waiting = asyncio.create_task(_append(log, "whoami"))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not waiting.done(), "the loop ran on while the append waited"
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    # the listener is closed: the write waiting on it ends at once, and closing the log waits for it
    await log.aclose()

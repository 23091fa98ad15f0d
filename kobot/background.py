"""Background work of a long-lived part of kobot: one named asyncio task, started and stopped by its owner.

The notifier, the cluster event relay, the node watcher, approval housekeeping and alert delivery each
run one loop beside the chat adapters. They start it the same way, stop it the same way (cancel, then wait
until it has ended), and a periodic one survives its own errors the same way; this module is that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError


class BackgroundTask:
    """One named task. `start` runs a coroutine as the task; `stop` cancels it and waits for it to end.

    Both are safe to call when nothing runs, and `stop` twice is fine."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[Any] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, work: Coroutine[Any, Any, Any]) -> None:
        self._task = asyncio.create_task(work, name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def wait(self, *, timeout: float) -> None:
        """Wait for a task that was told to end by other means (an event it watches). Past `timeout` it is
        cancelled and `TimeoutError` raised, as `asyncio.wait_for` does."""
        task, self._task = self._task, None
        if task is None:
            return
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=timeout)


async def every(
    interval: float,
    work: Callable[[], Awaitable[object]],
    *,
    log: logging.Logger,
    what: str,
    wait_first: bool = False,
) -> None:
    """Run `work` every `interval` seconds until cancelled. An error is logged (as `what` failed) and the
    work runs again next round: one bad round must not end the loop. With `wait_first`, the first round
    runs after one interval instead of at once."""
    if wait_first:
        await asyncio.sleep(interval)
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; trying again next round", what)
        await asyncio.sleep(interval)


def ensure_consumer_group(redis: Redis, *, stream: str, group: str, start_id: str) -> None:
    """Create a stream's consumer group (and the stream) unless it exists; readers in the group share it.

    `start_id` is where a new group begins: "0" reads the stream from its start, "$" only what comes next.
    """
    try:
        redis.xgroup_create(stream, group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise

"""Waiting for a condition: one polling loop for threads (`wait_for`) and one for event loops.

A test waits on what it can observe (a message at a peer, a key in Redis), never on a fixed sleep;
every wait has a deadline and says what it waited for when it runs out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WAIT_SECONDS = 20.0
"""Default deadline of `wait_for`: long enough for a loaded machine, short enough to fail a stuck test."""

ASYNC_WAIT_SECONDS = 10.0
"""Default deadline of `eventually`."""

ASYNC_POLL_SECONDS = 0.01
"""How often the async waits look again; they yield to the loop in between."""

POLL_SECONDS = 0.05
"""How often `wait_for` looks again."""


def wait_for(
    check: Callable[[], T | None],
    *,
    timeout: float = WAIT_SECONDS,
    what: str = "condition",
    interval: float = POLL_SECONDS,
) -> T:
    """Poll `check` until it returns something truthy and return that; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def wait_until(
    predicate: Callable[[], object], *, timeout: float = 5.0, interval: float = ASYNC_POLL_SECONDS
) -> bool:
    """Poll `predicate` without blocking the test's event loop; False when `timeout` passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())


async def eventually(
    condition: Callable[[], object],
    *,
    timeout: float = ASYNC_WAIT_SECONDS,
    what: str = "condition",
    interval: float = ASYNC_POLL_SECONDS,
) -> None:
    """Wait (without blocking the loop) until `condition()` is truthy; AssertionError after `timeout`."""
    if not await wait_until(condition, timeout=timeout, interval=interval):
        raise AssertionError(f"{what} not met within {timeout}s")


def outcome_within(call: Callable[[], object], seconds: float, *, what: str = "call") -> BaseException | None:
    """What `call` raised (None when it returned), run on a daemon thread; AssertionError, naming `what`,
    when it is still running after `seconds` (a call that hangs fails the test instead of holding it)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=seconds)
    assert not thread.is_alive(), f"{what} still running after {seconds:.0f} s"
    return outcome[0]

"""Custom robot webhooks: signed posts through a per-robot outbox that keeps DingTalk's send budget.

DingTalk lets a custom robot post 20 messages a minute and refuses the rest (errcode 130101).
A burst of notifications is therefore queued and paced, never dropped: queued edits of the same
message collapse to the latest (a robot cannot edit, so each edit is a new post), a refusal for
speed waits for the window, a network or 5xx failure backs off and tries again.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from pydantic import SecretStr

from bot.chat.dingtalk import defaults
from bot.chat.dingtalk.openapi import WebhookRefused
from kobot.backoff import capped_backoff
from kobot.errors import DeliveryError
from kobot.settings_dingtalk import ROBOT_BUDGET_PER_WINDOW, ROBOT_BUDGET_WINDOW_SECONDS

log = logging.getLogger(__name__)

Post = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


def sign(*, secret: str, timestamp_ms: int) -> str:
    """DingTalk's 加签: urlencode(base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def signed_url(*, webhook_url: SecretStr, secret: SecretStr, now_ms: int | None = None) -> str:
    """The webhook URL with `timestamp` and `sign` for a post made now."""
    timestamp = now_ms if now_ms is not None else int(time.time() * 1000)
    url = webhook_url.get_secret_value()
    joiner = "&" if "?" in url else "?"
    signature = sign(secret=secret.get_secret_value(), timestamp_ms=timestamp)
    return f"{url}{joiner}timestamp={timestamp}&sign={signature}"


@dataclass
class _Item:
    key: str
    payloads: list[dict[str, Any]]
    failures: int = 0


@dataclass
class RobotOutbox:
    """One robot's queue, drained by one task in budget: at most `budget` posts per `window` seconds."""

    name: str
    webhook_url: SecretStr
    secret: SecretStr
    post: Post
    budget: int = ROBOT_BUDGET_PER_WINDOW
    window: float = ROBOT_BUDGET_WINDOW_SECONDS
    delivered: int = 0
    coalesced: int = 0
    _queue: collections.deque[_Item] = field(default_factory=collections.deque)
    _pending: dict[str, _Item] = field(default_factory=dict)
    _sent_at: collections.deque[float] = field(default_factory=collections.deque)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def submit(self, *, key: str, payloads: list[dict[str, Any]], replace: bool) -> None:
        """Queue one message (its parts in order). With `replace`, a still-queued message of the same
        key is overwritten in place: the latest edit wins and keeps the older one's turn."""
        if replace and key in self._pending:
            self._pending[key].payloads = list(payloads)
            self.coalesced += 1
            return
        if len(self._queue) >= defaults.ROBOT_OUTBOX_MAX:
            raise DeliveryError(
                f"DingTalk robot {self.name} has {len(self._queue)} messages waiting", retry_after=self.window
            )
        item = _Item(key=key, payloads=list(payloads))
        self._queue.append(item)
        self._pending[key] = item
        self._idle.clear()
        self._wakeup.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"dingtalk-robot-{self.name}")

    def new_key(self) -> str:
        return f"{self.name}-{time.time_ns()}-{next(self._ids)}"

    @property
    def waiting(self) -> int:
        return sum(len(item.payloads) for item in self._queue)

    async def flush(self, *, timeout: float) -> bool:
        """Wait until everything queued was posted; False when `timeout` passed first."""
        if not self._queue:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _drain(self) -> None:
        while self._queue:
            item = self._queue[0]
            await self._wait_for_budget()
            # From here the head item may already be on the wire: later edits queue behind it.
            self._pending.pop(item.key, None)
            try:
                await self.post(
                    signed_url(webhook_url=self.webhook_url, secret=self.secret), item.payloads[0]
                )
            except DeliveryError as exc:
                self._sent_at.append(time.monotonic())
                await self._after_failure(item, exc)
                continue
            self._sent_at.append(time.monotonic())
            self.delivered += 1
            item.payloads.pop(0)
            item.failures = 0
            if not item.payloads:
                self._queue.popleft()
        self._idle.set()

    async def _wait_for_budget(self) -> None:
        while True:
            now = time.monotonic()
            while self._sent_at and now - self._sent_at[0] >= self.window:
                self._sent_at.popleft()
            if len(self._sent_at) < self.budget:
                return
            await asyncio.sleep(self.window - (now - self._sent_at[0]) + 0.001)

    async def _after_failure(self, item: _Item, exc: DeliveryError) -> None:
        item.failures += 1
        if isinstance(exc, WebhookRefused) and exc.busy:
            # Over budget by DingTalk's count (another sender, or clocks apart): wait out a window share.
            log.info("dingtalk robot %s over its send budget, waiting", self.name)
            await asyncio.sleep(self.window / self.budget)
            return
        # No retry_after means DingTalk called the post invalid (bad signature, too long, 4xx), not busy.
        permanent = exc.retry_after is None
        if permanent and item.failures >= defaults.ROBOT_PERMANENT_FAILURE_ATTEMPTS:
            log.error(
                "dingtalk robot %s refused a message %d times (%s); dropping it",
                self.name,
                item.failures,
                exc.user_message,
            )
            self._queue.popleft()
            return
        delay = capped_backoff(
            attempt=item.failures,
            first=defaults.ROBOT_RETRY_BASE_SECONDS,
            cap=defaults.ROBOT_RETRY_CAP_SECONDS,
        )
        log.warning(
            "dingtalk robot %s post failed (%s), retrying in %.1fs", self.name, exc.user_message, delay
        )
        await asyncio.sleep(max(delay, exc.retry_after or 0.0))

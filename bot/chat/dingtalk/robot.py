"""Custom robot webhooks: signed posts through a per-robot outbox that keeps DingTalk's send budget.

DingTalk lets a custom robot post 20 messages a minute; the 21st is refused (errcode 130101) and the
robot is then throttled for 10 minutes. A burst is therefore queued and paced so the budget is never
exceeded: queued edits of the same message collapse to the latest (a robot cannot edit, so each edit
is a new post), a refusal for speed waits a whole window before one probing post, a network or 5xx
failure backs off and tries again.

The queue lives in memory, so nothing in it counts as delivered: `deliver` returns only once DingTalk
accepted the post. When that takes longer than the caller's wait, the post is withdrawn and the
caller gets DeliveryError with `retry_after`; its own durable state (the alert outbox) tries again
later, and a restart loses nothing that was reported delivered.
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
    done: asyncio.Future[None]
    failures: int = 0
    started: bool = False
    """A part is on the wire or was accepted: withdrawing now could leave half a message posted."""
    parts_posted: int = 0


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
    withdrawn: int = 0
    _queue: collections.deque[_Item] = field(default_factory=collections.deque)
    _pending: dict[str, _Item] = field(default_factory=dict)
    _sent_at: collections.deque[float] = field(default_factory=collections.deque)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    async def deliver(self, *, key: str, payloads: list[dict[str, Any]], replace: bool, wait: float) -> None:
        """Post one message (its parts in order) and return once DingTalk accepted every part.

        With `replace`, a still-queued message of the same key takes the new content and keeps its
        turn; every caller waiting on it returns when the latest content is posted. A message not
        posted within `wait` seconds is withdrawn and DeliveryError (with `retry_after`) raised.
        """
        done = self._submit(key=key, payloads=payloads, replace=replace)
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout=wait)
        except TimeoutError:
            await self._give_up(key, done)
        except asyncio.CancelledError:
            self._withdraw(key, done)
            raise

    async def _give_up(self, key: str, done: asyncio.Future[None]) -> None:
        """The caller's wait is over: withdraw the message, or, while a part is on the wire, let
        DingTalk's answer decide (a refused part can still be withdrawn, an accepted one counts)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + defaults.HTTP_TIMEOUT_SECONDS
        while not done.done():
            if self._withdraw(key, done):
                raise DeliveryError(
                    f"DingTalk robot {self.name} is pacing or throttled; the message was not posted",
                    retry_after=self.window,
                )
            if loop.time() >= deadline:
                raise DeliveryError(
                    f"DingTalk robot {self.name} did not confirm the post in time", retry_after=self.window
                )
            await asyncio.wait([done], timeout=defaults.ROBOT_WITHDRAW_POLL_SECONDS)
        done.result()  # posted, or refused for good

    def _submit(self, *, key: str, payloads: list[dict[str, Any]], replace: bool) -> asyncio.Future[None]:
        pending = self._pending.get(key)
        if replace and pending is not None:
            pending.payloads = list(payloads)
            self.coalesced += 1
            return pending.done
        if len(self._queue) >= defaults.ROBOT_OUTBOX_MAX:
            raise DeliveryError(
                f"DingTalk robot {self.name} has {len(self._queue)} messages waiting", retry_after=self.window
            )
        item = _Item(key=key, payloads=list(payloads), done=asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._pending[key] = item
        self._idle.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name=f"dingtalk-robot-{self.name}")
        return item.done

    def _withdraw(self, key: str, done: asyncio.Future[None]) -> bool:
        """Take a message that is not on the wire yet out of the queue; False when it already is."""
        item = self._pending.get(key)
        if item is None or item.done is not done or item.started:
            return False
        self._pending.pop(key, None)
        self._queue.remove(item)
        self.withdrawn += 1
        if not done.done():
            done.set_exception(DeliveryError(f"DingTalk robot {self.name}: post withdrawn", retry_after=0.0))
            done.exception()  # retrieved here: every waiter raises its own error
        if not self._queue:
            self._idle.set()
        return True

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
        """Stop draining; whoever still waits gets DeliveryError (never a reference to an unsent post)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self._queue:
            self._finish(
                self._queue.popleft(), DeliveryError(f"DingTalk robot {self.name} stopped", retry_after=1.0)
            )
        self._pending.clear()

    def _finish(self, item: _Item, error: DeliveryError | None = None) -> None:
        if self._pending.get(item.key) is item:
            del self._pending[item.key]
        if item.done.done():
            return
        if error is None:
            item.done.set_result(None)
        else:
            item.done.set_exception(error)
            item.done.exception()  # retrieved here: a waiter that gave up must not leave a warning

    async def _drain(self) -> None:
        while self._queue:
            item = self._queue[0]
            await self._wait_for_budget()
            if not self._queue or self._queue[0] is not item:
                continue  # withdrawn while waiting for the budget
            # From here the head item may already be on the wire: later edits queue behind it.
            item.started = True
            self._pending.pop(item.key, None)
            try:
                await self.post(
                    signed_url(webhook_url=self.webhook_url, secret=self.secret), item.payloads[0]
                )
            except DeliveryError as exc:
                self._sent_at.append(time.monotonic())
                # Refused, so nothing of this part was posted: while it waits to try again its
                # sender may still withdraw it, unless an earlier part already went out.
                item.started = item.parts_posted > 0
                if not item.started:
                    self._pending.setdefault(item.key, item)
                await self._after_failure(item, exc)
                continue
            self._sent_at.append(time.monotonic())
            self.delivered += 1
            item.parts_posted += 1
            item.payloads.pop(0)
            item.failures = 0
            if not item.payloads:
                self._queue.popleft()
                self._finish(item)
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
            # Over budget by DingTalk's count (another sender, clocks apart) means a throttle of minutes:
            # wait a whole window before one probing post instead of collecting refusals.
            log.info("dingtalk robot %s is throttled by DingTalk, probing again later", self.name)
            await asyncio.sleep(self.window * defaults.ROBOT_THROTTLE_PROBE_WINDOWS)
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
            self._finish(item, exc)
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

"""Keeps ONE progress message per job current in its chat, from the job event stream.

One notifier per chat adapter, all in the consumer group `notifier:<platform>` on the global event
stream, so several kobot processes share the work. Per message: at most one edit per
`progress_edit_interval`, events in between coalesce (the message is re-rendered from the job record),
the final state is always delivered, and a failed delivery is retried with backoff; stream entries
are acknowledged only once what they announced reached the chat.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from redis import Redis

from bot import job_buttons
from bot.metrics import metrics
from commands.job_card import render_job
from kobot import defaults, keys
from kobot.background import BackgroundTask, ensure_consumer_group
from kobot.backoff import capped_backoff
from kobot.chat import ChatAdapter
from kobot.errors import DeliveryError
from kobot.job_records import JobEvent
from kobot.store import synced
from workers.job_store import JobStore

log = logging.getLogger(__name__)

DELIVERY_TURN_MS = 30_000
"""Longest one process holds a job message's turn (a platform call that hangs longer loses it)."""

PLATFORM_CACHE_MAX = 10_000
"""Jobs whose chat platform a notifier remembers before it starts over."""


@dataclass
class _Pending:
    """A job whose message is behind its record."""

    entry_ids: list[bytes] = field(default_factory=list)
    oldest_event_at: float = 0.0
    due_at: float = 0.0
    attempts: int = 0
    final: bool = False


class Notifier:
    """Consumes job events for one platform and edits that job's message in place."""

    def __init__(
        self, *, redis: Redis, adapter: ChatAdapter, edit_interval: float, secret: bytes | None = None
    ) -> None:
        """With `secret` (kobot's), the message of a job that has not ended carries a signed Cancel button."""
        self._redis = redis
        self._cancel_key = job_buttons.derive_key(secret) if secret is not None else None
        self._adapter = adapter
        self._jobs = JobStore(redis)
        self._interval = edit_interval
        self._group = f"{keys.NOTIFIER_GROUP}:{adapter.platform}"
        self._consumer = f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self._pending: dict[str, _Pending] = {}
        self._platforms: dict[str, str] = {}
        self._give_back = redis.register_script(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
        )
        self._last_edit: dict[str, float] = {}
        self._task = BackgroundTask(f"notifier-{adapter.platform}")
        self._stopping = False
        self._draining = False

    @property
    def platform(self) -> str:
        return self._adapter.platform

    async def start(self) -> None:
        ensure_consumer_group(self._redis, stream=keys.GLOBAL_EVENTS, group=self._group, start_id="0")
        self._task.start(self._run())

    async def stop(self, *, drain_seconds: float = 0.0) -> None:
        """Stop consuming. With `drain_seconds`, first deliver what the stream still holds (throttle off),
        so a job that ended while the process stopped shows its final state now, not in the next process."""
        if drain_seconds > 0 and self._task.running:
            self._draining = True
            try:
                await self._task.wait(timeout=drain_seconds)
            except TimeoutError:
                log.warning(
                    "notifier for %s: %d job messages behind after %.0fs; the next process delivers them",
                    self.platform,
                    len(self._pending),
                    drain_seconds,
                )
        self._stopping = True
        await self._task.stop()

    async def _run(self) -> None:
        last_claim = 0.0
        while not self._stopping:
            try:
                if self._draining:
                    if await self._drain_round():
                        return
                    continue
                if time.monotonic() - last_claim > defaults.NOTIFIER_CLAIM_IDLE_MS / 3000:
                    self._claim_abandoned()
                    last_claim = time.monotonic()
                block = self._block_ms()
                entries = await asyncio.to_thread(self._read, block)
                self._absorb(entries)
                await self._flush_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._draining:
                    # the store or the chat is gone: nothing more can be delivered in this process
                    log.warning(
                        "notifier for %s stops draining: delivery failed", self.platform, exc_info=True
                    )
                    return
                log.exception("notifier for %s hit an error; continuing", self._adapter.platform)
                await asyncio.sleep(0.5)

    async def _drain_round(self) -> bool:
        """One round of draining: read what is new, deliver everything pending now. True once done."""
        entries = await asyncio.to_thread(self._read, defaults.NOTIFIER_DRAIN_BLOCK_MS)
        self._absorb(entries)
        now = time.monotonic()
        for pending in self._pending.values():
            # a failed delivery keeps its backoff; everything else goes out without waiting for the throttle
            if pending.attempts == 0:
                pending.due_at = min(pending.due_at, now)
        await self._flush_due()
        if not entries and not self._pending:
            return True
        if not entries:
            await asyncio.sleep(max(0.0, min(p.due_at for p in self._pending.values()) - time.monotonic()))
        return False

    def _block_ms(self) -> int:
        if not self._pending:
            return defaults.NOTIFIER_BLOCK_MS
        wait = min(p.due_at for p in self._pending.values()) - time.monotonic()
        return max(1, min(defaults.NOTIFIER_BLOCK_MS, int(wait * 1000)))

    def _read(self, block_ms: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        response = synced(
            self._redis.xreadgroup(
                self._group, self._consumer, {keys.GLOBAL_EVENTS: ">"}, count=500, block=block_ms
            )
        )
        if not response:
            return []
        return list(response[0][1])

    def _claim_abandoned(self) -> None:
        """Take over entries another notifier of this platform read but never acknowledged (it died)."""
        _, claimed, _ = synced(
            self._redis.xautoclaim(
                keys.GLOBAL_EVENTS,
                self._group,
                self._consumer,
                min_idle_time=defaults.NOTIFIER_CLAIM_IDLE_MS,
                start_id="0-0",
                count=500,
            )
        )
        self._absorb([entry for entry in claimed if entry and entry[1]])

    def _absorb(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        ignored: list[bytes] = []
        now = time.monotonic()
        for entry_id, fields in entries:
            event = JobEvent.model_validate_json(fields[b"e"])
            platform = self._platform_of(event.job_id)
            if platform != self._adapter.platform:
                ignored.append(entry_id)
                continue
            pending = self._pending.get(event.job_id)
            if pending is None:
                pending = self._pending[event.job_id] = _Pending(oldest_event_at=_epoch(event))
                pending.due_at = max(now, self._last_edit.get(event.job_id, 0.0) + self._interval)
            pending.entry_ids.append(entry_id)
            pending.final = pending.final or event.type.final
        if ignored:
            self._redis.xack(keys.GLOBAL_EVENTS, self._group, *ignored)

    def _platform_of(self, job_id: str) -> str | None:
        """A job's chat never changes: looked up once per job, not once per event."""
        if job_id in self._platforms:
            return self._platforms[job_id]
        record = self._jobs.get(job_id)
        platform = None if record is None else record.spec.reply_to.platform
        if platform is not None:
            if len(self._platforms) > PLATFORM_CACHE_MAX:
                self._platforms.clear()
            self._platforms[job_id] = platform
        return platform

    async def _flush_due(self) -> None:
        now = time.monotonic()
        for job_id, pending in list(self._pending.items()):
            if pending.due_at > now:
                continue
            await self._deliver(job_id, pending)

    async def _deliver(self, job_id: str, pending: _Pending) -> None:
        # Several kobot processes share the work: one of them edits a given job's message at a time,
        # and renders the record after taking the turn, so an older render never lands after a newer one.
        turn = keys.job_message(job_id) + ":turn"
        if not self._redis.set(turn, self._consumer, nx=True, px=DELIVERY_TURN_MS):
            pending.due_at = time.monotonic() + self._interval / 2 + 0.05
            return
        try:
            await self._deliver_in_turn(job_id, pending)
        finally:
            self._give_back(keys=[turn], args=[self._consumer])

    async def _deliver_in_turn(self, job_id: str, pending: _Pending) -> None:
        record = self._jobs.get(job_id)
        if record is None:
            self._done(job_id, pending)
            return
        cancel = (
            job_buttons.cancel_value(key=self._cancel_key, record=record)
            if self._cancel_key is not None and not record.state.finished
            else None
        )
        message = render_job(record, cancel_value=cancel)
        try:
            ref = self._jobs.message_ref(job_id)
            if ref is None:
                ref = await self._adapter.send(record.spec.reply_to, message)
            else:
                ref = await self._adapter.update(ref, message)
            self._jobs.set_message_ref(job_id, ref)
        except DeliveryError as exc:
            metrics().notifier_delivery_failures.labels(platform=self._adapter.platform).inc()
            pending.attempts += 1
            delay = exc.retry_after or capped_backoff(
                attempt=pending.attempts,
                first=defaults.CHAT_DELIVERY_BACKOFF_SECONDS,
                cap=defaults.CHAT_DELIVERY_BACKOFF_CAP_SECONDS,
            )
            log.warning(
                "job %s: chat delivery failed (%s); retrying in %.1fs", job_id, exc.user_message, delay
            )
            pending.due_at = time.monotonic() + delay
            return
        metrics().event_to_chat_seconds.labels(platform=self._adapter.platform).observe(
            max(0.0, time.time() - pending.oldest_event_at)
        )
        self._last_edit[job_id] = time.monotonic()
        self._done(job_id, pending)
        if record.state.finished:
            self._last_edit.pop(job_id, None)

    def _done(self, job_id: str, pending: _Pending) -> None:
        if pending.entry_ids:
            self._redis.xack(keys.GLOBAL_EVENTS, self._group, *pending.entry_ids)
        self._pending.pop(job_id, None)


def _epoch(event: JobEvent) -> float:
    return event.at.timestamp()

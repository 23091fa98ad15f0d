"""Who may post to /slack/events: Slack's v0 signature, a fresh timestamp, and no repeats.

This guard runs first so that a forged request never touches Redis or Bolt, and then remembers each
verified (timestamp, signature) pair so a captured request replayed inside the window is refused.
Slack's own redeliveries are re-signed, so a legitimate request never repeats a pair; they repeat the
event_id, which `seen_delivery` catches.

The ack never waits for Redis: the pair is checked against this process's memory, which answers a
replay to the same kobot at once (401), and written to Redis afterwards (`first_anywhere`), which the
work awaits before it does anything, so a replay sent to another kobot behind the same balancer is
acked there but never acted on. The work writes the pair and the event_id in one round trip
(`first_delivery`): the pair first, and the event_id only when the pair was new.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.chat.slack import defaults
from kobot.keys import PREFIX

log = logging.getLogger(__name__)


class Verdict(str, Enum):
    """The guard's answer for one request."""

    ACCEPTED = "accepted"
    FORGED = "forged"
    """Missing or wrong signature, or a timestamp outside the window."""
    REPLAYED = "replayed"
    """A verified request seen before."""


def replay_key(timestamp: str, signature: str) -> str:
    digest = hashlib.sha256(f"{timestamp}:{signature}".encode()).hexdigest()
    return f"{PREFIX}:slack:request:{digest}"


def event_key(event_id: str) -> str:
    return f"{PREFIX}:slack:event:{event_id}"


class Delivery(str, Enum):
    """What the store says of an accepted request before its work runs."""

    FIRST = "first"
    REPLAYED_ELSEWHERE = "replayed_elsewhere"
    """Another kobot process behind the same balancer accepted this very request (the same pair)."""
    DELIVERED_AGAIN = "delivered_again"
    """A new request carrying an event_id (or click) that was handled already: Slack's redelivery."""


FIRST_DELIVERY_SCRIPT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
if #KEYS < 2 or redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 1 end
return 2
"""
"""The replay record, then the delivery record only when the pair was new, atomically: a replay to
another process never marks the event as seen, so the process that took the pair still handles it."""

_SCRIPT_ANSWERS = {0: Delivery.REPLAYED_ELSEWHERE, 1: Delivery.FIRST, 2: Delivery.DELIVERED_AGAIN}


@dataclass(frozen=True)
class GuardAnswer:
    """The verdict, and for an accepted request the replay key the work confirms with `first_anywhere`."""

    verdict: Verdict
    key: str | None = None


class RequestGuard:
    """Verifies Slack's signature and refuses replays: at once from memory, then across kobots in Redis."""

    def __init__(
        self, *, signing_secret: str, redis: Redis, remembered_max: int = defaults.REPLAY_MEMORY_MAX
    ) -> None:
        self._secret = signing_secret.encode()
        self._redis = redis
        self._remembered_max = remembered_max
        # key -> monotonic expiry; the TTL is one constant, so insertion order is expiry order
        self._recent: OrderedDict[str, float] = OrderedDict()
        self._first_delivery = redis.register_script(FIRST_DELIVERY_SCRIPT)

    def check(self, *, body: bytes, headers: Mapping[str, str]) -> GuardAnswer:
        """Forged, replayed to this process, or accepted; no I/O, so the ack never waits on the store."""
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not _is_epoch_seconds(timestamp) or not signature:
            # slack_sdk calls int() on the header: "abc" or "1e9" would raise there, not be refused
            return GuardAnswer(Verdict.FORGED)
        if not self._is_signed(body=body, timestamp=timestamp, signature=signature):
            return GuardAnswer(Verdict.FORGED)
        key = replay_key(timestamp, signature)
        now = time.monotonic()
        self._forget_expired(now)
        if key in self._recent:
            return GuardAnswer(Verdict.REPLAYED)
        self._recent[key] = now + defaults.REPLAY_TTL_SECONDS
        if len(self._recent) > self._remembered_max:
            # the oldest pair falls back to the Redis check alone, which still refuses its replay
            self._recent.popitem(last=False)
        return GuardAnswer(Verdict.ACCEPTED, key)

    async def first_anywhere(self, key: str) -> bool:
        """Record an accepted pair in Redis; False when another kobot process accepted it first."""
        first = await self._redis.set(key, b"1", nx=True, ex=defaults.REPLAY_TTL_SECONDS)
        return bool(first)

    async def first_delivery(self, key: str, *, delivery_key: str | None) -> Delivery:
        """`first_anywhere` and, when the pair was new, `seen_delivery` on `delivery_key`, in
        one round trip. RedisError passes through: the caller decides what a store outage means."""
        keys = [key] if delivery_key is None else [key, delivery_key]
        answer = await self._first_delivery(
            keys=keys, args=[defaults.REPLAY_TTL_SECONDS, defaults.EVENT_ID_TTL_SECONDS]
        )
        return _SCRIPT_ANSWERS[int(answer)]

    def _forget_expired(self, now: float) -> None:
        recent = self._recent
        while recent:
            oldest = next(iter(recent))
            if recent[oldest] > now:
                return
            del recent[oldest]

    def _is_signed(self, *, body: bytes, timestamp: str, signature: str) -> bool:
        """Slack's v0 HMAC over the raw bytes, inside the window.

        slack_sdk's verifier decodes the body as UTF-8 first and raises on anything else; Slack signs
        bytes, so a body that is not UTF-8 is checked like any other and refused later for its content.
        """
        if abs(time.time() - int(timestamp)) > defaults.SIGNATURE_MAX_AGE_SECONDS:
            return False
        digest = hmac.new(self._secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
        return hmac.compare_digest(f"v0={digest.hexdigest()}".encode(), signature.encode("utf-8", "replace"))


def _is_epoch_seconds(value: str) -> bool:
    """Slack's timestamp is whole seconds since the epoch in ASCII digits; anything else is forged."""
    return 0 < len(value) <= defaults.TIMESTAMP_MAX_DIGITS and value.isascii() and value.isdigit()


def click_key(delivery_id: str) -> str:
    return f"{PREFIX}:slack:click:{delivery_id}"


async def seen_delivery(redis: Redis, key: str) -> bool:
    """True when this event (`event_key`) or click (`click_key`) was handled already: Slack redelivers an
    event after a missed ack or a reconnect, and a click delivered twice (a proxy's retry, a socket
    reconnect) carries no event_id, so it is known by its trigger and action timestamps."""
    try:
        first = await redis.set(key, b"1", nx=True, ex=defaults.EVENT_ID_TTL_SECONDS)
    except RedisError:
        # The store is down: a redelivery cannot be told from a first delivery. Handled, it reaches the
        # dispatcher, which needs the store as well and tells the person kobot cannot act now; dropped,
        # it would leave them with silence.
        log.warning("slack delivery taken unchecked for redelivery: the store is down")
        return False
    return not first

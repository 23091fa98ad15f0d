"""Who may post to /slack/events: Slack's v0 signature, a fresh timestamp, and no repeats.

Bolt checks the signature and the 300 s window too; this guard runs first so that a forged
request never touches Redis, and then remembers each verified (timestamp, signature) pair so a
captured request replayed inside the window is refused. Slack's own redeliveries are re-signed, so
a legitimate request never repeats a pair; they repeat the event_id, which `seen_event` catches.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from enum import Enum

from redis.asyncio import Redis

from bot.chat.slack import defaults
from kobot.keys import PREFIX


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


class RequestGuard:
    """Verifies Slack's signature and refuses replays, remembering pairs in Redis."""

    def __init__(self, *, signing_secret: str, redis: Redis) -> None:
        self._secret = signing_secret.encode()
        self._redis = redis

    async def check(self, *, body: bytes, headers: Mapping[str, str]) -> Verdict:
        timestamp = headers.get("x-slack-request-timestamp", "")
        signature = headers.get("x-slack-signature", "")
        if not _is_epoch_seconds(timestamp) or not signature:
            # slack_sdk calls int() on the header: "abc" or "1e9" would raise there, not be refused
            return Verdict.FORGED
        if not self._is_signed(body=body, timestamp=timestamp, signature=signature):
            return Verdict.FORGED
        first = await self._redis.set(
            replay_key(timestamp, signature), b"1", nx=True, ex=defaults.REPLAY_TTL_SECONDS
        )
        return Verdict.ACCEPTED if first else Verdict.REPLAYED

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


async def seen_event(redis: Redis, event_id: str) -> bool:
    """True when this event_id was handled already (Slack redelivers after a missed ack or a reconnect)."""
    first = await redis.set(event_key(event_id), b"1", nx=True, ex=defaults.EVENT_ID_TTL_SECONDS)
    return not first


def click_key(delivery_id: str) -> str:
    return f"{PREFIX}:slack:click:{delivery_id}"


async def seen_click(redis: Redis, delivery_id: str) -> bool:
    """True when this click was handled already. Clicks carry no event_id, so the same click delivered
    twice (a proxy's retry, a socket reconnect) is known by its trigger and action timestamps."""
    first = await redis.set(click_key(delivery_id), b"1", nx=True, ex=defaults.EVENT_ID_TTL_SECONDS)
    return not first

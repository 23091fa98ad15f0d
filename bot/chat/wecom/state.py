"""What the WeCom adapter remembers in Redis: seen nonces and messages, sent cards, reply URLs.

Kept in Redis (not memory) so replay protection and button mapping survive a restart and hold
across several kobot processes behind one callback URL.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import cast

from redis import Redis

from bot.chat.wecom import defaults
from kobot.messages import Button

SHORT_KEY_PREFIX = "k~"
"""Marks a button key that stands for a value kept server-side (values that fit are sent as they are)."""


@dataclass(frozen=True)
class CardButton:
    """One button of a sent card, as the click maps back to it."""

    action_id: str
    value: str
    label: str


class WeComState:
    """Redis keys under `kobot:wecom:` with a TTL each; nothing here grows without bound."""

    def __init__(self, *, redis: Redis) -> None:
        self.redis = redis

    def _key(self, *parts: str) -> str:
        return ":".join((defaults.REDIS_PREFIX, *parts))

    def first_nonce(self, *, endpoint: str, nonce: str, timestamp: str) -> bool:
        """True the first time this nonce is seen on this endpoint; False for a replay."""
        key = self._key("nonce", endpoint, hashlib.sha256(f"{timestamp}:{nonce}".encode()).hexdigest())
        return bool(self.redis.set(key, b"1", nx=True, ex=defaults.NONCE_TTL_SECONDS))

    def first_delivery(self, *, message_key: str) -> bool:
        """True the first time a platform message id is seen (WeCom retries unanswered callbacks)."""
        key = self._key("seen", hashlib.sha256(message_key.encode()).hexdigest())
        return bool(self.redis.set(key, b"1", nx=True, ex=defaults.MESSAGE_DEDUPE_TTL_SECONDS))

    def new_task_id(self) -> str:
        """template_card task ids: unique per app, [0-9a-zA-Z_-@], at most 128 bytes."""
        return f"kobot_{secrets.token_hex(12)}"

    def remember_card(self, *, task_id: str, buttons: tuple[Button, ...]) -> list[str]:
        """Store the card's buttons and return the key each button sends back when clicked."""
        keys: list[str] = []
        mapping: dict[str, str] = {}
        for index, button in enumerate(buttons):
            key = button.value
            too_long = len(key.encode()) > defaults.BUTTON_KEY_MAX_BYTES
            if too_long or key in mapping or key.startswith(SHORT_KEY_PREFIX) or not key:
                key = f"{SHORT_KEY_PREFIX}{index}~{secrets.token_hex(6)}"
            keys.append(key)
            mapping[key] = json.dumps(
                {"index": index, "action_id": button.action_id, "value": button.value, "label": button.label}
            )
        name = self._key("card", task_id)
        if mapping:
            pipe = self.redis.pipeline()
            pipe.hset(name, mapping=mapping)
            pipe.expire(name, defaults.CARD_STATE_TTL_SECONDS)
            pipe.execute()
        return keys

    def card_button(self, *, task_id: str, key: str) -> CardButton | None:
        """The button a click names, or None when the card is not kobot's or has expired."""
        raw = cast(bytes | None, self.redis.hget(self._key("card", task_id), key))
        if raw is None:
            return None
        data = json.loads(raw)
        return CardButton(action_id=data["action_id"], value=data["value"], label=data["label"])

    def card_buttons(self, *, task_id: str) -> list[CardButton]:
        raw = cast(dict[bytes, bytes], self.redis.hgetall(self._key("card", task_id)))
        buttons = sorted((json.loads(value) for value in raw.values()), key=lambda b: int(b["index"]))
        return [CardButton(action_id=b["action_id"], value=b["value"], label=b["label"]) for b in buttons]

    def offer_response_code(self, *, task_id: str, response_code: str) -> None:
        """A response code (from a send or a click) lets the card be updated once: keep the newest."""
        self.redis.set(self._key("rc", task_id), response_code.encode(), ex=defaults.CARD_STATE_TTL_SECONDS)

    def take_response_code(self, *, task_id: str) -> str | None:
        """The card's unused response code, consumed: a second caller gets None."""
        raw = cast(bytes | None, self.redis.getdel(self._key("rc", task_id)))
        return None if raw is None else raw.decode()

    def offer_reply_url(self, *, conversation_id: str, url: str) -> None:
        """A smart-bot @-mention's response_url: one post within the hour."""
        key = self._key("reply-url", conversation_id)
        self.redis.set(key, url.encode(), ex=defaults.SMART_BOT_REPLY_TTL_SECONDS)

    def take_reply_url(self, *, conversation_id: str) -> str | None:
        raw = cast(bytes | None, self.redis.getdel(self._key("reply-url", conversation_id)))
        return None if raw is None else raw.decode()

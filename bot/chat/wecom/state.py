"""What the WeCom adapter remembers in Redis: seen nonces and messages, sent cards, reply URLs, people's
names, and how many messages each recipient got lately (WeCom drops what exceeds its budget).

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

PACE_SCRIPT = """
local key, now = KEYS[1], tonumber(ARGV[1])
local limits = cjson.decode(ARGV[2])
local longest = 0
for _, limit in ipairs(limits) do longest = math.max(longest, limit[1]) end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - longest)
local wait = 0
for _, limit in ipairs(limits) do
  local window, count = limit[1], limit[2]
  local recent = redis.call('ZRANGEBYSCORE', key, now - window, '+inf', 'WITHSCORES')
  local n = #recent / 2
  if n >= count then
    local oldest = tonumber(recent[2 * (n - count) + 2])
    wait = math.max(wait, oldest + window - now)
  end
end
if wait > 0 then return tostring(wait) end
redis.call('ZADD', key, now, ARGV[3])
redis.call('EXPIRE', key, math.ceil(longest) + 60)
return '0'
"""
"""Atomically: drop sends older than the longest window; if every window has room, record this send and
answer 0, else answer how long until the fullest window has room (nothing recorded)."""

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

    def remember_card(
        self, *, task_id: str, buttons: tuple[Button, ...], stable: str | None = None
    ) -> list[str]:
        """Store the card's buttons and return the key each button sends back when clicked (see
        `button_keys` for `stable`)."""
        keys = button_keys(buttons, stable=stable)
        mapping = {
            key: json.dumps(
                {"index": index, "action_id": button.action_id, "value": button.value, "label": button.label}
            )
            for index, (key, button) in enumerate(zip(keys, buttons, strict=True))
        }
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

    def remember_origin(self, *, task_id: str, conversation_id: str) -> None:
        """The card was sent one-to-one on behalf of a group (`appchat:...`): a click counts there."""
        self.redis.set(
            self._key("origin", task_id), conversation_id.encode(), ex=defaults.CARD_STATE_TTL_SECONDS
        )

    def card_origin(self, *, task_id: str) -> str | None:
        raw = cast(bytes | None, self.redis.get(self._key("origin", task_id)))
        return None if raw is None else raw.decode()

    def offer_response_code(self, *, task_id: str, response_code: str) -> None:
        """A response code (from a send or a click) lets the card be updated once, within 72 h: keep the
        newest."""
        self.redis.set(
            self._key("rc", task_id), response_code.encode(), ex=defaults.RESPONSE_CODE_TTL_SECONDS
        )

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

    def reserve_send(self, *, recipient: str, limits: tuple[tuple[float, int], ...], now: float) -> float:
        """Count one message to `recipient` if each (window seconds, count) budget has room and answer 0;
        otherwise count nothing and answer the seconds until it has room."""
        answer = cast(
            bytes | str,
            self.redis.eval(
                PACE_SCRIPT,
                1,
                self._key("pace", recipient),
                repr(now),
                json.dumps([list(limit) for limit in limits]),
                f"{now!r}:{secrets.token_hex(4)}",
            ),
        )
        return float(answer.decode() if isinstance(answer, bytes) else answer)

    def display_name(self, *, user_id: str) -> str | None:
        """The cached name of `user_id`: "" when the contacts API would not name them, None when not asked."""
        raw = cast(bytes | None, self.redis.get(self._key("name", user_id)))
        return None if raw is None else raw.decode()

    def remember_display_name(self, *, user_id: str, name: str) -> None:
        """Cache a name (or "" for a userid the contacts API would not name, kept for a shorter time)."""
        ttl = defaults.DISPLAY_NAME_TTL_SECONDS if name else defaults.DISPLAY_NAME_MISS_TTL_SECONDS
        self.redis.set(self._key("name", user_id), name.encode(), ex=ttl)


def digest(text: str) -> str:
    """The SHA-256 hex digest of `text`: what kobot derives stable task ids, button keys and tag refs from."""
    return hashlib.sha256(text.encode()).hexdigest()


def button_keys(buttons: tuple[Button, ...], *, stable: str | None = None) -> list[str]:
    """The key each button sends back: its value when that fits, else a short key kept server-side. With
    `stable`, a short key is derived from it instead of drawn at random, so the same card sent again is
    the same request (WeCom's duplicate check compares whole requests)."""
    keys: list[str] = []
    for index, button in enumerate(buttons):
        key = button.value
        too_long = len(key.encode()) > defaults.BUTTON_KEY_MAX_BYTES
        if too_long or key in keys or key.startswith(SHORT_KEY_PREFIX) or not key:
            salt = secrets.token_hex(6) if stable is None else digest(f"{stable}:{index}")[:12]
            key = f"{SHORT_KEY_PREFIX}{index}~{salt}"
        keys.append(key)
    return keys

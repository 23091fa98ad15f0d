"""Signed button values: a click is honoured only for the group, action and conversation it was made for.

The value is `<group id>.<action>.<expiry>.<signature>`; the signature is an HMAC-SHA256 with the
runtime secret over the same parts plus the conversation the message was posted in, so a value copied
into another conversation, edited, or clicked after its expiry is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from enum import Enum

from alerts import defaults

SIGNATURE_HEX_CHARS = 40
"""160 bits of the HMAC: far beyond guessing, and short enough for every platform's button value."""


class AlertAction(str, Enum):
    """What an alert button does. Silences carry their duration in the action."""

    SILENCE_1H = "silence1h"
    SILENCE_4H = "silence4h"
    SILENCE_24H = "silence24h"
    ACK = "ack"
    RUNBOOK = "runbook"

    @property
    def action_id(self) -> str:
        """The button's `action_id`; the dispatcher routes every `alert.*` click to the service."""
        if self.value.startswith("silence"):
            return "alert.silence"
        return f"alert.{self.value}"

    @property
    def silence_seconds(self) -> int | None:
        if not self.value.startswith("silence"):
            return None
        return defaults.SILENCE_DURATIONS[self.value.removeprefix("silence")]


class ButtonRefused(Exception):
    """The click's value is forged, altered, expired or from another conversation."""


@dataclass(frozen=True)
class ButtonGrant:
    group_id: str
    action: AlertAction
    expires_at: int


def _signature(*, secret: bytes, group_id: str, action: str, expires_at: int, conversation_key: str) -> str:
    message = f"alert\n{group_id}\n{action}\n{expires_at}\n{conversation_key}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:SIGNATURE_HEX_CHARS]


def sign_button(
    *,
    secret: bytes,
    group_id: str,
    action: AlertAction,
    conversation_key: str,
    now: float | None = None,
) -> str:
    expires_at = int((now if now is not None else time.time()) + defaults.BUTTON_TTL_SECONDS)
    signature = _signature(
        secret=secret,
        group_id=group_id,
        action=action.value,
        expires_at=expires_at,
        conversation_key=conversation_key,
    )
    return f"{group_id}.{action.value}.{expires_at}.{signature}"


def verify_button(
    *,
    secret: bytes,
    value: str,
    action_id: str,
    conversation_key: str,
    now: float | None = None,
) -> ButtonGrant:
    """The grant a clicked value carries, or ButtonRefused saying why (safe to show in chat)."""
    parts = value.split(".")
    if len(parts) != 4:
        raise ButtonRefused("this button is not one kobot made")
    group_id, action_name, expiry_text, signature = parts
    try:
        action = AlertAction(action_name)
        expires_at = int(expiry_text)
    except ValueError:
        raise ButtonRefused("this button is not one kobot made") from None
    expected = _signature(
        secret=secret,
        group_id=group_id,
        action=action.value,
        expires_at=expires_at,
        conversation_key=conversation_key,
    )
    if not hmac.compare_digest(expected, signature):
        raise ButtonRefused("this button's signature does not match this conversation")
    if action.action_id != action_id:
        raise ButtonRefused("this button's action does not match its value")
    if (now if now is not None else time.time()) > expires_at:
        raise ButtonRefused("this button has expired; use the latest alert message")
    return ButtonGrant(group_id=group_id, action=action, expires_at=expires_at)

"""What Slack sends to the app: signed HTTP callbacks and the payloads of events, commands and clicks.

The shapes follow Slack's Events API, slash command and block_actions payloads; the peer pushes the
same payloads over Socket Mode.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from typing import Any


def signed_headers(*, signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for `body` at `timestamp` (now by default)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(signing_secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def event_callback(
    event: dict[str, Any], *, team_id: str = "T0KOBOT", event_id: str | None = None
) -> dict[str, Any]:
    return {
        "token": "unused-verification-token",
        "team_id": team_id,
        "api_app_id": "A0KOBOT",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(6).upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": team_id, "user_id": "U0KOBOT", "is_bot": True}],
    }


def mention_event(
    *, text: str, user: str = "U0ALICE", channel: str = "C0OPS", ts: str | None = None
) -> dict[str, Any]:
    ts = ts or f"{time.time():.6f}"
    return {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel, "event_ts": ts}


def im_event(*, text: str, user: str = "U0ALICE", channel: str = "D0ALICE") -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    return {
        "type": "message",
        "channel_type": "im",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }


def slash_command(*, text: str, user: str = "U0ALICE", channel: str = "C0OPS") -> dict[str, str]:
    return {
        "token": "unused-verification-token",
        "team_id": "T0KOBOT",
        "channel_id": channel,
        "channel_name": "ops",
        "user_id": user,
        "user_name": "alice",
        "command": "/kobot",
        "text": text,
        "api_app_id": "A0KOBOT",
        "response_url": "https://hooks.slack.invalid/commands/T0KOBOT/1/x",
        "trigger_id": f"{int(time.time())}.1.{secrets.token_hex(4)}",
    }


def block_actions(
    *, action_id: str, value: str, message_ts: str, user: str = "U0BOB", channel: str = "C0OPS"
) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "bob", "name": "bob", "team_id": "T0KOBOT"},
        "api_app_id": "A0KOBOT",
        "token": "unused-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{int(time.time())}.1.{secrets.token_hex(4)}",
        "team": {"id": "T0KOBOT", "domain": "kobot-test"},
        "channel": {"id": channel, "name": "ops"},
        "message": {"type": "message", "ts": message_ts, "text": "approval"},
        "response_url": "https://hooks.slack.invalid/actions/T0KOBOT/1/x",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "kobot.actions",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": value,
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def form_body(fields: dict[str, str]) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def interactive_body(payload: dict[str, Any]) -> bytes:
    return form_body({"payload": json.dumps(payload)})

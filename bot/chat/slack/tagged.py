"""Posts kobot can find again: a tag in Slack's message metadata, looked up in the conversation's history.

A post whose answer never reached kobot (a crash after chat.postMessage, a lost connection, a store
that could not record the ts) would otherwise be posted a second time, and the first copy would stay
unedited forever. The tag travels as `metadata` on chat.postMessage (chat.update keeps it); the lookup
reads conversations.history (conversations.replies in a thread) with `include_all_metadata`, which needs
the channels:history / groups:history scopes. Without them, or outside the channel, the lookup is
skipped (logged) and the post goes out again, as before.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.chat.slack import defaults
from kobot.conversations import Conversation, MessageRef

EVENT_TYPE = "kobot_post"
"""The metadata event type on kobot's tagged posts (an identifier, as Slack asks)."""

LOOKUP_REFUSED_ERRORS = frozenset(
    {"missing_scope", "not_in_channel", "channel_not_found", "not_allowed_token_type", "thread_not_found"}
)
"""conversations.history / .replies answers that mean kobot cannot look here (not: look later)."""


def tag_metadata(tag: str) -> dict[str, Any]:
    """The `metadata` argument of chat.postMessage carrying `tag`."""
    return {"event_type": EVENT_TYPE, "event_payload": {"tag": tag}}


def _tagged_ts(messages: object, tag: str) -> str | None:
    if not isinstance(messages, list):
        return None
    for message in messages:
        if not isinstance(message, dict):
            continue
        metadata = message.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("event_type") != EVENT_TYPE:
            continue
        payload = metadata.get("event_payload")
        if isinstance(payload, dict) and payload.get("tag") == tag and isinstance(message.get("ts"), str):
            return str(message["ts"])
    return None


async def find_tagged_message(
    client: AsyncWebClient, conversation: Conversation, *, tag: str, since: datetime, platform: str
) -> MessageRef | None:
    """The message tagged `tag` posted to `conversation` since `since`, reading at most
    TAG_LOOKUP_PAGES pages of TAG_LOOKUP_PAGE_SIZE messages. SlackApiError passes through."""
    oldest = f"{since.timestamp():.6f}"
    cursor: str | None = None
    for _ in range(defaults.TAG_LOOKUP_PAGES):
        if conversation.thread_id:
            response = await client.conversations_replies(
                channel=conversation.conversation_id,
                ts=conversation.thread_id,
                oldest=oldest,
                include_all_metadata=True,
                limit=defaults.TAG_LOOKUP_PAGE_SIZE,
                cursor=cursor,
            )
        else:
            response = await client.conversations_history(
                channel=conversation.conversation_id,
                oldest=oldest,
                include_all_metadata=True,
                limit=defaults.TAG_LOOKUP_PAGE_SIZE,
                cursor=cursor,
            )
        ts = _tagged_ts(response.get("messages"), tag)
        if ts is not None:
            return MessageRef(
                platform=platform,
                conversation_id=conversation.conversation_id,
                message_id=ts,
                thread_id=conversation.thread_id,
            )
        metadata = response.get("response_metadata")
        cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
        if not response.get("has_more") or not cursor:
            return None
    return None

"""Verified Slack payloads → `InboundMessage` / `ButtonClick`. Raw payloads stop here.

Slack encodes chat text: `&`, `<`, `>` are escaped and mentions, channels and links arrive as
`<@U123>`, `<#C1|ops>`, `<http://x|x>`. The command parser sees what the user typed instead.
Lone surrogates (JSON escapes like \\udfff, which no Slack client sends but a JSON decoder accepts)
are dropped from text and make an id unusable, so none reaches a key, a store write or a log line.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.chat.slack.defaults import PLATFORM
from bot.chat.slack.render import kobot_action_id
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage, MessageRef
from kobot.validation import has_surrogates, without_surrogates

_TOKEN = re.compile(r"<([^<>]*)>")

Payload = Mapping[str, Any]


class InboundPayloadError(ValueError):
    """A verified payload lacks what kobot needs (a user, a channel): it is logged and dropped."""


@dataclass(frozen=True)
class Sender:
    """Who sent an event and how kobot shows them; the display name comes from users.info."""

    user_id: str
    display_name: str = ""
    email: str | None = None

    def identity(self) -> Identity:
        return Identity(
            platform=PLATFORM, user_id=self.user_id, display_name=self.display_name, email=self.email
        )


def clean_text(text: str, *, bot_user_id: str | None) -> str:
    """What the user typed: the bot's own leading mention dropped, Slack's markup turned back into text."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            if bot_user_id is not None and target[1:] == bot_user_id:
                return ""
            return f"@{label or target[1:]}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            return f"@{label or target[1:].split('^')[0]}"
        if label:
            return label
        return target.removeprefix("mailto:")

    plain = _TOKEN.sub(replace, without_surrogates(text))
    return html.unescape(" ".join(plain.split()))


def event_user(event: Payload) -> str:
    user = event.get("user")
    if not isinstance(user, str) or not user or has_surrogates(user):
        raise InboundPayloadError("event without a user")
    return user


def message_from_event(
    event: Payload, *, sender: Sender, bot_user_id: str | None, team_id: str
) -> InboundMessage:
    """An `app_mention` in a channel or a `message` in a direct conversation.

    Answers thread under the command: the thread it was typed in, or a new thread on it.
    """
    channel = _text(event, "channel")
    ts = _text(event, "ts")
    is_direct = event.get("channel_type") == "im"
    thread_ts = _optional_text(event, "thread_ts")
    conversation = Conversation(
        platform=PLATFORM,
        conversation_id=channel,
        thread_id=thread_ts or (None if is_direct else ts),
        is_direct=is_direct,
        extra={"team_id": without_surrogates(team_id)} if team_id else {},
    )
    return InboundMessage(
        identity=sender.identity(),
        conversation=conversation,
        text=clean_text(str(event.get("text", "")), bot_user_id=bot_user_id),
        message_id=ts,
    )


def message_from_command(body: Payload, *, sender: Sender) -> InboundMessage:
    """`/kobot <text>`: the text is the command. Slash commands are not messages, so there is no thread."""
    channel = _text(body, "channel_id")
    team_id = without_surrogates(str(body.get("team_id", "")))
    return InboundMessage(
        identity=sender.identity(),
        conversation=Conversation(
            platform=PLATFORM,
            conversation_id=channel,
            is_direct=channel.startswith("D"),
            extra={"team_id": team_id} if team_id else {},
        ),
        text=clean_text(str(body.get("text", "")), bot_user_id=None),
        message_id=without_surrogates(str(body.get("trigger_id", ""))),
    )


def command_user(body: Payload) -> str:
    return _text(body, "user_id")


def action_user(body: Payload) -> str:
    user = body.get("user")
    if not isinstance(user, Mapping):
        raise InboundPayloadError("block_actions without a user")
    return _text(user, "id")


def clicks_from_actions(body: Payload, *, sender: Sender) -> list[ButtonClick]:
    """One click per action in a `block_actions` payload (Slack sends one in practice)."""
    channel = _channel_of(body)
    container = body.get("container")
    container = container if isinstance(container, Mapping) else {}
    message_ts = _optional_text(container, "message_ts")
    thread_id = _optional_text(container, "thread_ts")
    ref = (
        MessageRef(platform=PLATFORM, conversation_id=channel, message_id=message_ts, thread_id=thread_id)
        if message_ts
        else None
    )
    conversation = Conversation(
        platform=PLATFORM, conversation_id=channel, thread_id=thread_id, is_direct=channel.startswith("D")
    )
    actions = body.get("actions")
    if not isinstance(actions, list) or not actions:
        raise InboundPayloadError("block_actions without actions")
    clicks = []
    for action in actions:
        if not isinstance(action, Mapping) or action.get("type", "button") != "button":
            continue
        clicks.append(
            ButtonClick(
                identity=sender.identity(),
                conversation=conversation,
                action_id=kobot_action_id(_text(action, "action_id")),
                value=without_surrogates(str(action.get("value", ""))),
                message=ref,
            )
        )
    return clicks


def click_delivery_id(body: Payload) -> str | None:
    """What a click delivered twice keeps and a second click changes: its trigger_id and action_ts."""
    actions = body.get("actions")
    stamps = [
        str(action["action_ts"])
        for action in (actions if isinstance(actions, list) else [])
        if isinstance(action, Mapping) and isinstance(action.get("action_ts"), str)
    ]
    trigger = body.get("trigger_id")
    parts = [trigger if isinstance(trigger, str) else "", *stamps]
    if not any(parts):
        return None
    # surrogatepass: a broken stamp still hashes to the same id every time it comes
    return hashlib.sha256("|".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _channel_of(body: Payload) -> str:
    channel = body.get("channel")
    if isinstance(channel, Mapping) and _optional_text(channel, "id"):
        return str(channel["id"])
    container = body.get("container")
    if isinstance(container, Mapping) and _optional_text(container, "channel_id"):
        return str(container["channel_id"])
    raise InboundPayloadError("block_actions without a channel")


def _text(payload: Payload, key: str) -> str:
    value = _optional_text(payload, key)
    if value is None:
        raise InboundPayloadError(f"payload without {key}")
    return value


def _optional_text(payload: Payload, key: str) -> str | None:
    """A non-empty id or timestamp, or None; one with lone surrogates is no id Slack made."""
    value = payload.get(key)
    if not isinstance(value, str) or not value or has_surrogates(value):
        return None
    return value

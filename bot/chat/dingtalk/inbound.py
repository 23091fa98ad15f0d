"""Stream frames (already parsed by the SDK) → kobot's typed events.

Only this module and the stream handlers see DingTalk's field names; what leaves is an
`InboundMessage`, a `ButtonClick` or an `InboundRefused` carrying the answer the user gets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.chat.dingtalk import defaults
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage, MessageRef
from kobot.defaults import TEXT_MAX_COMMAND_CHARS
from kobot.validation import scrub_surrogates

CONVERSATION_DIRECT = "1"
"""`conversationType` of a one-to-one chat with the robot ("2" is a group)."""

EXTRA_SESSION_WEBHOOK = "session_webhook"
EXTRA_SESSION_EXPIRES_MS = "session_webhook_expires_ms"
EXTRA_USER_ID = "user_id"
"""Conversation.extra keys: the reply webhook, its expiry, and the staff id a direct chat belongs to."""


ASK_AGAIN = (
    "I received your message but could not take it on (a fault on my side). "
    "DingTalk does not deliver a message twice: please send it again."
)
"""The answer to a message kobot could not hand on: only its sender can bring it back."""


class InboundRefused(Exception):
    """A frame kobot will not act on; `user_message` is the clear answer, sent when there is a way to."""

    def __init__(self, user_message: str, *, conversation: Conversation | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.conversation = conversation


@dataclass(frozen=True)
class CardClick:
    """The fields of a card callback kobot uses; the card itself is looked up by `out_track_id`."""

    out_track_id: str
    user_id: str
    action_id: str
    value: str


def chat_message(data: dict[str, Any], *, now_ms: int) -> InboundMessage:
    """A `/v1.0/im/bot/messages/get` frame as an InboundMessage, or InboundRefused saying why not."""
    from dingtalk_stream import ChatbotMessage

    try:
        # lone surrogates (a \\udfff escape in the frame's JSON) would break every key and store write
        message = ChatbotMessage.from_dict(scrub_surrogates(data))
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # the SDK calls int() and .get() on fields as it finds them: a field of another type is a refusal
        raise InboundRefused("a chat message whose fields are not DingTalk's") from exc
    if not message.conversation_id or not (message.sender_staff_id or message.sender_id):
        raise InboundRefused("a chat message without conversation or sender")
    user_id = str(message.sender_staff_id or message.sender_id)
    is_direct = str(message.conversation_type) == CONVERSATION_DIRECT
    extra: dict[str, str] = {}
    if message.session_webhook:
        extra[EXTRA_SESSION_WEBHOOK] = str(message.session_webhook)
        extra[EXTRA_SESSION_EXPIRES_MS] = str(message.session_webhook_expired_time or 0)
    if is_direct:
        extra[EXTRA_USER_ID] = user_id
    conversation = Conversation(
        platform=defaults.PLATFORM,
        conversation_id=str(message.conversation_id),
        is_direct=is_direct,
        extra=extra,
    )
    created_ms = _int(message.create_at)
    if created_ms and now_ms - created_ms > defaults.MESSAGE_MAX_AGE_SECONDS * 1000:
        minutes = round((now_ms - created_ms) / 60_000)
        raise InboundRefused(
            f"I did not run a message sent {minutes} minutes ago (it reached me late); "
            "send it again if still wanted.",
            conversation=conversation,
        )
    text = _text_of(message)
    if text is None:
        raise InboundRefused("I only understand text: type a command, or `help`.", conversation=conversation)
    if len(text) > TEXT_MAX_COMMAND_CHARS:
        raise InboundRefused(
            f"That message is {len(text)} characters long; "
            f"no command is longer than {TEXT_MAX_COMMAND_CHARS}.",
            conversation=conversation,
        )
    identity = Identity(
        platform=defaults.PLATFORM, user_id=user_id, display_name=str(message.sender_nick or "")
    )
    return InboundMessage(
        identity=identity,
        conversation=conversation,
        text=text,
        message_id=str(message.message_id or ""),
    )


def conversation_of(data: dict[str, Any]) -> Conversation | None:
    """The conversation (with its session webhook) of a raw chat frame, for answering when all else failed."""
    conversation_id = data.get("conversationId")
    if not isinstance(conversation_id, str) or not conversation_id:
        return None
    is_direct = str(data.get("conversationType")) == CONVERSATION_DIRECT
    extra: dict[str, str] = {}
    webhook = data.get("sessionWebhook")
    if isinstance(webhook, str) and webhook:
        extra[EXTRA_SESSION_WEBHOOK] = webhook
        extra[EXTRA_SESSION_EXPIRES_MS] = str(_int(data.get("sessionWebhookExpiredTime")))
    user_id = data.get("senderStaffId")
    if is_direct and isinstance(user_id, str) and user_id:
        extra[EXTRA_USER_ID] = user_id
    return Conversation(
        platform=defaults.PLATFORM, conversation_id=conversation_id, is_direct=is_direct, extra=extra
    )


def _text_of(message: Any) -> str | None:
    if message.message_type == "text" and message.text is not None:
        return str(message.text.content or "").strip()
    if message.message_type == "richText" and message.rich_text_content is not None:
        parts = [str(item["text"]) for item in message.rich_text_content.rich_text_list if "text" in item]
        return " ".join(parts).strip() or None
    return None


def card_click(data: dict[str, Any]) -> CardClick:
    """A `/v1.0/card/instances/callback` frame's button parameters, or InboundRefused."""
    from dingtalk_stream import CardCallbackMessage

    try:
        callback = CardCallbackMessage.from_dict(scrub_surrogates(data))
    except (TypeError, ValueError) as exc:
        raise InboundRefused("a card callback that is not JSON") from exc
    content = callback.content if isinstance(callback.content, dict) else {}
    private = content.get("cardPrivateData")
    params = private.get("params") if isinstance(private, dict) else None
    if not isinstance(params, dict):
        raise InboundRefused("a card callback without button parameters")
    action_id, value = params.get("action_id"), params.get("value")
    if not callback.card_instance_id or not callback.user_id or not action_id or not isinstance(value, str):
        raise InboundRefused("a card callback without card, user or action")
    return CardClick(
        out_track_id=str(callback.card_instance_id),
        user_id=str(callback.user_id),
        action_id=str(action_id),
        value=value,
    )


def button_click(
    click: CardClick, *, conversation: Conversation, ref: MessageRef, display_name: str
) -> ButtonClick:
    """The typed click for a card kobot sent (the caller found `conversation` and `ref` by outTrackId)."""
    return ButtonClick(
        identity=Identity(platform=defaults.PLATFORM, user_id=click.user_id, display_name=display_name),
        conversation=conversation,
        action_id=click.action_id,
        value=click.value,
        message=ref,
    )


def card_record(conversation: Conversation, ref: MessageRef) -> str:
    """What kobot keeps about a card it sent, to route and trust clicks on it."""
    return json.dumps({"conversation": conversation.model_dump(), "ref": ref.model_dump()})


def parse_card_record(raw: bytes | str) -> tuple[Conversation, MessageRef]:
    data = json.loads(raw)
    return Conversation.model_validate(data["conversation"]), MessageRef.model_validate(data["ref"])


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0

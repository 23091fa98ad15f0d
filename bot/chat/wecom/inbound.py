"""Verified, decrypted WeCom callbacks → typed events. Raw payloads stop here.

Two sources: the self-built app callback (XML, parsed by wechatpy, one-to-one app sessions and card
clicks) and the smart-bot callback (JSON, group @-mentions and clicks; wechatpy has no parser for it).

Conversation ids (the part after `wecom:`):
- `user:<userid>`      one-to-one session with the self-built app (message/send touser)
- `appchat:<chatid>`   an app group chat the app created (appchat/create, appchat/send)
- `robot:<name>`       a group robot webhook named in settings (notifications only, no callbacks)
- `smartbot:<chatid>`  a group where the smart bot was @-mentioned (single chats: `smartbot:@<userid>`)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from xml.parsers.expat import ExpatError

from wechatpy.enterprise import parse_message
from wechatpy.enterprise.events import register_event
from wechatpy.enterprise.messages import TextMessage
from wechatpy.events import BaseEvent
from wechatpy.fields import IntegerField, StringField

from bot.chat.wecom.defaults import PLATFORM
from kobot.conversations import ButtonClick, Conversation, Identity, InboundMessage, MessageRef

log = logging.getLogger(__name__)

USER = "user"
APPCHAT = "appchat"
ROBOT = "robot"
SMARTBOT = "smartbot"


@register_event("template_card_event")
class TemplateCardEvent(BaseEvent):  # type: ignore[misc]
    """A click on a template card button: EventKey is the button key, ResponseCode allows one update."""

    event = "template_card_event"
    agent = IntegerField("AgentID", 0)
    key = StringField("EventKey")
    task_id = StringField("TaskId")
    card_type = StringField("CardType")
    response_code = StringField("ResponseCode")


@dataclass(frozen=True)
class TextIn:
    """A text line addressed to kobot."""

    user_id: str
    text: str
    message_id: str
    conversation_id: str
    is_direct: bool
    dedupe_key: str = ""
    """Same key, same message (WeCom redelivers); empty when the platform gave no id."""
    reply_url: str | None = None


@dataclass(frozen=True)
class CardClickIn:
    """A button click, still holding WeCom's key; the adapter maps it back to the button."""

    user_id: str
    task_id: str
    key: str
    conversation_id: str
    is_direct: bool
    dedupe_key: str
    response_code: str | None = None
    reply_url: str | None = None


def parse_app_callback(xml: str, *, agent_id: int) -> TextIn | CardClickIn | None:
    """A decrypted app callback, or None for what kobot does not act on (other apps, images, enter events)."""
    try:
        return _app_callback(parse_message(xml), agent_id=agent_id)
    except (ExpatError, ValueError, TypeError, KeyError, AttributeError):
        # signed and decrypted, yet not XML of WeCom's shape (wechatpy converts fields as they are
        # read): nothing to act on, and never a 500
        log.warning("wecom app callback whose XML kobot cannot read; ignored")
        return None


def _app_callback(message: Any, *, agent_id: int) -> TextIn | CardClickIn | None:
    if message is None or int(getattr(message, "agent", 0) or 0) != agent_id:
        return None
    user_id = str(message.source or "")
    if not user_id:
        return None
    conversation_id = f"{USER}:{user_id}"
    if isinstance(message, TextMessage):
        message_id = str(message.id or "")
        return TextIn(
            user_id=user_id,
            text=str(message.content or ""),
            message_id=message_id,
            conversation_id=conversation_id,
            is_direct=True,
            dedupe_key=f"app:{message_id}" if message_id not in ("", "0") else "",
        )
    if isinstance(message, TemplateCardEvent):
        return CardClickIn(
            user_id=user_id,
            task_id=str(message.task_id or ""),
            key=str(message.key or ""),
            conversation_id=conversation_id,
            is_direct=True,
            dedupe_key=f"click:{message.task_id}:{message.response_code}",
            response_code=str(message.response_code) if message.response_code else None,
        )
    return None


def parse_smart_bot_callback(payload: dict[str, Any]) -> TextIn | CardClickIn | None:
    """A decrypted smart-bot callback (JSON), or None when it is not a text line or a card click."""
    sender = payload.get("from")
    user_id = str(sender.get("userid", "")) if isinstance(sender, dict) else ""
    if not user_id:
        return None
    is_direct = payload.get("chattype") == "single"
    chat_id = str(payload.get("chatid") or "")
    conversation_id = f"{SMARTBOT}:@{user_id}" if is_direct or not chat_id else f"{SMARTBOT}:{chat_id}"
    reply_url = payload.get("response_url") if isinstance(payload.get("response_url"), str) else None
    message_id = str(payload.get("msgid", ""))
    msgtype = payload.get("msgtype")
    if msgtype == "text":
        text = payload.get("text")
        content = str(text.get("content", "")) if isinstance(text, dict) else ""
        return TextIn(
            user_id=user_id,
            text=_drop_leading_mention(content),
            message_id=message_id,
            conversation_id=conversation_id,
            is_direct=is_direct,
            dedupe_key=f"smartbot:{message_id}" if message_id else "",
            reply_url=reply_url,
        )
    event = payload.get("event")
    if msgtype == "event" and isinstance(event, dict) and event.get("eventtype") == "template_card_event":
        card = event.get("template_card_event")
        if not isinstance(card, dict):
            return None
        return CardClickIn(
            user_id=user_id,
            task_id=str(card.get("task_id", "")),
            key=str(card.get("event_key", "")),
            conversation_id=conversation_id,
            is_direct=is_direct,
            dedupe_key=f"smartbot:{message_id}" if message_id else "",
            reply_url=reply_url,
        )
    return None


def _drop_leading_mention(content: str) -> str:
    """Group text arrives as "@kobot scale ..."; the bot's own mention is not part of the command."""
    stripped = content.strip()
    if stripped.startswith("@"):
        _, _, rest = stripped.partition(" ")
        return rest.strip()
    return stripped


def identity_of(user_id: str, *, display_name: str | None = None) -> Identity:
    """WeCom callbacks carry the userid only; the adapter looks the name up (`contacts`), else the userid."""
    return Identity(platform=PLATFORM, user_id=user_id, display_name=display_name or user_id)


def conversation_of(event: TextIn | CardClickIn) -> Conversation:
    return Conversation(platform=PLATFORM, conversation_id=event.conversation_id, is_direct=event.is_direct)


def to_inbound(event: TextIn, *, display_name: str | None = None) -> InboundMessage:
    return InboundMessage(
        identity=identity_of(event.user_id, display_name=display_name),
        conversation=conversation_of(event),
        text=event.text,
        message_id=event.message_id,
    )


def to_click(
    event: CardClickIn, *, action_id: str, value: str, display_name: str | None = None
) -> ButtonClick:
    return ButtonClick(
        identity=identity_of(event.user_id, display_name=display_name),
        conversation=conversation_of(event),
        action_id=action_id,
        value=value,
        message=MessageRef(
            platform=PLATFORM, conversation_id=event.conversation_id, message_id=event.task_id
        ),
    )

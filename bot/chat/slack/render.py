"""OutgoingMessage → Slack Block Kit (`text` fallback plus `blocks`).

Slack shows `text` in notifications and where blocks cannot render, so it always carries the
whole message. Button `value`s go out verbatim (they are signed by whoever built them); action ids
get a position suffix because Slack requires them unique within one actions block.
"""

from __future__ import annotations

import re
from typing import Any

from bot.chat.slack import defaults
from kobot.errors import DeliveryError
from kobot.messages import TONE_MARK, ButtonStyle, OutgoingMessage, format_elapsed

ACTIONS_BLOCK_ID = "kobot.actions"
"""block_id of the buttons row; inbound clicks are only accepted from blocks kobot rendered."""

ACTION_SUFFIX_SEPARATOR = "#"
"""Separates kobot's action id from the position suffix that keeps Slack's action ids unique."""

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SUFFIXED = re.compile(rf"^(?P<action>.+){ACTION_SUFFIX_SEPARATOR}(?P<index>\d+)$")

Block = dict[str, Any]


def escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters; user data must not form links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(name: str) -> str:
    """A Slack user id becomes a real mention; anything else stays readable text."""
    return f"<@{name}>" if _USER_ID.match(name) else f"@{escape(name)}"


def slack_action_id(action_id: str, index: int) -> str:
    return f"{action_id}{ACTION_SUFFIX_SEPARATOR}{index}"


def kobot_action_id(slack_id: str) -> str:
    """Undo `slack_action_id`: the id kobot gave the button."""
    match = _SUFFIXED.match(slack_id)
    return match.group("action") if match else slack_id


def render(
    message: OutgoingMessage, *, blocks_text_budget: int = defaults.BLOCKS_TEXT_MAX_CHARS
) -> dict[str, Any]:
    """The `text` and `blocks` arguments of chat.postMessage / chat.update for `message`; the blocks'
    text together stays within `blocks_text_budget` (the longest texts are shortened first)."""
    blocks = _blocks(message)
    if len(blocks) > defaults.MAX_BLOCKS:
        raise DeliveryError(f"message has {len(blocks)} blocks, Slack allows {defaults.MAX_BLOCKS}")
    _fit(blocks, budget=blocks_text_budget)
    return {"text": _fallback_text(message), "blocks": blocks}


def blocks_text_length(blocks: list[Block]) -> int:
    """Characters of text across `blocks`, as Slack counts them against its cumulative limit."""
    return sum(len(obj["text"]) for obj in _text_objects(blocks))


def _text_objects(blocks: list[Block]) -> list[Block]:
    """Every text object of `blocks`: headers, sections and their fields, context elements, button labels."""
    found: list[Block] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            found.append(block["text"])
        found.extend(block.get("fields", []))
        for element in block.get("elements", []):
            found.append(element["text"] if isinstance(element.get("text"), dict) else element)
    return [obj for obj in found if isinstance(obj.get("text"), str)]


def _fit(blocks: list[Block], *, budget: int) -> None:
    """Shorten the longest texts, visibly, until all of them together fit `budget`."""
    objects = _text_objects(blocks)
    excess = sum(len(obj["text"]) for obj in objects) - budget
    # many texts share the budget: each keeps at least its share, up to BLOCK_TEXT_KEPT_CHARS
    floor = min(defaults.BLOCK_TEXT_KEPT_CHARS, budget // max(len(objects), 1))
    while excess > 0:
        longest = max(objects, key=lambda obj: len(obj["text"]))
        length = len(longest["text"])
        if length <= floor:
            return
        keep = max(length - excess, floor)
        longest["text"] = _shorten(longest["text"], keep)
        excess -= length - len(longest["text"])


def _shorten(text: str, limit: int) -> str:
    """`_cut`, keeping a code block's closing fence so the rest of the message is not swallowed by it."""
    fence = "```"
    if text.startswith(fence + "\n") and text.endswith("\n" + fence) and limit > 2 * len(fence) + 3:
        inner = text[len(fence) + 1 : -(len(fence) + 1)]
        return f"{fence}\n{_cut(inner, limit - 2 * len(fence) - 2)}\n{fence}"
    return _cut(text, limit)


def _fallback_text(message: OutgoingMessage) -> str:
    plain = message.model_copy(update={"mentions": ()}).to_text(numbered_buttons=False)
    text = escape(plain)
    if message.mentions:
        text += "\n" + " ".join(mention(name) for name in message.mentions)
    return _cut(text, defaults.TEXT_MAX_CHARS)


def _blocks(message: OutgoingMessage) -> list[Block]:
    blocks: list[Block] = [
        {
            "type": "header",
            "text": _plain(f"{TONE_MARK[message.tone]} {message.title}", defaults.HEADER_MAX_CHARS),
        }
    ]
    if message.status:
        blocks.append(_section(f"*{escape(message.status)}*"))
    if message.progress is not None:
        p = message.progress
        task = f" · {escape(p.task)}" if p.task else ""
        blocks.append(
            _section(
                f"`{p.bar()}` step {p.step}/{p.total} *{escape(p.step_title)}*{task}"
                f" · {format_elapsed(p.elapsed_seconds)}"
            )
        )
    if message.body:
        blocks.append(_section(escape(message.body)))
    for start in range(0, len(message.fields), defaults.FIELDS_PER_SECTION):
        chunk = message.fields[start : start + defaults.FIELDS_PER_SECTION]
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _mrkdwn(f"*{escape(f.label)}*\n{escape(f.value)}", defaults.FIELD_MAX_CHARS)
                    for f in chunk
                ],
            }
        )
    if message.code:
        blocks.append(_code_section(message.code))
    if message.buttons:
        blocks.extend(_actions(message))
    if message.mentions:
        blocks.append(_section(" ".join(mention(name) for name in message.mentions)))
    if message.footer:
        blocks.append(
            {"type": "context", "elements": [_mrkdwn(escape(message.footer), defaults.CONTEXT_MAX_CHARS)]}
        )
    return blocks


def _actions(message: OutgoingMessage) -> list[Block]:
    rows: list[Block] = []
    for start in range(0, len(message.buttons), defaults.BUTTONS_PER_ACTIONS):
        elements: list[Block] = []
        for index, button in enumerate(
            message.buttons[start : start + defaults.BUTTONS_PER_ACTIONS], start=start
        ):
            if len(button.value) > defaults.BUTTON_VALUE_MAX_CHARS:
                raise DeliveryError(f"button {button.label!r} carries a value longer than Slack keeps")
            element: Block = {
                "type": "button",
                "text": _plain(button.label, defaults.BUTTON_LABEL_MAX_CHARS),
                "action_id": slack_action_id(button.action_id, index),
                "value": button.value,
            }
            if button.style is not ButtonStyle.DEFAULT:
                element["style"] = button.style.value
            elements.append(element)
        suffix = "" if start == 0 else f".{start // defaults.BUTTONS_PER_ACTIONS}"
        rows.append({"type": "actions", "block_id": ACTIONS_BLOCK_ID + suffix, "elements": elements})
    return rows


def _code_section(code: str) -> Block:
    fence = "```"
    room = defaults.SECTION_MAX_CHARS - 2 * len(fence) - 2
    return _section(f"{fence}\n{_cut(escape(code), room)}\n{fence}")


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text, defaults.SECTION_MAX_CHARS)}


def _mrkdwn(text: str, limit: int) -> Block:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _plain(text: str, limit: int) -> Block:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _cut(text: str, limit: int) -> str:
    """Shorten visibly (an ellipsis) rather than let Slack refuse the whole message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""OutgoingMessage → what DingTalk is sent: markdown (webhooks, robot API) or card parameters.

DingTalk markdown is a small dialect: headings, bold, quotes and lists render; fenced code does
not, so code is shown as a quote. Every text that comes from the message goes through
`escape_markdown` (alert labels, echoed commands and reasons must not form links or mentions); the
markup around it is kobot's. Card parameters are all strings because `cardParamMap` is
`Map<String, String>`. Two card shapes: the SDK's public "Markdown with buttons" template (the
default: `title`, `markdown`, `tips`, buttons in `sys_full_json_obj`) and a team's own template
(SETUP.md lists the variables kobot fills).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.chat.dingtalk import defaults
from bot.chat.markdown_escape import SAFE_MENTION, escape_markdown
from kobot.messages import TONE_MARK, ButtonStyle, OutgoingMessage, format_elapsed

CARD_CALLBACK_TYPE = "STREAM"
"""Card button clicks come back over the stream connection, not an HTTP route."""

MARKDOWN_MSG_KEY = "sampleMarkdown"
"""The robot API's built-in markdown message template."""


@dataclass(frozen=True)
class Markdown:
    """A rendered markdown message: DingTalk shows `title` in the notification, `text` in the chat."""

    title: str
    text: str


def render_markdown(message: OutgoingMessage) -> Markdown:
    """The whole message as DingTalk markdown; buttons become numbered choices (no callbacks here)."""
    esc = escape_markdown
    blocks = [f"#### {TONE_MARK[message.tone]} {esc(message.title)}"]
    if message.status:
        blocks.append(f"**{esc(message.status)}**")
    blocks.extend(_details(message))
    if message.buttons:
        blocks.append("  ".join(f"[{i}] {esc(b.label)}" for i, b in enumerate(message.buttons, start=1)))
    if message.mentions:
        blocks.append(" ".join(_mention(m) for m in message.mentions))
    if message.footer:
        blocks.append(f"*{esc(message.footer)}*")
    return Markdown(title=message.title, text="\n\n".join(blocks))


def _mention(user_id: str) -> str:
    """`@id` notifies only the ids the request's `at` lists; anything unlike an id stays plain text."""
    return f"@{user_id}" if SAFE_MENTION.fullmatch(user_id) else escape_markdown(f"@{user_id}")


def _details(message: OutgoingMessage) -> list[str]:
    """Progress, body, fields and code: the part a card shows under its title and status."""
    esc = escape_markdown
    blocks: list[str] = []
    if message.progress is not None:
        p = message.progress
        task = f" · {esc(p.task)}" if p.task else ""
        elapsed = format_elapsed(p.elapsed_seconds)
        blocks.append(f"{p.bar()} step {p.step}/{p.total} **{esc(p.step_title)}**{task} · {elapsed}")
    if message.body:
        blocks.append("  \n".join(esc(line) for line in message.body.splitlines()))
    if message.fields:
        blocks.append("\n".join(f"- **{esc(f.label)}**: {_one_line(f.value)}" for f in message.fields))
    if message.code:
        blocks.append("\n".join(f"> {esc(line)}" for line in message.code.splitlines()))
    return blocks


def _one_line(value: str) -> str:
    """A field value inside its list item: a line break in it would end the item."""
    return escape_markdown(" ".join(value.split()))


def card_params(message: OutgoingMessage) -> dict[str, str]:
    """The `cardParamMap` of kobot's card template (every value a string, as DingTalk requires)."""
    progress = message.progress
    percent = (
        0 if progress is None or progress.total == 0 else round(100 * (progress.step - 1) / progress.total)
    )
    buttons = [
        {"text": b.label, "action_id": b.action_id, "value": b.value, "style": b.style.value}
        for b in message.buttons
    ]
    details = "\n\n".join(_details(message))
    return {
        "kind": message.kind.value,
        "tone": message.tone.value,
        "title": f"{TONE_MARK[message.tone]} {message.title}",
        "status": message.status or "",
        "markdown": truncate_bytes(details, limit_bytes=defaults.MESSAGE_MAX_BYTES // 2),
        "progress": f"{progress.step}/{progress.total}" if progress is not None else "",
        "progress_percent": str(percent) if progress is not None else "",
        "buttons": json.dumps(buttons, ensure_ascii=False),
        "has_buttons": "true" if buttons else "false",
        "footer": message.footer or "",
    }


BUTTON_COLORS = {ButtonStyle.PRIMARY: "blue", ButtonStyle.DANGER: "red", ButtonStyle.DEFAULT: "gray"}
"""Button colours of the public template (the SDK's MarkdownButtonCardInstance documents blue and gray)."""


def public_card_params(message: OutgoingMessage) -> dict[str, str]:
    """The `cardParamMap` of the public "Markdown with buttons" template.

    Every button calls back (`request: true`) with `params` {action_id, value}, which DingTalk returns
    as `cardPrivateData.params` in the stream callback, the same shape a team template's buttons send.
    `sys_full_json_obj` is always set, so an update without buttons removes the old ones.
    """
    esc = escape_markdown
    blocks = [f"**{esc(message.status)}**"] if message.status else []
    blocks.extend(_details(message))
    markdown = "\n\n".join(blocks) or esc(message.title)
    buttons = [
        {
            "text": b.label,
            "color": BUTTON_COLORS[b.style],
            "request": True,
            "params": {"action_id": b.action_id, "value": b.value},
        }
        for b in message.buttons
    ]
    return {
        "title": f"{TONE_MARK[message.tone]} {message.title}",
        "markdown": truncate_bytes(markdown, limit_bytes=defaults.MESSAGE_MAX_BYTES // 2),
        "tips": message.footer or "",
        "sys_full_json_obj": json.dumps({"msgButtons": buttons}, ensure_ascii=False),
    }


def webhook_markdown(doc: Markdown, *, mentions: tuple[str, ...] = ()) -> dict[str, Any]:
    """Body for a session webhook or a custom robot webhook."""
    return {
        "msgtype": "markdown",
        "markdown": {"title": doc.title, "text": doc.text},
        "at": {"atUserIds": list(mentions), "isAtAll": False},
    }


def webhook_text(text: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": text}}


def robot_api_markdown(
    doc: Markdown, *, robot_code: str, conversation_id: str, user_id: str | None
) -> tuple[str, dict[str, Any]]:
    """Path and body of the robot API: a group message, or a one-to-one message when `user_id` is set."""
    msg_param = json.dumps({"title": doc.title, "text": doc.text}, ensure_ascii=False)
    if user_id is not None:
        body: dict[str, Any] = {"robotCode": robot_code, "userIds": [user_id]}
        path = "/v1.0/robot/oToMessages/batchSend"
    else:
        body = {"robotCode": robot_code, "openConversationId": conversation_id}
        path = "/v1.0/robot/groupMessages/send"
    body.update({"msgKey": MARKDOWN_MSG_KEY, "msgParam": msg_param})
    return path, body


def card_create(
    params: dict[str, str],
    *,
    template_id: str,
    out_track_id: str,
    robot_code: str,
    conversation_id: str,
    user_id: str | None,
) -> dict[str, Any]:
    """Body of `createAndDeliver`: into the group, or into the robot chat with `user_id`."""
    body: dict[str, Any] = {
        "cardTemplateId": template_id,
        "outTrackId": out_track_id,
        "cardData": {"cardParamMap": params},
        "callbackType": CARD_CALLBACK_TYPE,
        "userIdType": 1,
    }
    if user_id is not None:
        body["openSpaceId"] = f"dtv1.card//IM_ROBOT.{user_id}"
        body["imRobotOpenSpaceModel"] = {"supportForward": False}
        body["imRobotOpenDeliverModel"] = {"spaceType": "IM_ROBOT", "robotCode": robot_code}
    else:
        body["openSpaceId"] = f"dtv1.card//IM_GROUP.{conversation_id}"
        body["imGroupOpenSpaceModel"] = {"supportForward": False}
        body["imGroupOpenDeliverModel"] = {"robotCode": robot_code}
    return body


def card_update(params: dict[str, str], *, out_track_id: str) -> dict[str, Any]:
    """Body of `PUT /v1.0/card/instances`: every parameter, so stale buttons disappear too."""
    return {
        "outTrackId": out_track_id,
        "cardData": {"cardParamMap": params},
        "cardUpdateOptions": {"updateCardDataByKey": True},
    }


def split_markdown(doc: Markdown, *, limit_bytes: int = defaults.MESSAGE_MAX_BYTES) -> list[Markdown]:
    """Parts that each fit `limit_bytes` once sent; more than MESSAGE_MAX_PARTS parts are cut, saying so.

    Splits on line boundaries so a field or a quoted line is never torn; a single huge line is cut by
    bytes. Room is left for the JSON envelope and the "(k/n)" marker.
    """
    room = limit_bytes - len(doc.title.encode()) - 512
    if len(json.dumps(doc.text, ensure_ascii=False).encode()) <= room:
        return [doc]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in _lines_within(doc.text, room=room):
        cost = _json_bytes(line) + 2
        if current and size + cost > room:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += cost
    if current:
        chunks.append("\n".join(current))
    if len(chunks) > defaults.MESSAGE_MAX_PARTS:
        left = sum(len(c.encode()) for c in chunks[defaults.MESSAGE_MAX_PARTS :])
        chunks = chunks[: defaults.MESSAGE_MAX_PARTS]
        chunks[-1] = (
            truncate_bytes(chunks[-1], limit_bytes=room - 100) + f"\n\n*… {left} more bytes not shown*"
        )
    total = len(chunks)
    return [
        Markdown(title=f"{doc.title} ({i}/{total})", text=chunk) for i, chunk in enumerate(chunks, start=1)
    ]


def _lines_within(text: str, *, room: int) -> list[str]:
    lines: list[str] = []
    for line in text.split("\n"):
        while _json_bytes(line) > room:
            head = truncate_bytes(line, limit_bytes=room // 2, marker="")
            lines.append(head)
            line = line[len(head) :]
        lines.append(line)
    return lines


def _json_bytes(text: str) -> int:
    return len(json.dumps(text, ensure_ascii=False).encode())


def truncate_bytes(text: str, *, limit_bytes: int, marker: str = "…") -> str:
    """`text` cut to at most `limit_bytes` UTF-8 bytes without splitting a character."""
    data = text.encode()
    if len(data) <= limit_bytes:
        return text
    cut = data[: max(limit_bytes - len(marker.encode()), 0)].decode(errors="ignore")
    return cut + marker

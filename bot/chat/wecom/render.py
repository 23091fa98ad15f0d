"""OutgoingMessage → WeCom payloads: markdown (split to fit), plain text, button_interaction cards.

Pure functions: what to send where is the adapter's business, how it looks is decided here. In
markdown every text that comes from the message goes through `escape_markdown` (alert labels, echoed
commands and reasons must not form links, `<font>` tags or `<@user>` mentions); cards and plain text
are shown literally by WeCom and need none.
"""

from __future__ import annotations

from typing import Any

from bot.chat.markdown_escape import SAFE_MENTION, escape_markdown
from bot.chat.wecom import defaults
from kobot.messages import TONE_MARK, Button, ButtonStyle, MessageKind, OutgoingMessage, Tone, format_elapsed

TONE_COLOR = {
    Tone.INFO: "comment",
    Tone.RUNNING: "comment",
    Tone.SUCCESS: "info",
    Tone.WARNING: "warning",
    Tone.DANGER: "warning",
}
"""WeCom markdown knows three font colours: info (green), comment (grey), warning (orange)."""

BUTTON_STYLE = {ButtonStyle.PRIMARY: 1, ButtonStyle.DEFAULT: 2, ButtonStyle.DANGER: 3}
"""template_card button styles 1–4: 1 is the blue call to action, 3 the red one."""

ELLIPSIS = "…"


def render_markdown(message: OutgoingMessage, *, with_buttons: bool = True) -> str:
    """The whole message as WeCom markdown; buttons (when shown) become numbered choices."""
    esc = escape_markdown
    lines = [f"**{TONE_MARK[message.tone]} {esc(message.title)}**"]
    if message.status:
        lines.append(f'<font color="{TONE_COLOR[message.tone]}">{esc(message.status)}</font>')
    if message.progress is not None:
        lines.append(esc(_progress_line(message)))
    if message.body:
        lines.extend(esc(line) for line in message.body.splitlines())
    lines.extend(f"> **{esc(f.label)}:** {esc(' '.join(f.value.split()))}" for f in message.fields)
    if message.code:
        lines.extend(f"`{esc(line)}`" for line in message.code.splitlines() if line)
    if with_buttons and message.buttons:
        lines.append("  ".join(_choice(i, b) for i, b in enumerate(message.buttons, start=1)))
    if message.mentions:
        lines.append(" ".join(_mention(m) for m in message.mentions))
    if message.footer:
        lines.append(f'<font color="comment">{esc(message.footer)}</font>')
    return "\n".join(lines)


def _choice(number: int, button: Button) -> str:
    """A numbered choice, or for a button with a typed form (nothing to click here) that command."""
    if button.typed is not None:
        return f"`{escape_markdown(button.label)}: {escape_markdown(button.typed)}`"
    return f"`[{number}] {escape_markdown(button.label)}`"


def needs_cards(message: OutgoingMessage) -> bool:
    """Whether a message's buttons are worth a one-to-one card where the place itself shows none: not
    when every button has a typed form the place shows instead (a job's Cancel on every progress stage)."""
    return any(button.typed is None for button in message.buttons)


def _mention(user_id: str) -> str:
    """`<@userid>` notifies; a value unlike a user id is shown as escaped text instead of a tag."""
    return f"<@{user_id}>" if SAFE_MENTION.fullmatch(user_id) else escape_markdown(f"@{user_id}")


def render_text(message: OutgoingMessage) -> str:
    """Plain text for places without markdown, cut to the text limit."""
    return fit_bytes(message.to_text(), limit=defaults.TEXT_MAX_BYTES)


def split_markdown(
    text: str, *, limit: int = defaults.MARKDOWN_MAX_BYTES, max_parts: int = defaults.MESSAGE_PARTS_MAX
) -> list[str]:
    """Cut at line ends into parts of at most `limit` bytes; beyond `max_parts` the rest is summarized."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    lines = text.split("\n")
    for index, raw in enumerate(lines):
        line = fit_bytes(raw, limit=limit)
        cost = len(line.encode()) + (1 if current else 0)
        if current and size + cost > limit:
            parts.append("\n".join(current))
            current, size = [], 0
            cost = len(line.encode())
            if len(parts) == max_parts:
                return _summarize(parts, hidden=len(lines) - index, limit=limit)
        current.append(line)
        size += cost
    if current:
        parts.append("\n".join(current))
    return parts


def _summarize(parts: list[str], *, hidden: int, limit: int) -> list[str]:
    last = parts[-1]
    while True:
        note = f"\n{ELLIPSIS} {hidden} more lines not shown"
        if len((last + note).encode()) <= limit:
            break
        if "\n" not in last:
            last = fit_bytes(last, limit=limit - len(note.encode()))
            break
        last = last.rsplit("\n", 1)[0]
        hidden += 1
    parts[-1] = last + note
    return parts


def fit_bytes(text: str, *, limit: int) -> str:
    """`text` cut (on a character boundary, with an ellipsis) so its UTF-8 form fits in `limit` bytes."""
    data = text.encode()
    if len(data) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode())
    return data[:room].decode(errors="ignore") + ELLIPSIS


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def render_card(message: OutgoingMessage, *, task_id: str, keys: list[str]) -> dict[str, Any]:
    """A button_interaction template card; `keys[i]` is what a click on button i sends back."""
    title = f"{TONE_MARK[message.tone]} {message.title}"
    short_title = _cut(title, defaults.CARD_TITLE_MAX_CHARS)
    details = [line for line in (_progress_line(message) if message.progress else None, message.body) if line]
    if short_title != title:
        details.insert(0, message.title)
    extra_fields = message.fields[defaults.CARD_FIELDS_MAX :]
    details.extend(f"{f.label}: {f.value}" for f in extra_fields)
    if message.code:
        details.append(message.code)
    if message.footer:
        details.append(message.footer)
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": short_title},
        "task_id": task_id,
        "button_list": [
            {"text": button.label, "style": BUTTON_STYLE[button.style], "key": key}
            for button, key in zip(message.buttons[: defaults.BUTTONS_MAX], keys, strict=False)
        ],
    }
    if message.status:
        card["main_title"]["desc"] = message.status
    if details:
        card["sub_title_text"] = _cut("\n".join(details), defaults.CARD_SUBTITLE_MAX_CHARS)
    if message.fields:
        card["horizontal_content_list"] = [
            {"keyname": f.label, "value": f.value} for f in message.fields[: defaults.CARD_FIELDS_MAX]
        ]
    return card


def stage_of(message: OutgoingMessage) -> str:
    """What makes an update worth a new WeCom message: a new step or a new outcome, not a new task line."""
    if message.kind is MessageKind.PROGRESS and message.progress is not None and message.tone is Tone.RUNNING:
        return f"progress:{message.title}:{message.progress.step}/{message.progress.total}"
    return f"{message.kind.value}:{message.tone.value}:{message.to_text()}"


def _progress_line(message: OutgoingMessage) -> str:
    p = message.progress
    if p is None:
        return ""
    task = f" · {p.task}" if p.task else ""
    return f"{p.bar()} step {p.step}/{p.total} {p.step_title}{task} · {format_elapsed(p.elapsed_seconds)}"

"""One platform-neutral outgoing message; each adapter renders it (Block Kit, DingTalk card, WeCom card).

`to_text()` is the fallback every platform can show: the terminal uses it, and so does a platform
when a card cannot be sent.
"""

from __future__ import annotations

from enum import Enum

from pydantic import ConfigDict

from kobot.deferred_models import DeferredModel


class MessageKind(str, Enum):
    """What a message is for; renderers may pick a template by it."""

    REPLY = "reply"
    HELP = "help"
    PROGRESS = "progress"
    APPROVAL = "approval"
    ALERT = "alert"
    NOTICE = "notice"


class Tone(str, Enum):
    """The colour/emoji a renderer gives the message."""

    INFO = "info"
    RUNNING = "running"
    SUCCESS = "success"
    WARNING = "warning"
    DANGER = "danger"


class ButtonStyle(str, Enum):
    DEFAULT = "default"
    PRIMARY = "primary"
    DANGER = "danger"


class Field(DeferredModel):
    model_config = ConfigDict(frozen=True)

    label: str
    value: str


class Button(DeferredModel):
    """A choice. `value` comes back verbatim in ButtonClick.value; sign it when it grants anything."""

    model_config = ConfigDict(frozen=True)

    label: str
    action_id: str
    value: str
    style: ButtonStyle = ButtonStyle.DEFAULT
    typed: str | None = None
    """The command a person can type for the same effect: shown instead where nothing can be clicked, and
    a reason not to fan the message out as one-to-one cards just to make the button clickable."""


class Progress(DeferredModel):
    """Step k of n, the running task and the time so far."""

    model_config = ConfigDict(frozen=True)

    step: int
    total: int
    step_title: str
    task: str | None = None
    elapsed_seconds: float = 0.0

    def bar(self, width: int = 10) -> str:
        done = 0 if self.total == 0 else round(width * max(self.step - 1, 0) / self.total)
        return "▰" * done + "▱" * (width - done)


TONE_MARK = {
    Tone.INFO: "ℹ️",
    Tone.RUNNING: "⏳",
    Tone.SUCCESS: "✅",
    Tone.WARNING: "⚠️",
    Tone.DANGER: "❌",
}


class OutgoingMessage(DeferredModel):
    """Title, status line, fields, progress, code block, buttons and mentions."""

    model_config = ConfigDict(frozen=True)

    kind: MessageKind = MessageKind.REPLY
    title: str
    tone: Tone = Tone.INFO
    status: str | None = None
    body: str | None = None
    fields: tuple[Field, ...] = ()
    progress: Progress | None = None
    code: str | None = None
    buttons: tuple[Button, ...] = ()
    mentions: tuple[str, ...] = ()
    footer: str | None = None

    def to_text(self, *, numbered_buttons: bool = True) -> str:
        """Plain text every platform and the terminal can show."""
        lines = [f"{TONE_MARK[self.tone]} {self.title}"]
        if self.status:
            lines.append(self.status)
        if self.progress is not None:
            p = self.progress
            task = f" · {p.task}" if p.task else ""
            lines.append(
                f"{p.bar()} step {p.step}/{p.total} {p.step_title}{task}"
                f" · {format_elapsed(p.elapsed_seconds)}"
            )
        if self.body:
            lines.append(self.body)
        lines.extend(f"{f.label}: {f.value}" for f in self.fields)
        if self.code:
            lines.append(self.code)
        if self.buttons:
            if numbered_buttons:
                lines.append("  ".join(f"[{i}] {b.label}" for i, b in enumerate(self.buttons, start=1)))
            else:
                lines.append(" | ".join(b.label for b in self.buttons))
        if self.mentions:
            lines.append(" ".join(f"@{m}" for m in self.mentions))
        if self.footer:
            lines.append(self.footer)
        return "\n".join(lines)


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"

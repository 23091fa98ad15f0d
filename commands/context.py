"""What a command handler gets, and what it may answer: a reply now, or a job to queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.chat.message import OutgoingMessage
from bot.chat.types import Conversation, Identity
from commands.registry import ParsedCommand

if TYPE_CHECKING:
    from bot.runtime import Runtime


@dataclass(frozen=True)
class CommandContext:
    """Who asked, where, and the runtime to read state from. Handlers never write to chat themselves."""

    runtime: Runtime
    identity: Identity
    conversation: Conversation
    parsed: ParsedCommand
    text: str


@dataclass(frozen=True)
class Reply:
    """Answer at once with this message."""

    message: OutgoingMessage


@dataclass(frozen=True)
class SubmitJob:
    """Queue a job. `plan_lines` and `plan_hash` say exactly what will run; approvals bind to the hash."""

    kind: str
    cluster: str
    params: dict[str, Any]
    title: str
    plan_lines: tuple[str, ...] = ()
    plan_hash: str = ""
    extra_fields: dict[str, str] = field(default_factory=dict)


CommandResult = Reply | SubmitJob

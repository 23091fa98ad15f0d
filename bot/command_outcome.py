"""What became of one command message: for callers that answer it elsewhere than in chat (REST).

Kept out of `bot.dispatcher`, which `kobot serve` imports only once it answers (`bot.dispatcher_soon`):
the REST models name these from the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bot.approvals import ApprovalRequest
from kobot.errors import KobotError


class Handled(str, Enum):
    """What became of one command message, for callers that answer it elsewhere than in chat (REST)."""

    ANSWERED = "answered"
    QUEUED = "queued"
    AWAITING_APPROVAL = "awaiting_approval"
    NOT_UNDERSTOOD = "not_understood"
    REFUSED = "refused"
    CANNOT_DO = "cannot_do"
    FAILED = "failed"


@dataclass(frozen=True)
class CommandOutcome:
    """The end of one command message: the job it queued, the approval it asked for, or why it did not
    run (`error` is chat-safe; `ref` names an unexpected failure in the log). The replies themselves went
    to the conversation's adapter, as for every message."""

    handled: Handled
    job_id: str | None = None
    approval: ApprovalRequest | None = None
    error: KobotError | None = None
    ref: str | None = None

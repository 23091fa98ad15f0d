"""Approval requests and what a click on their buttons led to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import ConfigDict, Field

from kobot.conversations import Conversation, Identity, MessageRef
from kobot.deferred_models import DeferredModel
from kobot.messages import OutgoingMessage


class ApprovalStatus(str, Enum):
    """`refused` is never stored: it is the outcome of a click that did not count."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REFUSED = "refused"


class ApprovalDecision(str, Enum):
    """What a button asks for; part of the signed payload."""

    APPROVE = "approve"
    REJECT = "reject"


class ApprovalVote(DeferredModel):
    """One approver's click that counted. `voter` is the person when known, else the identity key."""

    model_config = ConfigDict(frozen=True)

    identity: Identity
    voter: str
    at: datetime


class ApprovalRequest(DeferredModel):
    """A command waiting for approvals, bound to the exact plan (`plan_hash`) that was shown."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    status: ApprovalStatus = ApprovalStatus.PENDING
    requester: Identity
    requester_voter: str
    conversation: Conversation
    cluster: str
    command_id: str
    command_text: str
    action: dict[str, Any] = Field(default_factory=dict)
    plan_lines: tuple[str, ...] = ()
    plan_hash: str
    approvals_required: int
    approver_role: str
    created_at: datetime
    expires_at: datetime
    votes: tuple[ApprovalVote, ...] = ()
    decided_by: ApprovalVote | None = None
    decided_at: datetime | None = None
    note: str | None = None
    """Why it ended as it did (e.g. withdrawn by the requester)."""
    message_ref: MessageRef | None = None
    approval_channels: tuple[str, ...] = ()
    """Conversation keys (`platform:conversation_id`) besides `conversation` where a click counts: the
    cluster's approval channels, for a request asked in a one-to-one chat no other approver can see."""

    @property
    def id(self) -> str:
        """Short name of `request_id`, as shown on the card (#id)."""
        return self.request_id

    @property
    def approved_count(self) -> int:
        return len(self.votes)


@dataclass(frozen=True)
class ApprovalOutcome:
    """The result of a click or of expiry. A refused click never changes the request, so `card` is None."""

    status: ApprovalStatus
    request: ApprovalRequest | None
    card: OutgoingMessage | None
    reply: str | None

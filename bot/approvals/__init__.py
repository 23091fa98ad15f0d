"""Approvals bound to the exact change: stored requests, signed buttons, counted approvers, expiry."""

from bot.approvals.card import APPROVE_ACTION, REJECT_ACTION
from bot.approvals.models import (
    ApprovalDecision,
    ApprovalOutcome,
    ApprovalRequest,
    ApprovalStatus,
    ApprovalVote,
)
from bot.approvals.service import ApprovalService

__all__ = [
    "APPROVE_ACTION",
    "REJECT_ACTION",
    "ApprovalDecision",
    "ApprovalOutcome",
    "ApprovalRequest",
    "ApprovalService",
    "ApprovalStatus",
    "ApprovalVote",
]

"""The policy's answers, as every layer reads them: may this run, and who is this person to kobot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kobot.conversations import Conversation, Identity
from kobot.risk import Risk


@dataclass(frozen=True)
class AuthDecision:
    """Whether a command may run, and under which conditions. `reason` is safe to show in chat."""

    allowed: bool
    reason: str
    missing_permission: str | None
    needs_approval: bool
    approvals_required: int
    approver_role: str | None
    break_glass_allowed: bool
    roles: tuple[str, ...] = ()
    """The user's roles on the cluster, for audit records."""


@dataclass(frozen=True)
class WhoAmI:
    """What kobot knows about a user: their identity, the person it joins to, groups and roles."""

    identity: str
    display_name: str
    person: str | None
    identities: tuple[str, ...]
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    cluster: str | None
    policy_source: str
    directory_error: str | None = None


class Authorizer(Protocol):
    """The policy as the lower layers ask it (bot.policy.PolicyStore is the one implementation)."""

    def authorize(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        command_id: str,
        risk: Risk,
        cluster: str | None,
    ) -> AuthDecision: ...

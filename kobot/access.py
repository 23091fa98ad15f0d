"""The policy's answers, as every layer reads them: may this run, and who is this person to kobot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kobot.conversations import Conversation, Identity
from kobot.risk import Risk

CLUSTER_READ_PERMISSION = "kubectl"
"""Reading inside a cluster (`kubectl get/describe/logs/events/top`); viewers do not hold it by default."""

CLUSTER_IMPORT_PERMISSION = "cluster.import"
"""Importing a cluster kobot did not build (`kobot import`, `POST /api/v1/clusters/import`): admins only
by default, since it adds a cluster and its credentials to kobot."""

REPOSITORY_SETUP_PERMISSION = "repository.setup"
"""Setting up the offline repository every new cluster pulls from: admins only by default, since what
it serves runs on every node of every new cluster."""

SCOPE_SEPARATOR = ":"
"""`kubectl:shop` is the `kubectl` permission for namespace shop only (see `scoped_permission`)."""

EVERY_SCOPE = "*"
"""The scope of a read across every namespace, or of a kind that has none (nodes)."""


def scoped_permission(permission: str, scope: str) -> str:
    """A permission narrowed to one scope (a namespace): `kubectl:shop`.

    The policy grants `P:S` to a role granting `P` itself, or a pattern matching `P:S`; it excludes it when
    the role excludes `P` or `P:S`. A role granting only some scopes (`kubectl:shop`) holds `P` for the
    command's own check and is then limited by the handler asking for `P:S`. The scope `*` is not a
    glob: only a pattern like `kubectl:*` (or `kubectl`) grants reads across every namespace."""
    return f"{permission}{SCOPE_SEPARATOR}{scope}"


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

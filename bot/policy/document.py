"""The policy file's schema: what an admin may write, validated field by field.

Example (every section optional):

    version: 1
    roles:                      # viewer, operator and admin are built in; these add or redefine
      dba:
        commands: ["etcd.*", "cluster.show"]   # permission globs
        risks: [read]                          # or whole risk classes
        exclude: ["audit"]
        break_glass: false
    people:                     # one person, many platform identities
      alice:
        identities: ["slack:U123", "slack:email:alice@example.com", "dingtalk:0231", "terminal:alice"]
        groups: [sre]
        directory_user: alice   # uid in the directory, when it differs from the platform's
    groups:
      sre: [alice, "wecom:bob"]  # people or identity keys
    bindings:
      - role: operator
        subjects: ["group:sre", "group:ldap:k8s-ops", "person:alice", "slack:U999", "*"]
        clusters: ["prod-*"]     # globs; default every cluster
        channels: ["slack:C01"]  # only in these conversations; default everywhere
    channels:
      "slack:C01": {cluster: prod-eu}
    approvals:                  # the first matching rule wins
      - clusters: ["prod-*"]
        commands: ["cluster.delete"]
        risks: [risky]
        approvals: 2
        approver_role: admin
    ldap: {...}                 # see LdapSpec
    api_users:
      ci: {token_sha256: "<64 hex>", person: alice}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from bot.policy import defaults
from kobot.deferred_models import DeferredModel
from kobot.risk import Risk


class _Strict(DeferredModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoleSpec(_Strict):
    """What a role grants: permissions matching `commands` globs or any command of a listed risk."""

    commands: tuple[str, ...] = ()
    risks: tuple[Risk, ...] = ()
    exclude: tuple[str, ...] = ()
    """Permission globs this role never grants, even when `commands` or `risks` would."""
    break_glass: bool = False
    """Holders may run a command that needs approval at once, with a reason, audited and announced."""
    description: str = ""


class PersonSpec(_Strict):
    identities: tuple[str, ...] = Field(min_length=1)
    groups: tuple[str, ...] = ()
    directory_user: str | None = None
    email: str | None = None


class BindingSpec(_Strict):
    role: str
    subjects: tuple[str, ...] = Field(min_length=1)
    clusters: tuple[str, ...] = ("*",)
    channels: tuple[str, ...] = ()


class ChannelSpec(_Strict):
    cluster: str | None = None
    """Commands in this conversation act on this cluster when none is named."""


class ApprovalRuleSpec(_Strict):
    """Which commands need how many approvals from which role. Empty `commands` and `risks` match any."""

    commands: tuple[str, ...] = ()
    risks: tuple[Risk, ...] = ()
    clusters: tuple[str, ...] = ("*",)
    approvals: int = Field(default=1, ge=0, le=defaults.MAX_APPROVALS)
    approver_role: str = defaults.DEFAULT_APPROVER_ROLE


class LdapSpec(_Strict):
    """A directory whose groups become `group:ldap:<name>` subjects. The password lives in its own file."""

    url: str
    bind_dn: str | None = None
    bind_password_file: Path | None = None
    user_base: str
    user_filter: str = "(|(uid={uid})(mail={email}))"
    group_base: str
    group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={uid}))"
    group_attribute: str = "cn"
    start_tls: bool = False
    cache_seconds: int = Field(default=defaults.LDAP_CACHE_SECONDS, ge=0, le=86400)
    timeout_seconds: float = Field(default=defaults.LDAP_TIMEOUT_SECONDS, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("ldap://", "ldaps://")):
            raise ValueError("must start with ldap:// or ldaps://")
        return value

    @field_validator("user_filter", "group_filter")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(uid="u", email="e", dn="d")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{uid}}, {{email}} and {{dn}} may be used ({exc})") from None
        if not value.startswith("(") or not value.endswith(")"):
            raise ValueError("must be an LDAP filter in parentheses")
        return value


class ApiUserSpec(_Strict):
    """A REST API caller. Only the SHA-256 of its bearer token is written here, never the token."""

    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    person: str | None = None


class PolicyDocument(_Strict):
    version: Literal[1] = 1
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    people: dict[str, PersonSpec] = Field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    bindings: tuple[BindingSpec, ...] = ()
    channels: dict[str, ChannelSpec] = Field(default_factory=dict)
    approvals: tuple[ApprovalRuleSpec, ...] = ()
    ldap: LdapSpec | None = None
    api_users: dict[str, ApiUserSpec] = Field(default_factory=dict)

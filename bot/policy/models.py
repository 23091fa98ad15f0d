"""The compiled policy: indexes built once per load so authorizing is a few dictionary lookups.

Evaluation rules (documented for admins):
- A user's subjects are `*`, their identity key (`slack:U123`), `<platform>:email:<address>` when the
  platform reports an email, `person:<name>` when an identity of a person matches, and `group:<name>` for
  every group of that person or identity (directory groups as `group:ldap:<name>`). REST API tokens
  (`api:<name>`) are not `*`: they hold only bindings that name them (`api:<name>`, `api:*`, their
  person or groups).
- A binding applies when one of its subjects is the user's, a cluster glob matches the command's
  cluster, and (when it lists channels) a channel glob matches the conversation key. A command that
  names no cluster (help, list) is checked against bindings on any cluster.
- A role grants a permission when a `commands` glob or a `risks` entry matches and no `exclude` glob does.
  `kubectl:NAMESPACE` narrows reading inside a cluster to one namespace (kobot.access.scoped_permission).
- Approvals: the first rule matching command, risk and cluster decides; without one, a risky command
  needs one approval from an admin (no approval at all when kobot runs without a policy file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from bot.policy import defaults
from bot.policy.document import ApprovalRuleSpec, LdapSpec, PersonSpec, PolicyDocument, RoleSpec
from kobot.access import (
    CLUSTER_IMPORT_PERMISSION,
    CLUSTER_READ_PERMISSION,
    EVERY_SCOPE,
    REPOSITORY_SETUP_PERMISSION,
    SCOPE_SEPARATOR,
)
from kobot.risk import Risk

HOLDERS_CACHE_MAX = 1024
"""Refusal texts name a cluster's admins; answers are kept per (role, cluster) up to this many."""

BUILTIN_ROLE_SPECS: dict[str, RoleSpec] = {
    "viewer": RoleSpec(
        risks=(Risk.READ,),
        exclude=("audit", CLUSTER_READ_PERMISSION, CLUSTER_IMPORT_PERMISSION, REPOSITORY_SETUP_PERMISSION),
        description="read-only commands, except the audit trail and reading inside clusters (kubectl)",
    ),
    "operator": RoleSpec(
        risks=(Risk.READ, Risk.CHANGE, Risk.RISKY),
        exclude=("audit", CLUSTER_IMPORT_PERMISSION, REPOSITORY_SETUP_PERMISSION),
        description="every command but importing clusters and setting up the offline repository; "
        "risky ones go through approval",
    ),
    "admin": RoleSpec(
        commands=("*",),
        break_glass=True,
        description="everything, approves, may break glass, reads the audit",
    ),
}


def glob_match(patterns: Iterable[str], value: str) -> bool:
    """Case-sensitive glob match of any pattern (cluster and command names are lowercase by grammar)."""
    return any(pattern == value or fnmatchcase(value, pattern) for pattern in patterns)


@dataclass(frozen=True)
class CompiledBinding:
    role: str
    clusters: tuple[str, ...]
    channels: tuple[str, ...]

    def applies(self, *, cluster: str | None, conversation_key: str) -> bool:
        if self.channels and not glob_match(self.channels, conversation_key):
            return False
        return cluster is None or glob_match(self.clusters, cluster)


@dataclass(frozen=True)
class ApiUser:
    name: str
    digest: bytes
    person: str | None


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy. Immutable: a reload builds a new one."""

    roles: Mapping[str, RoleSpec]
    people: Mapping[str, PersonSpec]
    person_of: Mapping[str, str]
    """Lowercased identity key -> person name."""
    groups_of_person: Mapping[str, frozenset[str]]
    groups_of_identity: Mapping[str, frozenset[str]]
    bindings_by_subject: Mapping[str, tuple[CompiledBinding, ...]]
    channel_clusters: Mapping[str, str | None]
    channel_globs: tuple[tuple[str, str | None], ...]
    approval_rules: tuple[ApprovalRuleSpec, ...]
    api_users: tuple[ApiUser, ...] = ()
    ldap: LdapSpec | None = None
    source: Path | None = None
    default_risky_approvals: int = defaults.DEFAULT_RISKY_APPROVALS
    binding_count: int = field(default=0)
    _holders: dict[tuple[str, str | None], list[str]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def from_file(self) -> bool:
        return self.source is not None

    def person_for(self, identity_keys: Iterable[str]) -> str | None:
        for key in identity_keys:
            person = self.person_of.get(key.lower())
            if person is not None:
                return person
        return None

    def static_groups(self, *, person: str | None, identity_keys: Iterable[str]) -> set[str]:
        groups: set[str] = set()
        if person is not None:
            groups |= self.groups_of_person.get(person, frozenset())
        for key in identity_keys:
            groups |= self.groups_of_identity.get(key.lower(), frozenset())
        return groups

    def roles_of_subjects(
        self, subjects: Iterable[str], *, cluster: str | None, conversation_key: str
    ) -> set[str]:
        roles: set[str] = set()
        for subject in subjects:
            for binding in self.bindings_by_subject.get(subject, ()):
                if binding.role not in roles and binding.applies(
                    cluster=cluster, conversation_key=conversation_key
                ):
                    roles.add(binding.role)
        return roles

    def grants(self, role: str, *, permission: str, risk: Risk) -> bool:
        """Scoped permissions (`kubectl:shop`) as kobot.access.scoped_permission documents them."""
        spec = self.roles.get(role)
        if spec is None:
            return False
        base, scoped, scope = permission.partition(SCOPE_SEPARATOR)
        names = (permission, base) if scoped else (permission,)
        if any(glob_match(spec.exclude, name) for name in names):
            return False
        if scope == EVERY_SCOPE and any(p.startswith(base + SCOPE_SEPARATOR) for p in spec.exclude):
            return False  # a role kept out of one namespace cannot read them all at once
        if risk in spec.risks or any(glob_match(spec.commands, name) for name in names):
            return True
        return not scoped and any(p.startswith(permission + SCOPE_SEPARATOR) for p in spec.commands)

    def approval_rule(
        self, *, permission: str, command_id: str, risk: Risk, cluster: str | None
    ) -> tuple[int, str]:
        """(approvals required, approver role) for this command on this cluster."""
        for rule in self.approval_rules:
            if cluster is not None and not glob_match(rule.clusters, cluster):
                continue
            if cluster is None and rule.clusters != ("*",):
                continue
            by_command = glob_match(rule.commands, permission) or glob_match(rule.commands, command_id)
            if (rule.commands or rule.risks) and not (by_command or risk in rule.risks):
                continue
            return rule.approvals, rule.approver_role
        if risk is Risk.RISKY and self.from_file:
            return self.default_risky_approvals, defaults.DEFAULT_APPROVER_ROLE
        return 0, defaults.DEFAULT_APPROVER_ROLE

    def holders_of(self, role: str, *, cluster: str | None) -> list[str]:
        """Subjects bound to `role` on `cluster`, as written (person:alice, group:sre...), for refusals."""
        cached = self._holders.get((role, cluster))
        if cached is not None:
            return list(cached)
        if len(self._holders) >= HOLDERS_CACHE_MAX:
            self._holders.clear()
        found: list[str] = []
        for subject, bindings in self.bindings_by_subject.items():
            if any(b.role == role and (cluster is None or glob_match(b.clusters, cluster)) for b in bindings):
                found.append(subject)
        found.sort()
        self._holders[(role, cluster)] = found
        return list(found)

    def cluster_for(self, conversation_key: str) -> str | None:
        if conversation_key in self.channel_clusters:
            return self.channel_clusters[conversation_key]
        for pattern, cluster in self.channel_globs:
            if fnmatchcase(conversation_key, pattern):
                return cluster
        return None

    def api_user_for(self, token: str) -> ApiUser | None:
        """The API user whose token this is; every stored digest is compared, in constant time each."""
        import hmac

        digest = hashlib.sha256(token.encode()).digest()
        match: ApiUser | None = None
        for user in self.api_users:
            if hmac.compare_digest(digest, user.digest):
                match = user
        return match


def compile_policy(document: PolicyDocument, *, source: Path | None) -> Policy:
    """Index a validated document (references were checked by the loader)."""
    roles = {**BUILTIN_ROLE_SPECS, **document.roles}
    person_of = {key.lower(): name for name, person in document.people.items() for key in person.identities}
    groups_of_person: dict[str, set[str]] = {name: set(p.groups) for name, p in document.people.items()}
    groups_of_identity: dict[str, set[str]] = {}
    for group, members in document.groups.items():
        for member in members:
            if member in document.people:
                groups_of_person[member].add(group)
            else:
                groups_of_identity.setdefault(member.lower(), set()).add(group)
    by_subject: dict[str, list[CompiledBinding]] = {}
    for binding in document.bindings:
        compiled = CompiledBinding(role=binding.role, clusters=binding.clusters, channels=binding.channels)
        for subject in binding.subjects:
            key = subject.lower() if _is_identity_subject(subject) else subject
            by_subject.setdefault(key, []).append(compiled)
    exact = {k: v.cluster for k, v in document.channels.items() if not _is_glob(k)}
    globs = tuple((k, v.cluster) for k, v in document.channels.items() if _is_glob(k))
    api_users = tuple(
        ApiUser(name=name, digest=bytes.fromhex(user.token_sha256), person=user.person)
        for name, user in document.api_users.items()
    )
    return Policy(
        roles=roles,
        people=dict(document.people),
        person_of=person_of,
        groups_of_person={k: frozenset(v) for k, v in groups_of_person.items()},
        groups_of_identity={k: frozenset(v) for k, v in groups_of_identity.items()},
        bindings_by_subject={k: tuple(v) for k, v in by_subject.items()},
        channel_clusters=exact,
        channel_globs=globs,
        approval_rules=document.approvals,
        api_users=api_users,
        ldap=document.ldap,
        source=source,
        binding_count=len(document.bindings),
    )


def default_policy() -> Policy:
    """Kobot without a policy file: the terminal user is admin (the local operator), chat users view."""
    document = PolicyDocument.model_validate(
        {
            "bindings": [
                {"role": "admin", "subjects": [f"{defaults.TERMINAL_PLATFORM}:*"]},
                {"role": "viewer", "subjects": ["*"]},
            ]
        }
    )
    policy = compile_policy(document, source=None)
    return policy


def _is_glob(value: str) -> bool:
    return any(char in value for char in "*?[")


def _is_identity_subject(subject: str) -> bool:
    return subject != "*" and not subject.startswith(("person:", "group:"))

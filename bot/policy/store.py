"""The current policy, reloaded when its file changes, and the questions the dispatcher asks of it.

Without a policy file kobot runs on built-in defaults: the terminal user is admin (whoever runs the
terminal chat already controls kobot's machine), every chat user is a viewer, and a refusal tells the
user which identity key the admin should bind in a policy file (setting KOBOT_POLICY_FILE).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis

from bot.policy import defaults
from bot.policy.directory import DirectoryClient, DirectoryGroups, read_password
from bot.policy.errors import PolicyError
from bot.policy.models import Policy, default_policy
from commands.registry import COMMANDS
from kobot.access import AuthDecision, WhoAmI
from kobot.channel_bindings import ChannelBindings
from kobot.conversations import Conversation, Identity
from kobot.errors import KobotError
from kobot.risk import Risk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Subject:
    person: str | None
    groups: frozenset[str]
    subjects: frozenset[str]
    directory_error: str | None


_DecisionKey = tuple[str, str, str, str, str, str | None]
"""(identity key, email, conversation key, command id, risk, cluster)"""

_AllowedKey = tuple[str, str, str, str | None]
"""(identity key, email, conversation key, cluster)"""


@dataclass
class _Loaded:
    """One policy in force with what was worked out from it; a reload replaces all of it at once."""

    policy: Policy
    directory: DirectoryClient | None
    stamp: tuple[int, int, int] | None
    subjects: dict[tuple[str, str, str], tuple[float, _Subject]] = field(default_factory=dict)
    decisions: dict[_DecisionKey, tuple[float, AuthDecision]] = field(default_factory=dict)
    allowed: dict[_AllowedKey, tuple[_Subject, frozenset[str]]] = field(default_factory=dict)


class PolicyStore:
    """Holds the current policy; a bad reload keeps the last good one and logs why (see `last_error`)."""

    def __init__(
        self,
        *,
        path: Path | None,
        redis: Redis,
        reload_check_seconds: float = defaults.RELOAD_CHECK_SECONDS,
    ) -> None:
        self._path = path
        self._redis = redis
        self._check_every = reload_check_seconds
        self._lock = threading.Lock()
        self._next_check = time.monotonic() + reload_check_seconds
        self.last_error: str | None = None
        self._loaded = self._load()

    @property
    def policy(self) -> Policy:
        """The current policy (the file's mtime is looked at no more than once per check interval)."""
        if self._path is not None and time.monotonic() >= self._next_check:
            self.reload_if_changed()
        return self._loaded.policy

    def reload_if_changed(self) -> bool:
        """Reload now if the file changed; True when a new policy is in force."""
        with self._lock:
            self._next_check = time.monotonic() + self._check_every
            if self._path is None or _stamp(self._path) == self._loaded.stamp:
                return False
            try:
                self._loaded = self._load()
            except KobotError as exc:
                self.last_error = exc.user_message
                log.error("policy reload failed, keeping the last good policy: %s", exc.user_message)
                self._loaded.stamp = _stamp(self._path)
                return False
            self.last_error = None
            log.info("policy reloaded from %s", self._path)
            return True

    def authorize(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        command_id: str,
        risk: Risk,
        cluster: str | None,
    ) -> AuthDecision:
        """May this user run this command on this cluster here, and does it need approval first?

        Remembered per identity, conversation and question for AUTH_CACHE_SECONDS while this policy is in
        force (`whoami` and `help` ask once per command), so a reload applies at once."""
        policy = self.policy
        loaded = self._loaded
        key = (identity.key, identity.email or "", conversation.key, command_id, risk.value, cluster)
        now = time.monotonic()
        cached = loaded.decisions.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        decision = self._decide(policy, identity, conversation, command_id, risk, cluster)
        if loaded.policy is policy:  # not when another thread reloaded in between
            _remember(loaded.decisions, key, (now + _reuse_seconds(policy), decision))
        return decision

    def remembered_decision(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        command_id: str,
        risk: Risk,
        cluster: str | None,
    ) -> AuthDecision | None:
        """`authorize`'s answer when it is remembered and the policy file is not due a look, else None:
        never blocks (no file, no directory, no store), so the event loop can ask before paying a thread."""
        if self._path is not None and time.monotonic() >= self._next_check:
            return None
        key = (identity.key, identity.email or "", conversation.key, command_id, risk.value, cluster)
        cached = self._loaded.decisions.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def _decide(
        self,
        policy: Policy,
        identity: Identity,
        conversation: Conversation,
        command_id: str,
        risk: Risk,
        cluster: str | None,
    ) -> AuthDecision:
        who = self._resolve(policy, identity)
        roles = sorted(
            policy.roles_of_subjects(who.subjects, cluster=cluster, conversation_key=conversation.key)
        )
        spec = COMMANDS.get(command_id)
        permission = spec.permission if spec is not None else command_id
        granted = [role for role in roles if policy.grants(role, permission=permission, risk=risk)]
        if not granted:
            return AuthDecision(
                allowed=False,
                reason=self._refusal(policy, identity, who, roles, command_id, permission, risk, cluster),
                missing_permission=permission,
                needs_approval=False,
                approvals_required=0,
                approver_role=None,
                break_glass_allowed=False,
                roles=tuple(roles),
            )
        required, approver = policy.approval_rule(
            permission=permission, command_id=command_id, risk=risk, cluster=cluster
        )
        break_glass = any(policy.roles[role].break_glass for role in roles)
        where = f" on {cluster}" if cluster else ""
        reason = f"allowed by role {', '.join(granted)}{where}"
        if required:
            reason += f"; needs {required} approval{'s' if required > 1 else ''} from {approver}{where}"
        return AuthDecision(
            allowed=True,
            reason=reason,
            missing_permission=None,
            needs_approval=required > 0,
            approvals_required=required,
            approver_role=approver if required else None,
            break_glass_allowed=break_glass,
            roles=tuple(roles),
        )

    def can_run(
        self,
        *,
        identity: Identity,
        conversation: Conversation,
        command_id: str,
        risk: Risk,
        cluster: str | None,
    ) -> bool:
        """For `help`: list only what this user could run (approval may still be needed)."""
        return self.authorize(
            identity=identity, conversation=conversation, command_id=command_id, risk=risk, cluster=cluster
        ).allowed

    def allowed_commands(
        self, *, identity: Identity, conversation: Conversation, cluster: str | None
    ) -> frozenset[str]:
        """Ids of every command this user may run here (approval may still be needed): `whoami` and `help`
        ask this once instead of authorizing each command.

        Remembered with the worked-out identity it came from: a policy reload starts over at once, and
        when that identity is worked out again (its groups may have changed) so is this answer."""
        policy = self.policy
        loaded = self._loaded
        who = self._resolve(policy, identity)
        key = (identity.key, identity.email or "", conversation.key, cluster)
        cached = loaded.allowed.get(key)
        if cached is not None and cached[0] is who:
            return cached[1]
        roles = policy.roles_of_subjects(who.subjects, cluster=cluster, conversation_key=conversation.key)
        allowed = frozenset(
            spec.id
            for spec in COMMANDS.values()
            if any(policy.grants(role, permission=spec.permission, risk=spec.risk) for role in roles)
        )
        if loaded.policy is policy:  # not when another thread reloaded in between
            _remember(loaded.allowed, key, (who, allowed))
        return allowed

    def default_cluster(self, *, conversation: Conversation) -> str | None:
        """The channel's cluster: a binding made in chat, else the policy file's."""
        bound = ChannelBindings(self._redis).get(conversation.key)
        return bound if bound is not None else self.policy.cluster_for(conversation.key)

    def roles_for(self, *, identity: Identity, cluster: str | None, conversation: Conversation) -> list[str]:
        policy = self.policy
        who = self._resolve(policy, identity)
        return sorted(
            policy.roles_of_subjects(who.subjects, cluster=cluster, conversation_key=conversation.key)
        )

    def person_of(self, *, identity: Identity) -> str | None:
        """The person an identity joins to, so one human is one approver across platforms."""
        return self.policy.person_for(_identity_keys(identity))

    def describe(self, *, identity: Identity, conversation: Conversation, cluster: str | None) -> WhoAmI:
        policy = self.policy
        who = self._resolve(policy, identity)
        roles = policy.roles_of_subjects(who.subjects, cluster=cluster, conversation_key=conversation.key)
        identities = policy.people[who.person].identities if who.person is not None else (identity.key,)
        source = f"policy file {policy.source}" if policy.source else "built-in defaults (no policy file)"
        return WhoAmI(
            identity=identity.key,
            display_name=identity.label(),
            person=who.person,
            identities=tuple(identities),
            groups=tuple(sorted(who.groups)),
            roles=tuple(sorted(roles)),
            cluster=cluster,
            policy_source=source,
            directory_error=who.directory_error,
        )

    def api_identity(self, *, token: str) -> Identity | None:
        """The policy identity (`api:<name>`) of a REST API bearer token, or None when it is no one's."""
        user = self.policy.api_user_for(token)
        if user is None:
            return None
        return Identity(platform=defaults.API_PLATFORM, user_id=user.name, display_name=user.name)

    def _resolve(self, policy: Policy, identity: Identity) -> _Subject:
        """Who the identity is to the policy, remembered like decisions (see `_reuse_seconds`)."""
        loaded = self._loaded
        key = (identity.platform, identity.user_id, identity.email or "")
        now = time.monotonic()
        cached = loaded.subjects.get(key)
        if cached is not None and cached[0] > now and loaded.policy is policy:
            return cached[1]
        subject = self._work_out(policy, identity)
        if loaded.policy is policy:
            _remember(loaded.subjects, key, (now + _reuse_seconds(policy), subject))
        return subject

    def _work_out(self, policy: Policy, identity: Identity) -> _Subject:
        keys = _identity_keys(identity)
        person = policy.person_for(keys)
        if identity.platform == defaults.API_PLATFORM:
            api_user = next((u for u in policy.api_users if u.name == identity.user_id), None)
            person = api_user.person if api_user is not None else None
        groups = policy.static_groups(person=person, identity_keys=keys)
        directory = self._directory_groups(policy, identity, person)
        groups |= {f"ldap:{name}" for name in directory.groups}
        if identity.platform == defaults.API_PLATFORM:
            # A token gets only what the policy names for it (`api:<name>`, `api:*`, its person and groups):
            # the `*` binding is meant for chat users, and tokens read over a network without a channel.
            subjects = {f"{identity.platform}:*".lower(), *(key.lower() for key in keys)}
        else:
            subjects = {"*", f"{identity.platform}:*".lower(), *(key.lower() for key in keys)}
        if person is not None:
            subjects.add(f"person:{person}")
        subjects |= {f"group:{group}" for group in groups}
        return _Subject(
            person=person,
            groups=frozenset(groups),
            subjects=frozenset(subjects),
            directory_error=directory.error,
        )

    def _directory_groups(self, policy: Policy, identity: Identity, person: str | None) -> DirectoryGroups:
        client = self._loaded.directory
        if client is None or policy.ldap is None:
            return DirectoryGroups(groups=())
        spec = policy.people.get(person) if person is not None else None
        uid = spec.directory_user if spec is not None else None
        if uid is None and identity.platform == defaults.TERMINAL_PLATFORM:
            uid = identity.user_id
        email = identity.email or (spec.email if spec is not None else None)
        return client.groups_for(uid=uid, email=email)

    def _refusal(
        self,
        policy: Policy,
        identity: Identity,
        who: _Subject,
        roles: list[str],
        command_id: str,
        permission: str,
        risk: Risk,
        cluster: str | None,
    ) -> str:
        where = f" on {cluster}" if cluster else ""
        held = ", ".join(roles) if roles else "none"
        text = (
            f"You may not run {command_id}{where}: it needs the {permission} permission ({risk.value}), "
            f"which your roles here ({held}) do not grant."
        )
        if not policy.from_file:
            text += (
                " kobot runs without a policy file, so chat users can only view. The operator of kobot's "
                f"terminal can grant more by binding {identity.key} to a role in a policy file "
                "(setting KOBOT_POLICY_FILE)."
            )
        else:
            admins = policy.holders_of(defaults.ADMIN_ROLE, cluster=cluster)
            if admins:
                text += f" Admins{where} who can grant it: {', '.join(admins)}."
            else:
                text += f" No admin is bound{where}; whoever maintains {policy.source} can grant it."
        if who.directory_error:
            text += f" Directory groups were not counted: {who.directory_error}."
        return text

    def _load(self) -> _Loaded:
        if self._path is None:
            return _Loaded(policy=default_policy(), directory=None, stamp=None)
        # the reader (with PyYAML) loads with the first file read, not at every start
        from bot.policy.loader import load_policy

        stamp = _stamp(self._path)
        policy = load_policy(self._path)
        directory = None
        if policy.ldap is not None:
            try:
                password = read_password(policy.ldap)
            except KobotError as exc:
                raise PolicyError(f"policy file {self._path}: ldap: {exc.user_message}") from None
            if password is not None and policy.ldap.url.startswith("ldap://") and not policy.ldap.start_tls:
                log.warning(
                    "the directory bind password goes to %s unencrypted: use ldaps:// or start_tls",
                    policy.ldap.url,
                )
            directory = DirectoryClient(spec=policy.ldap, password=password, redis=self._redis)
        return _Loaded(policy=policy, directory=directory, stamp=stamp)


def _reuse_seconds(policy: Policy) -> float:
    """How long a worked-out answer stands: never longer than the policy lets directory groups stand."""
    if policy.ldap is None:
        return defaults.AUTH_CACHE_SECONDS
    return min(defaults.AUTH_CACHE_SECONDS, float(policy.ldap.cache_seconds))


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= defaults.AUTH_CACHE_MAX:
        # a flood of distinct identities costs a recomputation, never unbounded memory
        cache.clear()
    cache[key] = value


def _identity_keys(identity: Identity) -> list[str]:
    keys = [identity.key]
    if identity.email:
        keys.append(f"{identity.platform}:email:{identity.email.lower()}")
    return keys


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino

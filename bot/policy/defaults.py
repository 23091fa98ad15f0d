"""Limits and built-in values of the access policy, each named once with the reason it exists."""

from __future__ import annotations

from kobot import keys

RELOAD_CHECK_SECONDS = 1.0
"""The policy file's mtime is looked at no more often than this, so authorizing stays a memory lookup."""

AUTH_CACHE_SECONDS = 5.0
"""An authorization decision (and who an identity is, with its directory groups) is reused this long while
the same policy is in force: `whoami` asks about every command, and a burst of commands asks the same
questions. A policy reload applies at once; a directory group change takes this on top of
LDAP_CACHE_SECONDS."""

AUTH_CACHE_MAX = 50_000
"""Decisions and identities remembered at most; past it the memory starts over rather than growing."""

LDAP_CACHE_SECONDS = 300
"""Directory groups are trusted this long; a group change in the directory takes at most this to apply."""

LDAP_STALE_SECONDS = 24 * 3600
"""When the directory is down, groups looked up within this window are still used (and the reply says so)."""

LDAP_TIMEOUT_SECONDS = 3.0
"""Connect and receive timeout of one directory lookup; chat acks must not wait on a dead directory."""

LDAP_CACHE_PREFIX = keys.LDAP_CACHE_PREFIX
"""Redis key prefix of cached directory groups, shared by every kobot process using the same store."""

API_PLATFORM = "api"
"""Platform name of REST API identities: `api:<name>` in bindings."""

TERMINAL_PLATFORM = "terminal"
"""The local terminal chat; without a policy file its user is the operator and therefore admin."""

BUILTIN_ROLES = ("viewer", "operator", "admin")
"""Roles that always exist; a policy file may redefine them under `roles:`."""

ADMIN_ROLE = "admin"
"""The role that can grant others access; refusals name who holds it on the cluster."""

DEFAULT_APPROVER_ROLE = ADMIN_ROLE
"""Who approves a risky command when no approval rule of the policy matches it."""

DEFAULT_RISKY_APPROVALS = 1
"""Approvals a risky command needs when a policy file exists and none of its rules matches."""

MAX_APPROVALS = 5
"""Upper bound of approvals a rule may ask for: more than this is a typo, not a process."""

MAX_POLICY_BYTES = 4 * 1024 * 1024
"""A policy file larger than this is refused before parsing."""

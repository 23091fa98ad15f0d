"""Who may do what: roles, bindings per cluster and channel, approval rules and break-glass rights.

See `bot.policy.document` for the file format and `bot.policy.models` for how it is evaluated.
"""

from bot.policy.directory import DirectoryUnavailableError
from bot.policy.loader import PolicyError, load_policy, parse_policy
from bot.policy.models import Policy, default_policy
from bot.policy.store import PolicyStore
from kobot.access import AuthDecision, WhoAmI

__all__ = [
    "AuthDecision",
    "DirectoryUnavailableError",
    "Policy",
    "PolicyError",
    "PolicyStore",
    "WhoAmI",
    "default_policy",
    "load_policy",
    "parse_policy",
]

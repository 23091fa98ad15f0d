"""Who may do what: roles, bindings per cluster and channel, approval rules and break-glass rights.

See `bot.policy.document` for the file format and `bot.policy.models` for how it is evaluated. The file's
reader is `bot.policy.loader`, imported where a file is read: without one, kobot starts without PyYAML.
"""

from bot.policy.directory import DirectoryUnavailableError
from bot.policy.errors import PolicyError
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
]

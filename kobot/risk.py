"""How much a command can change: the word the policy, approvals and help all speak."""

from __future__ import annotations

from enum import Enum


class Risk(str, Enum):
    """`read` answers at once; `change` queues a job; `risky` needs approval before it is queued."""

    READ = "read"
    CHANGE = "change"
    RISKY = "risky"

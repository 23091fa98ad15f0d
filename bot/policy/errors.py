"""The error a policy file that cannot be used raises (apart from its loader, which needs PyYAML)."""

from __future__ import annotations

from kobot.errors import KobotError


class PolicyError(KobotError):
    """The policy file cannot be used; the message names the file, the line and the field."""
